param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

Describe 'Vaults [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
    }
    BeforeEach { $dir = New-TestDirectory }
    AfterEach { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'New-AsrVault | Connect-AsrVault makes the vault the session default' {
        $path = New-TestVaultLocation $dir
        $vault = New-AsrVault -Path $path
        $vault.FormatVersion | Should -Be 1
        $vault.IsEncrypted | Should -BeFalse
        $vault | Connect-AsrVault
        (Get-AsrVault).Location | Should -Be $path
        New-AsrPolicy -Name p1 | Out-Null
        (Get-AsrPolicy).Name | Should -Be 'p1'
    }

    It 'every cmdlet also takes -Vault (a path or a vault object) without a session default' {
        $path = New-TestVaultLocation $dir
        $vault = New-AsrVault -Path $path
        New-AsrPolicy -Name viaObject -Vault $vault | Out-Null
        New-AsrPolicy -Name viaPath -Vault $path | Out-Null
        @(Get-AsrPolicy -Vault $path).Count | Should -Be 2
        { Get-AsrPolicy -ErrorAction Stop } | Should -Throw -ErrorId 'VaultNotConnected,*'
    }

    # Only on the Local backend (defined at discovery): a relative path names a directory; a container URL is always absolute.
    if ($Backend -eq 'Local') {
        It 'resolves relative paths (and PSDrive paths) against the current location' {
            Push-Location $dir
            try {
                New-AsrVault -Path ./relvault | Out-Null
                [IO.File]::Exists((Join-TestPath $dir 'relvault/asrvault.json')) | Should -BeTrue
                New-PSDrive -Name AsrTestDrive -PSProvider FileSystem -Root $dir | Out-Null
                (New-AsrVault -Path AsrTestDrive:/drivevault).Location | Should -Be (Join-TestPath $dir 'drivevault')
            } finally { Pop-Location; Remove-PSDrive AsrTestDrive -ErrorAction Ignore }
        }
    }

    It 'refuses a directory or container that is not a vault (VaultNotFound, ObjectNotFound) and changes nothing' {
        $empty = New-TestVaultLocation $dir -Create
        $err = { Connect-AsrVault -Path $empty -ErrorAction Stop } | Should -Throw -ErrorId 'VaultNotFound,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $err.Exception.Message | Should -Match 'not a vault'
        Test-VaultLocation $empty | Should -BeTrue
        @(Get-VaultObjectKeys $empty).Count | Should -Be 0
    }

    It 'refuses a vault of an unknown format version (VaultFormatUnsupported, InvalidData)' {
        $path = New-TestVaultLocation $dir
        New-AsrVault -Path $path | Out-Null
        $header = [Text.Encoding]::UTF8.GetString((Read-VaultObject $path 'asrvault.json'))
        $header | Should -Match '"formatVersion": 1'
        Write-VaultObject $path 'asrvault.json' $header.Replace('"formatVersion": 1', '"formatVersion": 7')
        $err = { Connect-AsrVault -Path $path -ErrorAction Stop } | Should -Throw -ErrorId 'VaultFormatUnsupported,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidData'
        $err.Exception.Message | Should -Match 'version 7'
    }

    It 'refuses to create a vault over an existing one (VaultAlreadyExists) and keeps its contents' {
        $path = New-TestVaultLocation $dir
        New-AsrVault -Path $path | Connect-AsrVault
        New-AsrPolicy -Name keep | Out-Null
        $before = Get-VaultSnapshot $path
        $err = { New-AsrVault -Path $path -ErrorAction Stop } | Should -Throw -ErrorId 'VaultAlreadyExists,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ResourceExists'
        Get-VaultSnapshot $path | Should -Be $before
    }

    It 'encrypted vault: wrong key is refused (VaultKeyInvalid, SecurityError); right key opens' {
        $path = New-TestVaultLocation $dir
        $secure = [securestring]::new(); foreach ($c in 'open sesame'.ToCharArray()) { $secure.AppendChar($c) }
        (New-AsrVault -Path $path -EncryptionKey $secure).IsEncrypted | Should -BeTrue
        $err = { Connect-AsrVault -Path $path -EncryptionKey 'wrong' -ErrorAction Stop } | Should -Throw -ErrorId 'VaultKeyInvalid,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'SecurityError'
        { Connect-AsrVault -Path $path -ErrorAction Stop } | Should -Throw -ErrorId 'VaultKeyRequired,*'
        Connect-AsrVault -Path $path -EncryptionKey 'open sesame'
        (Get-AsrVault).IsEncrypted | Should -BeTrue
    }

    It 'WhatIf creates nothing' {
        $path = New-TestVaultLocation $dir
        New-AsrVault -Path $path -WhatIf
        Test-VaultLocation $path | Should -BeFalse
    }

    It 'a second PowerShell process sees the policies, items, points and jobs of the vault' {
        $path = New-TestVaultLocation $dir
        $disk = Join-TestPath $dir 'm1.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 4MB | Out-Null
        New-AsrVault -Path $path | Connect-AsrVault
        New-AsrPolicy -Name shared | Out-Null
        Enable-AsrReplication -Name m1 -Disk $disk -Policy shared | Out-Null
        $r = Invoke-PwshProcess @"
`$ErrorActionPreference = 'Stop'
Import-Module AsrModule
Connect-AsrVault -Path '$path'
'policies=' + ((Get-AsrPolicy).Name -join ',')
'items=' + ((Get-AsrProtectedItem).Name -join ',') + ':' + (Get-AsrProtectedItem m1).State
'points=' + @(Get-AsrRecoveryPoint -Item m1).Count
'jobs=' + ((Get-AsrJob).Operation -join ',') + ':' + ((Get-AsrJob).State -join ',')
Get-AsrProtectedItem m1 | Invoke-AsrReplication | Out-Null
"@
        $r.ExitCode | Should -Be 0 -Because $r.Error
        $r.Output | Should -Match 'policies=shared'
        $r.Output | Should -Match 'items=m1:Protected'
        $r.Output | Should -Match 'points=1'
        $r.Output | Should -Match 'jobs=EnableReplication:Succeeded'
        # ... and this session sees what the other process did.
        @(Get-AsrRecoveryPoint -Item m1).Count | Should -Be 2
    }
}
