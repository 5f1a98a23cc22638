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

# One damaged object affects only what it describes (#12, item 6): a listing writes a non-terminating VaultDataCorrupt
# error (category InvalidData, the record's name as target) in place of the damaged record and goes on with the others.
Describe 'Damaged records in listings [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vault = Initialize-TestVault $dir -Machines a, b
        New-AsrPolicy -Name q | Out-Null
        $cDisk = Join-TestPath $dir 'c.img'
        New-AsrSampleDisk -Path $cDisk -SizeBytes 1MB -Seed 30 | Out-Null
        Enable-AsrReplication -Name c -Disk $cDisk -Policy q | Out-Null
        Write-AsrSampleChange -Path (Join-TestPath $dir 'a.img') -Fraction 0.05 -Seed 31 | Out-Null
        Get-AsrProtectedItem a | Invoke-AsrReplication | Out-Null
        $ids = @{}; foreach ($i in Get-AsrProtectedItem) { $ids[$i.Name] = $i.Id }
        $notJson = '{ "name": "half a rec'
        $damaged = @{}
        function Set-Damaged([string]$Key, $Content = $notJson) {
            $damaged[$Key] = Read-VaultObject $vault $Key
            Write-VaultObject $vault $Key $Content
        }
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }
    AfterEach { foreach ($k in $damaged.Keys) { Write-VaultObject $vault $k $damaged[$k] }; $damaged.Clear() }   # put every damaged record back

    It 'a damaged policy: Get-AsrPolicy lists the others, its items list with the problem, every item''s points list' {
        Set-Damaged 'policies/q.json'
        $policies = @(Get-AsrPolicy -ErrorVariable e -ErrorAction SilentlyContinue)
        $policies.Name | Should -Be 'p'
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'VaultDataCorrupt,*'
        $e[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $e[0].TargetObject | Should -Be 'q'
        $e[0].Exception.Message | Should -Match 'policies/q\.json'
        { Get-AsrPolicy q -ErrorAction Stop } | Should -Throw -ErrorId 'VaultDataCorrupt,*'

        $items = @(Get-AsrProtectedItem -ErrorVariable ie -ErrorAction SilentlyContinue)
        $ie.Count | Should -Be 0
        $items.Name | Should -Be 'a', 'b', 'c'
        $c = $items | Where-Object Name -eq c
        $c.ReplicationHealth | Should -Be 'Critical'
        $c.LastError | Should -Match "Policy 'q'.*policies/q\.json"
        ($items | Where-Object Name -eq a).ReplicationHealth | Should -Be 'Normal'
        @(Get-AsrRecoveryPoint -Item a -ErrorAction Stop).Count | Should -Be 2
        @(Get-AsrRecoveryPoint -Item c -ErrorAction Stop).Count | Should -Be 1
    }

    It 'a damaged item record: Get-AsrProtectedItem lists the others and names the damaged one' {
        $key = "items/$($ids['b'])/item.json"
        Set-Damaged $key
        $items = @(Get-AsrProtectedItem -ErrorVariable e -ErrorAction SilentlyContinue)
        $items.Name | Should -Be 'a', 'c'
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'VaultDataCorrupt,*'
        $e[0].TargetObject | Should -Be 'b'
        $e[0].Exception.Message | Should -Match "protected item 'b'.*$([regex]::Escape($key))"
        { Get-AsrProtectedItem b -ErrorAction Stop } | Should -Throw -ErrorId 'VaultDataCorrupt,*'   # it exists, damaged: not "not found"
        @(Get-AsrRecoveryPoint -Item a -ErrorAction Stop).Count | Should -Be 2
    }

    It 'a damaged manifest: Get-AsrRecoveryPoint lists its neighbours, -Latest still works, the item still lists' {
        $key = 'items/{0}/points/{1:D12}.json' -f $ids['a'], 1
        Set-Damaged $key
        $points = @(Get-AsrRecoveryPoint -Item a -ErrorVariable e -ErrorAction SilentlyContinue)
        $points.Sequence | Should -Be 2
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'VaultDataCorrupt,*'
        $e[0].Exception.Message | Should -Match ([regex]::Escape($key))
        (Get-AsrRecoveryPoint -Item a -Latest -ErrorAction Stop).Sequence | Should -Be 2
        { Get-AsrRecoveryPoint -Item a -Sequence 1 -ErrorAction Stop } | Should -Throw -ErrorId 'VaultDataCorrupt,*'
        (Get-AsrProtectedItem a -ErrorAction Stop).LastPointSequence | Should -Be 2
    }

    It 'a damaged job record: Get-AsrJob lists the others, then its error' {
        $jobs = @(Get-AsrJob)
        $victim = $jobs[0].Id
        Set-Damaged "jobs/$victim.json"
        $listed = @(Get-AsrJob -ErrorVariable e -ErrorAction SilentlyContinue)
        $listed.Count | Should -Be ($jobs.Count - 1)
        $listed.Id | Should -Not -Contain $victim
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'VaultDataCorrupt,*'
        $e[0].TargetObject | Should -Be "$victim"
        { Get-AsrJob -Id $victim -ErrorAction Stop } | Should -Throw -ErrorId 'VaultDataCorrupt,*'
    }

    It 'Test-AsrRecoveryPoint returns a result for a corrupt point too, and writes nothing to the vault' {
        $point = Get-AsrRecoveryPoint -Item c -Latest
        $pack = $point.Packs[0]
        $bytes = Read-VaultObject $vault $pack
        $flipped = [byte[]]$bytes.Clone()
        for ($i = 0; $i -lt 64; $i++) { $flipped[[int]($flipped.Length / 2) + $i] = $flipped[[int]($flipped.Length / 2) + $i] -bxor 0xFF }
        Set-Damaged $pack $flipped
        $before = Get-VaultObjectKeys $vault
        $r = $point | Test-AsrRecoveryPoint -ErrorVariable e -ErrorAction SilentlyContinue
        $r | Should -Not -BeNullOrEmpty
        $r.Verified | Should -BeFalse
        $r.Disks[0].Verified | Should -BeFalse
        $e.Count | Should -Be 1
        $e[0].FullyQualifiedErrorId | Should -BeLike 'RecoveryPointVerificationFailed,*'
        (Get-AsrRecoveryPoint -Item a -Latest | Test-AsrRecoveryPoint).Verified | Should -BeTrue
        Get-VaultObjectKeys $vault | Should -Be $before   # no pin, no record: nothing written
    }
}

# A local vault on a real small file system (#12, items 7 and 4): a full one fails the cycle with VaultStorageFull (also
# with not a byte free), loses nothing already published, and the item goes on once space is freed; a read-only one
# is VaultAccessDenied while reading and verifying still work. Needs root (mount); skipped with the reason otherwise.
# A file system to fill exists for a local vault only: on the Blob backend the Describe is not defined at all.
if ($Backend -eq 'Local') {
Describe 'A full or read-only vault file system [<Backend>]' -Tag Mount {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $skipReason = Get-MissingCommandReason mount, umount -NeedsRoot
        if ($skipReason) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $fs = Join-TestPath $dir 'fs'
        [void][IO.Directory]::CreateDirectory($fs)
        Invoke-Native mount @('-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', $fs) | Out-Null
        $vault = Join-TestPath $fs 'vault'
        New-AsrVault -Path $vault | Connect-AsrVault
        New-AsrPolicy -Name p -CompressionLevel 1 | Out-Null
        $disk = Join-TestPath $dir 'm.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 4MB -Seed 41 | Out-Null
        Enable-AsrReplication -Name m -Disk $disk -Policy p | Out-Null
        $first = Get-AsrRecoveryPoint -Item m -Latest
        $firstHashes = Get-ExportedHashes $first (Join-TestPath $dir 'first')
        $filler = Join-TestPath $fs 'filler'
        function Set-Free([long]$Bytes) {
            # Leaves $Bytes free on the tmpfs ($Bytes = 0: fills every last byte).
            Remove-Item $filler -ErrorAction Ignore
            $free = [IO.DriveInfo]::new($fs).AvailableFreeSpace
            $stream = [IO.File]::Open($filler, 'CreateNew')
            try {
                $block = [byte[]]::new(64KB); [Random]::new(7).NextBytes($block)
                $left = [Math]::Max(0, $free - $Bytes)
                try {
                    while ($Bytes -eq 0 -or $left -gt 0) { $n = if ($Bytes -eq 0) { $block.Length } else { [Math]::Min($left, $block.Length) }; $stream.Write($block, 0, $n); $stream.Flush(); $left -= $n }
                } catch [IO.IOException] { if ($Bytes -ne 0) { throw } }
            } finally { $stream.Dispose() }
        }
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        Disconnect-AsrVault
        Invoke-Native umount @('-l', $fs) | Out-Null
        Remove-TestDirectory $dir
    }

    It 'a cycle that does not fit fails with VaultStorageFull (ResourceUnavailable) and loses nothing' {
        Set-Free 1MB
        Write-AsrSampleChange -Path $disk -Fraction 0.6 -Seed 42 | Out-Null
        $job = Get-AsrProtectedItem m | Invoke-AsrReplication -ErrorVariable e -ErrorAction SilentlyContinue
        $job.State | Should -Be 'Failed'
        $e.Count | Should -BeGreaterThan 0
        $e[-1].FullyQualifiedErrorId | Should -BeLike 'VaultStorageFull,*'
        $e[-1].CategoryInfo.Category | Should -Be 'ResourceUnavailable'
        $e[-1].Exception.Message | Should -Match 'full'
        @(Get-AsrRecoveryPoint -Item m).Sequence | Should -Be 1
        ($first | Test-AsrRecoveryPoint).Verified | Should -BeTrue      # writes nothing, so it works on a full vault
        @(Get-ChildItem -Recurse -File $vault | Where-Object Name -like '*.tmp-*').Count | Should -Be 0
    }

    It 'with not a byte free the cycle fails with VaultStorageFull too, not a raw IOException' {
        Set-Free 0
        $caught = $null
        try { Get-AsrProtectedItem m | Invoke-AsrReplication -ErrorAction Stop | Out-Null } catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -BeLike 'VaultStorageFull,*'
        @(Get-AsrRecoveryPoint -Item m).Sequence | Should -Be 1
        (Get-AsrRecoveryPoint -Item m -Latest | Test-AsrRecoveryPoint).Verified | Should -BeTrue
    }

    It 'once space is freed the item goes on and its new point is exact' {
        Remove-Item $filler
        $job = Get-AsrProtectedItem m | Invoke-AsrReplication -ErrorAction Stop
        $job.State | Should -Be 'Succeeded'
        $latest = Get-AsrRecoveryPoint -Item m -Latest
        $latest.Sequence | Should -Be 2
        (Get-ExportedHashes $latest (Join-TestPath $dir 'after')).Values | Should -Be (Get-AsrSampleHash $disk)
        (Get-ExportedHashes $first (Join-TestPath $dir 'first-again')).Values | Should -Be $firstHashes.Values
    }

    It 'a read-only vault: writes fail with VaultAccessDenied (SecurityError); listing and verifying work' {
        Invoke-Native mount @('-o', 'remount,ro', $fs) | Out-Null
        try {
            $caught = $null
            try { Get-AsrProtectedItem m | Invoke-AsrReplication -ErrorAction Stop | Out-Null } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -BeLike 'VaultAccessDenied,*'
            $caught.CategoryInfo.Category | Should -Be 'SecurityError'
            $caught.Exception.Message | Should -Match 'read-only'
            { New-AsrPolicy -Name other -ErrorAction Stop } | Should -Throw -ErrorId 'VaultAccessDenied,*'
            (Get-AsrProtectedItem m -ErrorAction Stop).Name | Should -Be 'm'
            @(Get-AsrRecoveryPoint -Item m -ErrorAction Stop | Test-AsrRecoveryPoint | Where-Object Verified).Count | Should -Be 2
        } finally {
            Invoke-Native mount @('-o', 'remount,rw', $fs) | Out-Null
        }
    }
}
}
