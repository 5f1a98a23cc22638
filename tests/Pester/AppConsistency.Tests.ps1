param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# Without its tools the tests are reported as skipped with the reason; CI installs them, and under CI=true they run (and fail if they cannot).

Describe 'App-consistent points of a mounted ext4 filesystem with the fsfreeze sample script [<Backend>]' -Tag LoopDevice {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $skipReason = Get-MissingCommandReason losetup, fsfreeze, mkfs.ext4, mount -NeedsRoot
        if ($skipReason) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $backing = Join-TestPath $dir 'fs.img'
        $f = [IO.File]::Create($backing); $f.SetLength(64MB); $f.Dispose()
        $device = Invoke-Native '/usr/sbin/losetup' @('--find', '--show', $backing)
        Invoke-Native '/usr/sbin/mkfs.ext4' @('-q', '-F', $device) | Out-Null
        $mnt = Join-TestPath $dir 'mnt'
        [void][IO.Directory]::CreateDirectory($mnt)
        # commit=60: ext4 commits its journal every 5 s by default, and a commit that lands during a cycle's read is a
        # write during the capture (the point is then Inconsistent, rightly); the tests write and read well within 60 s.
        Invoke-Native '/usr/bin/mount' @('-o', 'commit=60', $device, $mnt) | Out-Null
        $script = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..', '..', 'samples', 'hooks', 'fsfreeze.sh'))
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p -AppConsistentFrequencyHours 1 | Out-Null
        Enable-AsrReplication -Name db01 -Disk $device -Policy p -AppConsistencyScript $script -AgentHost 'nobody' | Out-Null
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        Disconnect-AsrVault
        foreach ($m in @($mnt, (Join-TestPath $dir 'check'))) { if ($m) { try { Invoke-Native '/usr/bin/umount' @($m) | Out-Null } catch { } } }
        if ($device) { try { Invoke-Native '/usr/sbin/losetup' @('--detach', $device) | Out-Null } catch { } }
        if ($script:checkDevice) { try { Invoke-Native '/usr/sbin/losetup' @('--detach', $script:checkDevice) | Out-Null } catch { } }
        Remove-TestDirectory $dir
    }

    It 'flushes data the application wrote (still only in the page cache) into the point, marked AppConsistent, with a clean filesystem' {
        # Written through the filesystem, not synced: without a freeze these bytes are not on the device yet.
        $payload = 'orders table row ' * 20000
        [IO.File]::WriteAllText((Join-TestPath $mnt 'orders.txt'), $payload)
        $job = Get-AsrProtectedItem db01 | Invoke-AsrReplication -AppConsistent
        $job.State | Should -Be 'Succeeded'
        "$($job.Result.Note)".Trim() | Should -BeNullOrEmpty
        $point = Get-AsrRecoveryPoint db01 -Latest
        $point.Consistency | Should -Be 'AppConsistent'
        (Get-AsrProtectedItem db01).LastAppConsistentPointTimeUtc | Should -Be $point.RecoveryPointTimeUtc
        # The filesystem was thawed: the application can write again.
        [IO.File]::WriteAllText((Join-TestPath $mnt 'after.txt'), 'written after thaw')

        $export = $point | Export-AsrRecoveryPoint -Destination (Join-TestPath $dir 'restore')
        $image = $export.Result.Files[0]
        Invoke-Native '/usr/sbin/e2fsck' @('-f', '-n', $image) | Out-Null     # exit code 0: clean, nothing to replay
        $script:checkDevice = Invoke-Native '/usr/sbin/losetup' @('--find', '--show', '--read-only', $image)
        $check = Join-TestPath $dir 'check'
        [void][IO.Directory]::CreateDirectory($check)
        Invoke-Native '/usr/bin/mount' @('-o', 'ro,noload', $script:checkDevice, $check) | Out-Null
        [IO.File]::ReadAllText((Join-TestPath $check 'orders.txt')) | Should -Be $payload
        [IO.File]::Exists((Join-TestPath $check 'after.txt')) | Should -BeFalse
        (Get-AsrRecoveryPoint db01 -Latest | Test-AsrRecoveryPoint).Verified | Should -BeTrue
    }

    It 'a crash-consistent point taken the same way without the freeze does not contain unsynced data' {
        # The control experiment: proves the test above can fail. What the test above wrote after the thaw is synced
        # first, so the only dirty data is this payload (its writeback is 30 s away: dirty_expire_centisecs).
        Invoke-Native '/usr/bin/sync' @('-f', $mnt) | Out-Null
        $payload = 'unsynced ' * 30000
        [IO.File]::WriteAllText((Join-TestPath $mnt 'unsynced.txt'), $payload)
        $job = Get-AsrProtectedItem db01 | Invoke-AsrReplication
        (Get-AsrRecoveryPoint db01 -Latest).Consistency | Should -Be 'CrashConsistent'
        $export = Get-AsrRecoveryPoint db01 -Latest | Export-AsrRecoveryPoint -Destination (Join-TestPath $dir 'restore2')
        $text = [Text.Encoding]::Latin1.GetString([IO.File]::ReadAllBytes($export.Result.Files[0]))
        $text.Contains('unsynced unsynced unsynced unsynced ') | Should -BeFalse
    }
}
