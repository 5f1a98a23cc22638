param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# Issue #14: disks read while the machine keeps writing. Loop-mounted XFS (reflink=1), btrfs and ext4 made by the test;
# a writer thread runs through the captures; every point is checked by hash against what it claims to hold. The source
# side does not depend on the vault backend, so this runs on the local backend only.
# Without its tools the tests are reported as skipped with the reason; CI installs them, and under CI=true they run (and fail if they cannot).

if ($Backend -eq 'Local') {
Describe 'Live sources: honest labels, reflink capture, sparse reads' -Tag LoopDevice, Mount {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $skipReason = Get-MissingCommandReason losetup, mount, mkfs.xfs, mkfs.btrfs, mkfs.ext4, qemu-img, qemu-io, qemu-nbd -NeedsRoot
        if ($skipReason) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $mounts = [Collections.Generic.List[string]]::new()
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null

        function New-LoopFileSystem([string]$Type) {
            $image = Join-TestPath $dir "$Type.fs"
            $mountPoint = Join-TestPath $dir "mnt-$Type"
            $f = [IO.File]::Create($image); $f.SetLength(512MB); $f.Dispose()
            $mkfs = @{ xfs = @('-q', '-m', 'reflink=1'); btrfs = @('-q'); ext4 = @('-q', '-F') }[$Type]
            Invoke-Native "mkfs.$Type" (@($mkfs) + $image) | Out-Null
            New-Item -ItemType Directory $mountPoint | Out-Null
            Invoke-Native 'mount' @('-o', 'loop', $image, $mountPoint) | Out-Null
            $mounts.Add($mountPoint)
            $mountPoint
        }

        # A writer process (dd in a shell loop) that rewrites random 4 KiB blocks of $Path, each synced, until $Stop is
        # deleted; returns the process once the file shows it writing, so a capture right after happens while it writes.
        function Start-TestWriter([string]$Path, [string]$Stop) {
            Set-Content -Path $Stop -Value go
            $blocks = [long]((Get-Item $Path).Length / 4096)
            $psi = [Diagnostics.ProcessStartInfo]::new('bash')
            $psi.ArgumentList.Add('-c')
            $psi.ArgumentList.Add('n=0; while [ -e "$2" ]; do dd if=/dev/urandom of="$1" bs=4096 count=1 seek=$(( (RANDOM * 32768 + RANDOM) % $3 )) conv=notrunc,fsync status=none; n=$((n+1)); done; echo $n')
            $psi.ArgumentList.Add('writer'); $psi.ArgumentList.Add($Path); $psi.ArgumentList.Add($Stop); $psi.ArgumentList.Add([string]$blocks)
            $psi.RedirectStandardOutput = $true
            $before = (Get-Item $Path).LastWriteTimeUtc
            $process = [Diagnostics.Process]::Start($psi)
            $deadline = [DateTime]::UtcNow.AddSeconds(30)
            while ((Get-Item $Path).LastWriteTimeUtc -eq $before -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 20 }
            $process
        }
        function Stop-TestWriter($Process, [string]$Stop) {
            Remove-Item $Stop
            $count = $Process.StandardOutput.ReadToEnd(); $Process.WaitForExit(); $Process.Dispose()
            [long]$count.Trim()
        }
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        Disconnect-AsrVault
        foreach ($m in $mounts) { try { Invoke-Native 'umount' @($m) | Out-Null } catch { Invoke-Native 'umount' @('-l', $m) | Out-Null } }
        Remove-TestDirectory $dir
    }

    It 'an image file on <_> is cloned at the instant while a writer runs, and only changed ranges are read' -ForEach 'xfs', 'btrfs' {
        $fsType = $_
        $mnt = New-LoopFileSystem $fsType
        $disk = Join-TestPath $mnt 'app.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 48MB -Seed 5 | Out-Null
        $name = "app-$fsType"
        (Enable-AsrReplication -Name $name -Disk $disk -Policy p).State | Should -Be 'Succeeded'
        $item = Get-AsrProtectedItem $name
        $item.CaptureMethod | Should -Be 'ReflinkClone'
        $item.ReachableConsistency | Should -Match 'CrashConsistent at every point'

        $stop = Join-TestPath $dir "stop-$fsType"
        $writer = Start-TestWriter $disk $stop
        try {
            $jobs = 1..2 | ForEach-Object { Invoke-AsrReplication -Name $name }
        } finally { $written = Stop-TestWriter $writer $stop }
        $written | Should -BeGreaterThan 0
        $jobs.State | Should -Be @('Succeeded', 'Succeeded')
        $point = Get-AsrRecoveryPoint -Item $name -Latest
        $point.Consistency | Should -Be 'CrashConsistent'
        $point.ConsistencyEvidence | Should -Match 'reflink clone'
        # The point is the file at the clone instant: the clone kept beside the disk for the next comparison.
        $clone = [IO.Path]::Combine($mnt, '.asr-capture', $item.Id, "disk0.$($point.Sequence).$($point.AttemptId).clone")
        Test-Path $clone | Should -BeTrue
        (Get-ExportedHashes $point (Join-TestPath $dir "export-$fsType"))['app.img'] | Should -Be (Get-AsrSampleHash $clone)
        (Get-AsrSampleHash $clone) | Should -Not -Be (Get-AsrSampleHash $disk)   # the writer went on after the clone

        # 1% of the blocks rewritten while quiet: the delta reads about that much, not the disk.
        $changed = Write-AsrSampleChange -Path $disk -Fraction 0.01 -Seed 8
        $delta = Invoke-AsrReplication -Name $name
        $delta.Result.Mode | Should -Be 'Delta'
        $delta.Result.BytesScanned | Should -BeLessOrEqual (2 * $changed)
        Write-Host "  $fsType delta: $($delta.Result.BytesScanned) bytes read for $changed bytes rewritten of 48 MiB"
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item $name -Latest) (Join-TestPath $dir "export2-$fsType"))['app.img'] | Should -Be (Get-AsrSampleHash $disk)

        # With a freeze script the application is held for the clone only, not for the read.
        $hookLog = Join-TestPath $dir "hook-$fsType.log"
        $hook = Join-TestPath $dir "hook-$fsType.sh"
        Set-Content -Path $hook -Value "#!/bin/sh`necho `"`$1 `$(date +%s%N)`" >> '$hookLog'"
        Invoke-Native 'chmod' @('0755', $hook) | Out-Null
        Set-AsrProtectedItem -Name $name -AppConsistencyScript $hook | Out-Null
        $app = Invoke-AsrReplication -Name $name -AppConsistent
        $app.State | Should -Be 'Succeeded'
        (Get-AsrRecoveryPoint -Item $name -Latest).Consistency | Should -Be 'AppConsistent'
        $lines = @(Get-Content $hookLog)
        $lines.Count | Should -Be 2
        $lines[0] | Should -Match '^freeze '
        $lines[1] | Should -Match '^thaw '
        Write-Host "  $fsType freeze held $((([long]($lines[1] -split ' ')[1]) - ([long]($lines[0] -split ' ')[1])) / 1e6) ms (clone only); cycle $([math]::Round($app.Duration.TotalMilliseconds)) ms"

        Disable-AsrReplication -Name $name -Confirm:$false
        Test-Path ([IO.Path]::Combine($mnt, '.asr-capture', $item.Id)) | Should -BeFalse
    }

    It 'a live read the source wrote through is Inconsistent, and LatestProcessed skips it unless asked' {
        $mnt = New-LoopFileSystem 'ext4'
        $disk = Join-TestPath $mnt 'db.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 48MB -Seed 6 | Out-Null
        Enable-AsrReplication -Name db -Disk $disk -Policy p | Out-Null
        $item = Get-AsrProtectedItem db
        $item.CaptureMethod | Should -Be 'HashScan'
        $item.ReachableConsistency | Should -Match 'Inconsistent'
        $quiet = Get-AsrRecoveryPoint -Item db -Latest
        $quiet.Consistency | Should -Be 'CrashConsistent'
        $quiet.ConsistencyEvidence | Should -Match 'nothing wrote'

        $stop = Join-TestPath $dir 'stop-db'
        $writer = Start-TestWriter $disk $stop
        # The writer writes a block every few milliseconds and a scan of this disk takes tens: a read can still fall
        # between two writes, and then its point is rightly CrashConsistent. Up to 5 cycles, until one is read through writes.
        try {
            for ($attempt = 1; $attempt -le 5; $attempt++) {
                $job = Invoke-AsrReplication -Name db -WarningVariable warned -WarningAction SilentlyContinue
                $job.State | Should -Be 'Succeeded'
                if ($job.Result.Note -match 'Inconsistent') { break }
            }
        }
        finally { Stop-TestWriter $writer $stop | Out-Null }
        $job.Result.Note | Should -Match 'Inconsistent'
        # The newest point a quiet read made (the first one, or a cycle above that fell between two writes).
        $quiet = Get-AsrRecoveryPoint -Item db | Where-Object Consistency -eq 'CrashConsistent' | Select-Object -Last 1
        $fuzzy = Get-AsrRecoveryPoint -Item db -Latest
        $fuzzy.Consistency | Should -Be 'Inconsistent'
        $fuzzy.ConsistencyEvidence | Should -Match "disk 'db.img'.*during writes|during writes.*disk 'db.img'"
        (Get-AsrProtectedItem db).LastPointConsistency | Should -Be 'Inconsistent'
        Get-AsrEvent -Item db | Where-Object EventType -eq 'PointInconsistent' | Should -Not -BeNullOrEmpty

        $target = Join-TestPath $dir 'drills'
        Start-AsrTestFailover -Name db -Target $target -RecoveryPoint LatestProcessed | Out-Null
        (Get-AsrProtectedItem db).TestFailover.RecoveryPointSequence | Should -Be $quiet.Sequence
        Start-AsrTestFailoverCleanup -Name db -Confirm:$false | Out-Null
        Start-AsrTestFailover -Name db -Target $target -RecoveryPoint LatestProcessed -AllowInconsistent | Out-Null
        (Get-AsrProtectedItem db).TestFailover.RecoveryPointSequence | Should -Be $fuzzy.Sequence
        Start-AsrTestFailoverCleanup -Name db -Confirm:$false | Out-Null

        # The same choice for a failover and for Switch-AsrRecoveryPoint before commit: the consistent point unless asked.
        $failoverTarget = New-AsrLocalTarget (Join-TestPath $dir 'recovered-db')
        (Get-AsrProtectedItem db | Start-AsrFailover -Target $failoverTarget -RecoveryPoint LatestProcessed -Confirm:$false).Result.RecoveryPointSequence | Should -Be $quiet.Sequence
        (Get-AsrProtectedItem db | Switch-AsrRecoveryPoint -RecoveryPoint LatestProcessed -AllowInconsistent -Confirm:$false).Result.RecoveryPointSequence | Should -Be $fuzzy.Sequence
        (Get-AsrProtectedItem db | Switch-AsrRecoveryPoint -RecoveryPoint LatestProcessed -Confirm:$false).Result.RecoveryPointSequence | Should -Be $quiet.Sequence
        (Get-AsrProtectedItem db | Undo-AsrFailover -Confirm:$false).State | Should -Be 'Succeeded'
        Disable-AsrReplication -Name db -Confirm:$false
    }

    It 'a sparse disk''s holes are not read' {
        $disk = Join-TestPath $dir 'sparse.img'
        $f = [IO.File]::Create($disk); $f.SetLength(1GB); $f.Dispose()
        foreach ($at in 0, 512MB, (1GB - 4MB)) {
            $data = [byte[]]::new(4MB); [Random]::new([int]($at / 1MB)).NextBytes($data)
            $s = [IO.FileStream]::new($disk, 'Open', 'ReadWrite'); $s.Position = $at; $s.Write($data, 0, $data.Length); $s.Dispose()
        }
        $job = Enable-AsrReplication -Name sparse -Disk $disk -Policy p
        $job.State | Should -Be 'Succeeded'
        $job.Result.BytesScanned | Should -BeLessOrEqual (13MB)
        $job.Result.Note | Should -Match 'holes not read'
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item sparse -Latest) (Join-TestPath $dir 'export-sparse'))['sparse.img'] | Should -Be (Get-AsrSampleHash $disk)
        Disable-AsrReplication -Name sparse -Confirm:$false
    }

    It 'a stopped qcow2 image is tracked by its persistent dirty bitmaps' {
        $raw = Join-TestPath $dir 'vm.raw'
        New-AsrSampleDisk -Path $raw -SizeBytes 32MB -Seed 12 | Out-Null
        $disk = Join-TestPath $dir 'vm.qcow2'
        Invoke-Native 'qemu-img' @('convert', '-q', '-f', 'raw', '-O', 'qcow2', $raw, $disk) | Out-Null
        (Enable-AsrReplication -Name vm -Disk $disk -Policy p).State | Should -Be 'Succeeded'
        $item = Get-AsrProtectedItem vm
        $item.Disks[0].SourceFormat | Should -Be 'qcow2'
        $item.CaptureMethod | Should -Be 'Qcow2Bitmap'
        # The image's bitmap of point 1 records what a QEMU program writes while the machine is "stopped" for us.
        Invoke-Native 'qemu-io' @('-f', 'qcow2', '-c', 'write -P 0x5a 1M 64k', '-c', 'write -P 0xa5 20M 4k', $disk) | Out-Null
        $delta = Invoke-AsrReplication -Name vm
        $delta.Result.Mode | Should -Be 'Delta'
        $delta.Result.Note | Should -Not -Match 'read in full'
        $delta.Result.BytesScanned | Should -BeLessOrEqual (256KB)
        $delta.Result.ChangedBytes | Should -Be (68KB)
        (Get-AsrRecoveryPoint -Item vm -Latest).Consistency | Should -Be 'CrashConsistent'
        # The bitmap of the latest point lost (removed by someone): the next cycle reads the image whole and says why.
        $latest = Get-AsrRecoveryPoint -Item vm -Latest
        Invoke-Native 'qemu-img' @('bitmap', '--remove', '-f', 'qcow2', $disk, "asr-$($item.Id)-$($latest.Sequence)-$($latest.AttemptId)") | Out-Null
        Invoke-Native 'qemu-io' @('-f', 'qcow2', '-c', 'write -P 0x11 3M 4k', $disk) | Out-Null
        $full = Invoke-AsrReplication -Name vm
        $full.Result.Note | Should -Match 'no dirty bitmap of point'
        $full.Result.ChangedBytes | Should -Be (4KB)
        # A bitmap someone disabled stopped recording: it is not trusted either.
        $latest = Get-AsrRecoveryPoint -Item vm -Latest
        Invoke-Native 'qemu-img' @('bitmap', '--disable', '-f', 'qcow2', $disk, "asr-$($item.Id)-$($latest.Sequence)-$($latest.AttemptId)") | Out-Null
        Invoke-Native 'qemu-io' @('-f', 'qcow2', '-c', 'write -P 0x22 5M 4k', $disk) | Out-Null
        $again = Invoke-AsrReplication -Name vm
        $again.Result.Note | Should -Match 'was disabled'
        $again.Result.ChangedBytes | Should -Be (4KB)
        Invoke-Native 'qemu-img' @('convert', '-q', '-f', 'qcow2', '-O', 'raw', $disk, $raw) | Out-Null
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item vm -Latest) (Join-TestPath $dir 'export-vm'))['vm.qcow2'] | Should -Be (Get-AsrSampleHash $raw)
        (Invoke-Native 'qemu-img' @('info', '--output=json', $disk) | ConvertFrom-Json).'format-specific'.data.bitmaps.name | Should -Be @("asr-$($item.Id)-$((Get-AsrRecoveryPoint -Item vm -Latest).Sequence)-$((Get-AsrRecoveryPoint -Item vm -Latest).AttemptId)")
        Disable-AsrReplication -Name vm -Confirm:$false
        (Invoke-Native 'qemu-img' @('info', '--output=json', $disk) | ConvertFrom-Json).'format-specific'.data.bitmaps | Should -BeNullOrEmpty
    }

    It 'a qcow2 overlay on a backing file is read live and never claims a quiet read' {
        $raw = Join-TestPath $dir 'base.raw'
        New-AsrSampleDisk -Path $raw -SizeBytes 16MB -Seed 14 | Out-Null
        $base = Join-TestPath $dir 'base.qcow2'
        $overlay = Join-TestPath $dir 'overlay.qcow2'
        Invoke-Native 'qemu-img' @('convert', '-q', '-f', 'raw', '-O', 'qcow2', $raw, $base) | Out-Null
        Invoke-Native 'qemu-img' @('create', '-q', '-f', 'qcow2', '-b', $base, '-F', 'qcow2', $overlay) | Out-Null
        (Enable-AsrReplication -Name overlay -Disk $overlay -Policy p).State | Should -Be 'Succeeded'
        $item = Get-AsrProtectedItem overlay
        $item.CaptureMethod | Should -Be 'HashScan'
        $point = Get-AsrRecoveryPoint -Item overlay -Latest
        $point.Consistency | Should -Be 'Inconsistent'
        $point.ConsistencyEvidence | Should -Match 'backing file'
        (Get-ExportedHashes $point (Join-TestPath $dir 'export-overlay'))['overlay.qcow2'] | Should -Be (Get-AsrSampleHash $raw)
        Disable-AsrReplication -Name overlay -Confirm:$false
    }

    It 'a VMDK on XFS is cloned at the instant and read through qemu-nbd' {
        $mnt = $mounts | Where-Object { $_ -like '*mnt-xfs' } | Select-Object -First 1
        if (-not $mnt) { $mnt = New-LoopFileSystem 'xfs' }
        $raw = Join-TestPath $dir 'esx.raw'
        New-AsrSampleDisk -Path $raw -SizeBytes 32MB -Seed 13 | Out-Null
        $disk = Join-TestPath $mnt 'esx.vmdk'
        Invoke-Native 'qemu-img' @('convert', '-q', '-f', 'raw', '-O', 'vmdk', $raw, $disk) | Out-Null
        (Enable-AsrReplication -Name esx -Disk $disk -Policy p).State | Should -Be 'Succeeded'
        $item = Get-AsrProtectedItem esx
        $item.Disks[0].SourceFormat | Should -Be 'vmdk'
        $item.CaptureMethod | Should -Be 'ReflinkClone'
        $point = Get-AsrRecoveryPoint -Item esx -Latest
        $point.Consistency | Should -Be 'CrashConsistent'
        (Get-ExportedHashes $point (Join-TestPath $dir 'export-esx'))['esx.vmdk'] | Should -Be (Get-AsrSampleHash $raw)
        Disable-AsrReplication -Name esx -Confirm:$false
    }

    It 'a policy takes points every 5 seconds' {
        $policy = New-AsrPolicy -Name every5 -CrashConsistentFrequencySeconds 5
        $policy.CrashConsistentFrequencySeconds | Should -Be 5
        { New-AsrPolicy -Name every4 -CrashConsistentFrequencySeconds 4 -ErrorAction Stop } | Should -Throw -ErrorId 'PolicySettingInvalid*'
    }
}
}
