param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# Issue #12, item 2: whoever can write to an encrypted vault but has no key cannot plant what a drill or an export serves.
# The attack: protect a disk of one's own in an unencrypted vault, copy its (plain) index and pack over a point of the
# encrypted vault. Before, the index's "not sealed" flag was believed and a drill served the planted disk.
Describe 'An encrypted vault refuses an index and pack planted without its key [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $victim = New-TestVaultLocation $dir
        $disk = Join-TestPath $dir 'web.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 512KB -Seed 1 | Out-Null
        New-AsrVault -Path $victim -EncryptionKey 'untrusted key' | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name web -Disk $disk -Policy p | Out-Null
        $item = Get-AsrProtectedItem web
        $point = Get-AsrRecoveryPoint -Item web -Latest

        # The attacker's own unencrypted vault (anywhere: a local directory), with a disk of the same size and other data.
        $attacker = Join-TestPath $dir 'attacker-vault'
        $evilDisk = Join-TestPath $dir 'evil.img'
        New-AsrSampleDisk -Path $evilDisk -SizeBytes 512KB -Seed 2 | Out-Null
        New-AsrVault -Path $attacker | Out-Null
        New-AsrPolicy -Name p -Vault $attacker | Out-Null
        Enable-AsrReplication -Name web -Disk $evilDisk -Policy p -Vault $attacker | Out-Null
        $evil = Get-AsrProtectedItem web -Vault $attacker
        $evilPoint = Get-AsrRecoveryPoint -Item web -Latest -Vault $attacker

        # Objects are named by the point's cycle attempt (its AttemptId): planted under the victim point's names.
        $index = "items/$($item.Id)/index/$('{0:D12}' -f $point.Sequence).$($point.AttemptId)-disk0.idx"
        foreach ($pack in $point.Packs) { Remove-VaultObject $victim $pack }
        foreach ($pack in $evilPoint.Packs) {
            Write-VaultObject $victim $pack.Replace($evil.Id, $item.Id).Replace($evilPoint.AttemptId, $point.AttemptId) (Read-VaultObject $attacker $pack)
        }
        Write-VaultObject $victim $index (Read-VaultObject $attacker "items/$($evil.Id)/index/$('{0:D12}' -f $evilPoint.Sequence).$($evilPoint.AttemptId)-disk0.idx")
        $drills = Join-TestPath $dir 'drills'
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'Export-AsrRecoveryPoint refuses it (VaultDataCorrupt naming the index) and writes no disk' {
        $dest = Join-TestPath $dir 'export'
        $err = { $point | Export-AsrRecoveryPoint -Destination $dest -ErrorAction Stop } | Should -Throw -ErrorId 'VaultDataCorrupt,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidData'
        $err.Exception.Message | Should -BeLike "*$index*not sealed*"
        [IO.File]::Exists((Join-TestPath $dest 'web.img')) | Should -BeFalse
    }

    It 'Start-AsrTestFailover refuses it: no drill is recorded and nothing is served' {
        $err = { $item | Start-AsrTestFailover -RecoveryPoint LatestProcessed -Target (New-AsrLocalTarget $drills) -ErrorAction Stop } |
            Should -Throw -ErrorId 'VaultDataCorrupt,*' -PassThru
        $err.Exception.Message | Should -BeLike "*$index*"
        (Get-AsrProtectedItem web).TestFailover | Should -BeNullOrEmpty
        @(Get-ChildItem $drills -Recurse -File -ErrorAction Ignore | Where-Object Extension -ne '.overlay').Count | Should -Be 0
    }

    It 'a plain record planted in its place is shown as damaged, not obeyed' {
        $policy = Read-VaultObject $victim 'policies/p.json'
        try {
            Write-VaultObject $victim 'policies/p.json' '{ "name": "p", "recoveryPointRetentionHours": 1 }'
            { Get-AsrPolicy p -ErrorAction Stop } | Should -Throw -ErrorId 'VaultDataCorrupt,*'
            $listed = Get-AsrPolicy -ErrorVariable damaged -ErrorAction SilentlyContinue
            @($listed).Count | Should -Be 0
            $damaged[0].Exception.Message | Should -BeLike "*policies/p.json*not sealed*"
        } finally {
            Write-VaultObject $victim 'policies/p.json' $policy
        }
        (Get-AsrPolicy p).Name | Should -Be 'p'
    }
}
