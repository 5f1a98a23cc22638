param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

Describe 'Drill during ongoing replication, then cleanup [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $os = Join-TestPath $dir 'web01-os.img'; $data = Join-TestPath $dir 'web01-data.img'
        New-AsrSampleDisk -Path $os -SizeBytes 24MB -Seed 1 | Out-Null
        New-AsrSampleDisk -Path $data -SizeBytes (8MB + 512) -Seed 2 | Out-Null
        New-AsrVault -Path (New-TestVaultLocation $dir) -EncryptionKey 'drill key' | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name web01 -Disk $os, $data -Policy p | Out-Null
        Write-AsrSampleChange -Path $os -Fraction 0.02 -Seed 3 | Out-Null
        $atPoint2 = @{ 'web01-os.img' = Get-AsrSampleHash $os; 'web01-data.img' = Get-AsrSampleHash $data }
        Get-AsrProtectedItem web01 | Invoke-AsrReplication | Out-Null
        $item = Get-AsrProtectedItem web01
        $drillTarget = New-AsrLocalTarget (Join-TestPath $dir 'drills')
        $drill = $item | Start-AsrTestFailover -RecoveryPoint LatestProcessed -Target $drillTarget | Wait-AsrJob
        $drillDir = (Get-AsrProtectedItem web01).TestFailover.Directory
        # Production keeps replicating while the drill runs, and while a real NBD client reads the drill disk.
        $concurrentCopy = Join-TestPath $dir 'drill-during-cycles.img'
        $psi = [Diagnostics.ProcessStartInfo]::new('nbdcopy')
        foreach ($a in '--connections=1', '--requests=1', $drill.Result.Exports['web01-os.img'], $concurrentCopy) { $psi.ArgumentList.Add($a) }
        $reader = [Diagnostics.Process]::Start($psi)
        $cycles = foreach ($i in 1..2) {
            Write-AsrSampleChange -Path $os -Fraction 0.01 -Seed (10 + $i) | Out-Null
            Get-AsrProtectedItem web01 | Invoke-AsrReplication
        }
        $reader.WaitForExit()
        $sourceNow = Get-AsrSampleHash $os
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'serves every disk of point 2 over NBD and is ready in well under a second' {
        $drill.State | Should -Be 'Succeeded'
        $drill.Result.RecoveryPointSequence | Should -Be 2
        @($drill.Result.Exports.Keys).Count | Should -Be 2
        $drill.Result.Exports['web01-os.img'] | Should -Match '^nbd://127\.0\.0\.1:\d+/web01-os\.img$'
        $drill.Result.ReadyAfterMilliseconds | Should -BeLessThan 1000
        (Get-AsrProtectedItem web01).State | Should -Be 'TestFailedOver'
        [IO.File]::Exists((Join-TestPath $drillDir 'machine.json')) | Should -BeTrue
    }

    It 'replication continued during the drill (two more points, Delta cycles)' {
        ($cycles | ForEach-Object { $_.Result.Mode }) | Should -Be @('Delta', 'Delta')
        @(Get-AsrRecoveryPoint -Item web01).Count | Should -Be 4
        (Get-AsrProtectedItem web01).State | Should -Be 'TestFailedOver'
    }

    It 'an NBD read running while the cycles ran saw exactly point 2' {
        $reader.ExitCode | Should -Be 0
        Get-AsrSampleHash $concurrentCopy | Should -Be $atPoint2['web01-os.img']
    }

    It 'a real NBD client (nbdcopy) reads each drill disk equal to the source at point 2' {
        foreach ($name in 'web01-os.img', 'web01-data.img') {
            $copy = Join-TestPath $dir "drill-$name"
            & nbdcopy $drill.Result.Exports[$name] $copy
            $LASTEXITCODE | Should -Be 0
            Get-AsrSampleHash $copy | Should -Be $atPoint2[$name] -Because $name
        }
    }

    It 'Test-AsrTestFailover reads every served disk over NBD and finds it identical to point 2' {
        $check = Get-AsrProtectedItem web01 | Test-AsrTestFailover
        $check.State | Should -Be 'Succeeded'
        $check.Result.Verified | Should -BeTrue
        $check.Result.Note | Should -Match 'web01-data.img: .* identical to point 2'
    }

    It 'writes into the drill (qemu-io) land in its overlay only: never in the vault or the source' {
        & qemu-io -f raw -c 'write -P 0xab 0 1M' $drill.Result.Exports['web01-os.img'] | Out-Null
        $LASTEXITCODE | Should -Be 0
        $copy = Join-TestPath $dir 'drill-after-write.img'
        & nbdcopy $drill.Result.Exports['web01-os.img'] $copy
        Get-AsrSampleHash $copy | Should -Not -Be $atPoint2['web01-os.img']
        Get-AsrSampleHash $os | Should -Be $sourceNow
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item web01 -Sequence 2) (Join-TestPath $dir 'p2'))['web01-os.img'] | Should -Be $atPoint2['web01-os.img']
        # ... and verification now reports exactly the 256 written blocks.
        $check = Get-AsrProtectedItem web01 | Test-AsrTestFailover
        $check.Result.Verified | Should -BeFalse
        $check.Result.Note | Should -Match 'web01-os.img: 256 block\(s\) differ'
    }

    It 'a failover during the drill is refused, naming the state and what is allowed' {
        $err = { Get-AsrProtectedItem web01 | Start-AsrFailover -Target (New-AsrLocalTarget (Join-TestPath $dir 'rec')) -Confirm:$false -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidStateTransition,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidOperation'
        $err.Exception.Message | Should -Match 'TestFailedOver'
        $err.Exception.Message | Should -Match 'Start-AsrTestFailoverCleanup'
    }

    It 'cleanup stops the exports, removes everything the drill made and records the comment' {
        $job = Get-AsrProtectedItem web01 | Start-AsrTestFailoverCleanup -Comment 'drill ok' -Confirm:$false
        $job.State | Should -Be 'Succeeded'
        [IO.Directory]::Exists($drillDir) | Should -BeFalse
        @([IO.Directory]::GetFileSystemEntries($drillTarget.Path)).Count | Should -Be 0
        & nbdinfo $drill.Result.Exports['web01-os.img'] 2>$null | Out-Null
        $LASTEXITCODE | Should -Not -Be 0
        $after = Get-AsrProtectedItem web01
        $after.State | Should -Be 'Protected'
        $after.LastTestFailover.Comment | Should -Be 'drill ok'
    }

    It '-RecoveryPoint Latest replicates first and drills from the point that cycle publishes' {
        $before = (Get-AsrRecoveryPoint -Item web01 -Latest).Sequence
        Write-AsrSampleChange -Path $os -Fraction 0.01 -Seed 30 | Out-Null
        $now = Get-AsrSampleHash $os
        $latest = Get-AsrProtectedItem web01 | Start-AsrTestFailover -RecoveryPoint Latest -Target $drillTarget
        try {
            $latest.Result.RecoveryPointSequence | Should -Be ($before + 1)
            $copy = Join-TestPath $dir 'drill-latest.img'
            & nbdcopy $latest.Result.Exports['web01-os.img'] $copy
            Get-AsrSampleHash $copy | Should -Be $now
        } finally { Get-AsrProtectedItem web01 | Start-AsrTestFailoverCleanup -Confirm:$false | Out-Null }
    }

    It '-RecoveryPoint LatestAppConsistent without such a point fails clearly and starts nothing' {
        $err = { Get-AsrProtectedItem web01 | Start-AsrTestFailover -RecoveryPoint LatestAppConsistent -Target $drillTarget -ErrorAction Stop } |
            Should -Throw -ErrorId 'RecoveryPointNotFound,*' -PassThru
        $err.Exception.Message | Should -Match 'LatestAppConsistent'
        (Get-AsrProtectedItem web01).State | Should -Be 'Protected'
        @([IO.Directory]::GetFileSystemEntries($drillTarget.Path)).Count | Should -Be 0
        @(Get-AsrJob -TargetName web01 -State Failed).Count | Should -Be 0 -Because 'a refused drill starts no job'
    }
}

Describe 'Planned failover with writes up to the last moment, commit, reprotect, failback [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $os = Join-TestPath $dir 'app-os.img'; $data = Join-TestPath $dir 'app-data.img'
        New-AsrSampleDisk -Path $os -SizeBytes 16MB -Seed 4 | Out-Null
        New-AsrSampleDisk -Path $data -SizeBytes 16MB -Seed 5 | Out-Null
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name app -Disk $os, $data -Policy p | Out-Null
        $target = New-AsrLocalTarget (Join-TestPath $dir 'recovery')

        # A real process writes random 4 KiB blocks to the data disk until the StopSource hook kills it.
        $psi = [Diagnostics.ProcessStartInfo]::new('/bin/bash')
        $psi.ArgumentList.Add('-c')
        $psi.ArgumentList.Add("while true; do dd if=/dev/urandom of='$data' bs=4096 count=1 seek=`$((RANDOM % 4096)) conv=notrunc status=none; done")
        $writer = [Diagnostics.Process]::Start($psi)
        [Threading.Thread]::Sleep(500)
        $writer.HasExited | Should -BeFalse -Because 'the writer must still be writing when the failover starts'
        $hookRan = $false
        $failover = Get-AsrProtectedItem app | Start-AsrFailover -Planned -Target $target -Confirm:$false -StopSource {
            param($i)
            $writer.Kill(); $writer.WaitForExit()
            $script:hookRan = $true
        }
        $lastWrite = @{ 'app-os.img' = Get-AsrSampleHash $os; 'app-data.img' = Get-AsrSampleHash $data }
        $recovered = Join-TestPath $target.Path 'app'
    }
    AfterAll {
        if ($writer -and -not $writer.HasExited) { $writer.Kill() }
        Disconnect-AsrVault; Remove-TestDirectory $dir
    }

    It 'the hook stopped the writer, and the final sync lost no write: recovered disks equal the source' {
        $script:hookRan | Should -BeTrue
        $writer.HasExited | Should -BeTrue
        $failover.State | Should -Be 'Succeeded'
        $failover.Operation | Should -Be 'PlannedFailover'
        $failover.Result.ChangedBytes | Should -BeGreaterThan 0
        Get-AsrSampleHash (Join-TestPath $recovered 'app-data.img') | Should -Be $lastWrite['app-data.img']
        Get-AsrSampleHash (Join-TestPath $recovered 'app-os.img') | Should -Be $lastWrite['app-os.img']
        $item = Get-AsrProtectedItem app
        $item.State | Should -Be 'FailedOver'
        $item.ActiveLocation | Should -Be 'Recovery'
    }

    It 'machine.json describes the recovered machine and how to boot it' {
        $m = [Text.Json.JsonDocument]::Parse([IO.File]::ReadAllText((Join-TestPath $recovered 'machine.json'))).RootElement
        $m.GetProperty('name').GetString() | Should -Be 'app'
        $m.GetProperty('purpose').GetString() | Should -Be 'Failover'
        $m.GetProperty('disks').GetArrayLength() | Should -Be 2
        $m.GetProperty('qemuCommand').GetString() | Should -Match 'file=app-os.img,format=raw'
    }

    It 'commit fixes the point: changing or cancelling it is refused afterwards' {
        (Get-AsrProtectedItem app | Complete-AsrFailover -Confirm:$false).State | Should -Be 'Succeeded'
        (Get-AsrProtectedItem app).State | Should -Be 'Committed'
        { Get-AsrProtectedItem app | Switch-AsrRecoveryPoint -RecoveryPoint 1 -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidStateTransition,*'
        { Get-AsrProtectedItem app | Undo-AsrFailover -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidStateTransition,*'
    }

    It 'reprotect after the recovered disk diverged by 3% sends only the differing blocks (within 2x)' {
        $diverged = Write-AsrSampleChange -Path (Join-TestPath $recovered 'app-os.img') -Fraction 0.03 -Seed 6
        $job = Get-AsrProtectedItem app | Update-AsrProtectionDirection -Confirm:$false
        $job.State | Should -Be 'Succeeded'
        $job.Result.BytesSent | Should -BeGreaterThan 0
        $job.Result.BytesSent | Should -BeLessOrEqual (2 * $diverged)
        $job.Result.BlocksCompared | Should -Be (32MB / 4096)
        Get-AsrSampleHash $os | Should -Be (Get-AsrSampleHash (Join-TestPath $recovered 'app-os.img'))
        (Get-AsrProtectedItem app).State | Should -Be 'Reprotected'
    }

    It 'a reverse cycle sends the recovered machine''s new writes to the original site' {
        $written = Write-AsrSampleChange -Path (Join-TestPath $recovered 'app-data.img') -Fraction 0.01 -Seed 7
        $job = Get-AsrProtectedItem app | Invoke-AsrReplication
        $job.Operation | Should -Be 'ReverseReplicationCycle'
        $job.Result.BytesSent | Should -BeLessOrEqual $written
        Get-AsrSampleHash $data | Should -Be (Get-AsrSampleHash (Join-TestPath $recovered 'app-data.img'))
    }

    It 'a target rewritten behind the reverse replication''s back is made exact again (both sides compared every cycle)' {
        $tampered = Write-AsrSampleChange -Path $data -Fraction 0.01 -Seed 17   # someone writes to the original disk
        $job = Get-AsrProtectedItem app | Invoke-AsrReplication
        $job.State | Should -Be 'Succeeded'
        $job.Result.BytesSent | Should -BeGreaterThan 0
        $job.Result.BytesSent | Should -BeLessOrEqual $tampered
        Get-AsrSampleHash $data | Should -Be (Get-AsrSampleHash (Join-TestPath $recovered 'app-data.img'))
    }

    It 'failback: final sync, the original disks are the machine again and protection to the vault resumes' {
        Write-AsrSampleChange -Path (Join-TestPath $recovered 'app-os.img') -Fraction 0.01 -Seed 8 | Out-Null
        $final = @{ 'app-os.img' = Get-AsrSampleHash (Join-TestPath $recovered 'app-os.img'); 'app-data.img' = Get-AsrSampleHash (Join-TestPath $recovered 'app-data.img') }
        $job = Get-AsrProtectedItem app | Invoke-AsrFailback -Confirm:$false
        $job.State | Should -Be 'Succeeded'
        $job.Result.BytesSent | Should -BeGreaterThan 0
        $item = Get-AsrProtectedItem app
        $item.State | Should -Be 'Protected'
        $item.ActiveLocation | Should -Be 'Primary'
        Get-AsrSampleHash $os | Should -Be $final['app-os.img']
        $got = Get-ExportedHashes (Get-AsrRecoveryPoint -Item app -Latest) (Join-TestPath $dir 'after-failback')
        $got['app-os.img'] | Should -Be $final['app-os.img']
        $got['app-data.img'] | Should -Be $final['app-data.img']
    }

    It 'Resume-AsrResync compares every block and, with nothing different, sends nothing' {
        $job = Get-AsrProtectedItem app | Resume-AsrResync
        $job.Result.Mode | Should -Be 'Resync'
        $job.Result.BlocksCompared | Should -Be (32MB / 4096)
        $job.Result.ChangedBlocks | Should -Be 0
        $job.Result.BytesSent | Should -Be 0
    }
}

Describe 'Unplanned failover to an older point, change of point, cancel; failback to an alternate location [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'db01.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 12MB -Seed 9 | Out-Null
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        $at = @{}
        $at[1] = Get-AsrSampleHash $disk
        Enable-AsrReplication -Name db01 -Disk $disk -Policy p | Out-Null
        foreach ($n in 2..3) {
            Write-AsrSampleChange -Path $disk -Fraction 0.05 -Seed (20 + $n) | Out-Null
            $at[$n] = Get-AsrSampleHash $disk
            Get-AsrProtectedItem db01 | Invoke-AsrReplication | Out-Null
        }
        $target = New-AsrLocalTarget (Join-TestPath $dir 'recovery')
        $recoveredDisk = Join-TestPath $target.Path 'db01/db01.img'
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'fails over (unplanned) to the older point 1 chosen by point object' {
        $p1 = Get-AsrRecoveryPoint -Item db01 -Sequence 1
        $job = Get-AsrProtectedItem db01 | Start-AsrFailover -RecoveryPoint $p1 -Target $target -Confirm:$false
        $job.Operation | Should -Be 'UnplannedFailover'
        $job.Result.RecoveryPointSequence | Should -Be 1
        Get-AsrSampleHash $recoveredDisk | Should -Be $at[1]
    }

    It 'Switch-AsrRecoveryPoint moves it to point 2 (by number) before commit' {
        (Get-AsrProtectedItem db01 | Switch-AsrRecoveryPoint -RecoveryPoint 2 -Confirm:$false).Result.RecoveryPointSequence | Should -Be 2
        Get-AsrSampleHash $recoveredDisk | Should -Be $at[2]
        (Get-AsrProtectedItem db01).Failover.RecoveryPointSequence | Should -Be 2
    }

    It 'Undo-AsrFailover cancels: recovered disks removed, protection resumes where it was' {
        (Get-AsrProtectedItem db01 | Undo-AsrFailover -Confirm:$false).State | Should -Be 'Succeeded'
        [IO.File]::Exists($recoveredDisk) | Should -BeFalse
        (Get-AsrProtectedItem db01).State | Should -Be 'Protected'
        (Get-AsrProtectedItem db01 | Invoke-AsrReplication).Result.Mode | Should -Be 'Delta'
    }

    It 'with the original site gone: fails over by time, commits, and fails back to a new empty disk (full copy)' {
        [IO.File]::Delete($disk)   # the original site is lost
        $job = Get-AsrProtectedItem db01 | Start-AsrFailover -RecoveryPoint ([DateTime]::UtcNow) -Target $target -Confirm:$false
        $job.Result.RecoveryPointSequence | Should -Be 4
        Get-AsrProtectedItem db01 | Complete-AsrFailover -Confirm:$false | Out-Null
        $err = { Get-AsrProtectedItem db01 | Update-AsrProtectionDirection -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'DiskNotFound,*' -PassThru
        $err.Exception.Message | Should -Match '-AlternateDisk'
        (Get-AsrProtectedItem db01).State | Should -Be 'Committed'
        @(Get-AsrJob -TargetName db01 -Operation Reprotect).Count | Should -Be 0 -Because 'a refused reprotect starts no job'
        $alternate = Join-TestPath $dir 'new-site/db01.img'
        $re = Get-AsrProtectedItem db01 | Update-AsrProtectionDirection -AlternateDisk $alternate -Confirm:$false
        $re.Result.BytesSent | Should -BeGreaterThan (6MB)   # every non-zero block, since the new disk is empty
        Get-AsrSampleHash $alternate | Should -Be (Get-AsrSampleHash $recoveredDisk)
        Get-AsrProtectedItem db01 | Invoke-AsrFailback -Confirm:$false | Out-Null
        $item = Get-AsrProtectedItem db01
        $item.Disks[0].SourcePath | Should -Be $alternate
        $item.State | Should -Be 'Protected'
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item db01 -Latest) (Join-TestPath $dir 'fb'))['db01.img'] | Should -Be (Get-AsrSampleHash $alternate)
    }
}

Describe 'Every invalid transition is refused and changes nothing [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = New-TestVaultLocation $dir
        $disk = Join-TestPath $dir 'x.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 2MB | Out-Null
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name x -Disk $disk -Policy p | Out-Null
        $target = New-AsrLocalTarget (Join-TestPath $dir 't')
        # Each command with the arguments it needs; none may be allowed in the state under test.
        $commands = @{
            'Start-AsrTestFailoverCleanup'  = { Get-AsrProtectedItem x | Start-AsrTestFailoverCleanup -Confirm:$false -ErrorAction Stop }
            'Switch-AsrRecoveryPoint'       = { Get-AsrProtectedItem x | Switch-AsrRecoveryPoint -RecoveryPoint 1 -Confirm:$false -ErrorAction Stop }
            'Undo-AsrFailover'              = { Get-AsrProtectedItem x | Undo-AsrFailover -Confirm:$false -ErrorAction Stop }
            'Complete-AsrFailover'          = { Get-AsrProtectedItem x | Complete-AsrFailover -Confirm:$false -ErrorAction Stop }
            'Update-AsrProtectionDirection' = { Get-AsrProtectedItem x | Update-AsrProtectionDirection -Confirm:$false -ErrorAction Stop }
            'Invoke-AsrFailback'            = { Get-AsrProtectedItem x | Invoke-AsrFailback -Confirm:$false -ErrorAction Stop }
            'Start-AsrTestFailover'         = { Get-AsrProtectedItem x | Start-AsrTestFailover -Target $target -ErrorAction Stop }
            'Start-AsrFailover'             = { Get-AsrProtectedItem x | Start-AsrFailover -Target $target -Confirm:$false -ErrorAction Stop }
            'Invoke-AsrReplication'         = { Get-AsrProtectedItem x | Invoke-AsrReplication -ErrorAction Stop }
            'Resume-AsrResync'              = { Get-AsrProtectedItem x | Resume-AsrResync -ErrorAction Stop }
            'Disable-AsrReplication'        = { Get-AsrProtectedItem x | Disable-AsrReplication -Confirm:$false -ErrorAction Stop }
        }
        function Assert-Refused([string]$State, [string[]]$Refused) {
            (Get-AsrProtectedItem x).State | Should -Be $State
            foreach ($name in $Refused) {
                $before = Get-VaultSnapshot $vaultPath
                $err = $commands[$name] | Should -Throw -ErrorId 'InvalidStateTransition,*' -PassThru -Because "$name in $State"
                $err.Exception.Message | Should -Match "state $State"
                $err.Exception.Message | Should -Match 'Allowed now:'
                Get-VaultSnapshot $vaultPath | Should -Be $before -Because "a refused $name must not change the vault"
            }
        }
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'Protected: cleanup, change point, cancel, commit, reprotect and failback are refused' {
        Assert-Refused 'Protected' @('Start-AsrTestFailoverCleanup', 'Switch-AsrRecoveryPoint', 'Undo-AsrFailover', 'Complete-AsrFailover', 'Update-AsrProtectionDirection', 'Invoke-AsrFailback')
    }

    It 'TestFailedOver: failover, a second drill, commit, reprotect, failback and disable are refused' {
        Get-AsrProtectedItem x | Start-AsrTestFailover -Target $target | Out-Null
        Assert-Refused 'TestFailedOver' @('Start-AsrFailover', 'Start-AsrTestFailover', 'Complete-AsrFailover', 'Update-AsrProtectionDirection', 'Invoke-AsrFailback', 'Disable-AsrReplication', 'Undo-AsrFailover')
        Get-AsrProtectedItem x | Start-AsrTestFailoverCleanup -Confirm:$false | Out-Null
    }

    It 'FailedOver: replication, resync, drills, a second failover, reprotect, failback and disable are refused' {
        Get-AsrProtectedItem x | Start-AsrFailover -Target $target -Confirm:$false | Out-Null
        Assert-Refused 'FailedOver' @('Invoke-AsrReplication', 'Resume-AsrResync', 'Start-AsrTestFailover', 'Start-AsrFailover', 'Update-AsrProtectionDirection', 'Invoke-AsrFailback', 'Disable-AsrReplication')
    }

    It 'Committed: replication, change point, cancel, a second commit and failback are refused' {
        Get-AsrProtectedItem x | Complete-AsrFailover -Confirm:$false | Out-Null
        Assert-Refused 'Committed' @('Invoke-AsrReplication', 'Switch-AsrRecoveryPoint', 'Undo-AsrFailover', 'Complete-AsrFailover', 'Invoke-AsrFailback', 'Start-AsrFailover')
    }

    It 'Reprotected: failover, drills, commit, cancel, change of point and resync are refused' {
        Get-AsrProtectedItem x | Update-AsrProtectionDirection -Confirm:$false | Out-Null
        Assert-Refused 'Reprotected' @('Start-AsrFailover', 'Start-AsrTestFailover', 'Complete-AsrFailover', 'Undo-AsrFailover', 'Switch-AsrRecoveryPoint', 'Resume-AsrResync')
    }

    It 'ResyncRequired: cleanup, change point, cancel, commit, reprotect and failback are refused' {
        Get-AsrProtectedItem x | Invoke-AsrFailback -Confirm:$false | Out-Null
        $fs = [IO.FileStream]::new($disk, [IO.FileMode]::Open); $fs.SetLength(3MB); $fs.Dispose()
        { Get-AsrProtectedItem x | Invoke-AsrReplication -ErrorAction Stop } | Should -Throw -ErrorId 'DiskSizeChanged,*'
        Assert-Refused 'ResyncRequired' @('Start-AsrTestFailoverCleanup', 'Switch-AsrRecoveryPoint', 'Undo-AsrFailover', 'Complete-AsrFailover', 'Update-AsrProtectionDirection', 'Invoke-AsrFailback')
    }
}

Describe 'Failover safety: nothing lost, nothing overwritten, no dead ends [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vms = Join-TestPath $dir 'vms'
        $disk = Join-TestPath $vms 'a/a.img'
        [void][IO.Directory]::CreateDirectory([IO.Path]::GetDirectoryName($disk))
        New-AsrSampleDisk -Path $disk -SizeBytes 16MB -Seed 11 | Out-Null
        $other = Join-TestPath $dir 'b.img'
        New-AsrSampleDisk -Path $other -SizeBytes 2MB -Seed 12 | Out-Null
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name a -Disk $disk -Policy p | Out-Null
        Enable-AsrReplication -Name b -Disk $other -Policy p | Out-Null
        $target = New-AsrLocalTarget (Join-TestPath $dir 'recovery')
    }
    AfterAll {
        if ($writer -and -not $writer.HasExited) { $writer.Kill() }
        Disconnect-AsrVault; Remove-TestDirectory $dir
    }

    It 'a target that would hold a protected disk is refused before anything runs (FailoverTargetInvalid)' {
        $before = Get-AsrSampleHash $disk
        $err = { Get-AsrProtectedItem a | Start-AsrFailover -Target (New-AsrLocalTarget $vms) -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'FailoverTargetInvalid,*' -PassThru
        $err.Exception.Message | Should -Match 'a.img'
        Get-AsrSampleHash $disk | Should -Be $before
        (Get-AsrProtectedItem a).State | Should -Be 'Protected'
    }

    It 'a planned failover needs -StopSource or -SourceStopped' {
        { Get-AsrProtectedItem a | Start-AsrFailover -Planned -Target $target -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'HookFailed,*'
    }

    It 'a planned failover of a source that is still written fails (SourceStillWriting) and leaves nothing behind' {
        $psi = [Diagnostics.ProcessStartInfo]::new('/bin/bash')
        $psi.ArgumentList.Add('-c')
        $psi.ArgumentList.Add("while true; do dd if=/dev/urandom of='$disk' bs=4096 count=1 seek=`$((RANDOM % 4096)) conv=notrunc status=none; done")
        $script:writer = [Diagnostics.Process]::Start($psi)
        try {
            [Threading.Thread]::Sleep(300)
            $err = { Get-AsrProtectedItem a | Start-AsrFailover -Planned -SourceStopped -Target $target -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'SourceStillWriting,*' -PassThru
            $err.Exception.Message | Should -Match 'nothing was failed over'
        } finally { $script:writer.Kill(); $script:writer.WaitForExit() }
        (Get-AsrProtectedItem a).State | Should -Be 'Protected'
        (Get-AsrProtectedItem a).ExclusiveOperation | Should -BeNullOrEmpty
        [IO.Directory]::Exists((Join-TestPath $target.Path 'a')) | Should -BeFalse
    }

    It 'a point object of another item is refused, not swapped for a same-numbered point' {
        $pointOfB = Get-AsrRecoveryPoint -Item b -Sequence 1
        { Get-AsrProtectedItem a | Start-AsrFailover -RecoveryPoint $pointOfB -Target $target -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'RecoveryPointNotFound,*'
        { Get-AsrProtectedItem a | Start-AsrTestFailover -RecoveryPoint $pointOfB -Target $target -ErrorAction Stop } | Should -Throw -ErrorId 'RecoveryPointNotFound,*'
    }

    It 'losing the original disk while Reprotected is not a dead end: reprotect again to an alternate disk, fail back' {
        $now = Get-AsrSampleHash $disk
        (Get-AsrProtectedItem a | Start-AsrFailover -Planned -SourceStopped -Target $target -Confirm:$false).State | Should -Be 'Succeeded'
        Get-AsrSampleHash (Join-TestPath $target.Path 'a/a.img') | Should -Be $now
        Get-AsrProtectedItem a | Complete-AsrFailover -Confirm:$false | Out-Null
        Get-AsrProtectedItem a | Update-AsrProtectionDirection -Confirm:$false | Out-Null
        [IO.File]::Delete($disk)
        { Get-AsrProtectedItem a | Invoke-AsrReplication -ErrorAction Stop } | Should -Throw -ErrorId 'DiskNotFound,*'
        { Get-AsrProtectedItem a | Invoke-AsrFailback -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'DiskNotFound,*'
        (Get-AsrProtectedItem a).State | Should -Be 'Reprotected'
        $alternate = Join-TestPath $dir 'site2/a.img'
        (Get-AsrProtectedItem a | Update-AsrProtectionDirection -AlternateDisk $alternate -Confirm:$false).State | Should -Be 'Succeeded'
        Get-AsrProtectedItem a | Invoke-AsrFailback -Confirm:$false | Out-Null
        (Get-AsrProtectedItem a).Disks[0].SourcePath | Should -Be $alternate
        Get-AsrSampleHash $alternate | Should -Be (Get-AsrSampleHash (Join-TestPath $target.Path 'a/a.img'))
    }
}

Describe 'A drill whose serving process ended [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'gone.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 4MB -Seed 13 | Out-Null
        $vaultPath = New-TestVaultLocation $dir
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name g -Disk $disk -Policy p | Out-Null
        $drillTarget = Join-TestPath $dir 'drills'
        # Another process starts the drill and exits: its NBD exports end with it.
        $r = Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; Get-AsrProtectedItem g | Start-AsrTestFailover -Target (New-AsrLocalTarget '$drillTarget') | Out-Null"
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'the item says its drill is no longer served and needs cleanup' {
        $r.ExitCode | Should -Be 0 -Because $r.Error
        $item = Get-AsrProtectedItem g
        $item.State | Should -Be 'TestFailedOver'
        $item.LastError | Should -Match 'no longer served'
        $item.ReplicationHealth | Should -Be 'Warning'
    }

    It 'cleanup from this session removes what the drill made' {
        $drillDir = (Get-AsrProtectedItem g).TestFailover.Directory
        [IO.Directory]::Exists($drillDir) | Should -BeTrue
        (Get-AsrProtectedItem g | Start-AsrTestFailoverCleanup -Confirm:$false).State | Should -Be 'Succeeded'
        [IO.Directory]::Exists($drillDir) | Should -BeFalse
        (Get-AsrProtectedItem g).State | Should -Be 'Protected'
    }
}
