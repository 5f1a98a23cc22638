param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# Running QEMU guests as sources: real qemu-system-x86_64 processes holding raw images open, protected
# with -QmpSocket, so changes come from QEMU's dirty bitmaps and points from image fleecing over QMP/NBD.
# Without its tools the tests are reported as skipped with the reason; CI installs them, and under CI=true they run (and fail if they cannot).

Describe 'Running QEMU guests as sources [<Backend>]' -Tag Qemu, Slow {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'QemuTestHelpers.ps1'))
        $skipReason = Get-MissingCommandReason qemu-system-x86_64, qemu-img
        if ($skipReason) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vms = [Collections.Generic.List[object]]::new()
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        New-AsrPolicy -Name fast -CrashConsistentFrequencyMinutes 0.5 -AppConsistentFrequencyHours 0 -RecoveryPointRetentionHours 24 -RpoThresholdMinutes 1 | Out-Null
        $agentHost = 'qemu-agent-' + [Guid]::NewGuid().ToString('N').Substring(0, 6)
        $agentLog = Join-TestPath $dir 'agent.log'
        $state = @{ AgentStarted = $false }

        function Get-PointHash($Point, [string]$Destination) {
            $hashes = Get-ExportedHashes $Point $Destination
            $hashes.Count | Should -Be 1
            @($hashes.Values)[0]
        }
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        if ($state.AgentStarted) { try { Stop-AsrAgent -HostName $agentHost -Force -TimeoutSeconds 60 -ErrorAction SilentlyContinue } catch { } }
        foreach ($vm in $vms) { Stop-TestQemu $vm }
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It 'a running QEMU guest is protected through its dirty bitmaps' {
        $size = 32MB
        $disk = Join-TestPath $dir 'solo.img'
        New-AsrSampleDisk -Path $disk -SizeBytes $size -Seed 21 | Out-Null
        $vm = Start-TestQemu (Join-TestPath $dir 'solo') $disk
        $vms.Add($vm)
        $initial = Get-AsrSampleHash $disk

        $job = Enable-AsrReplication -Name qvm -Disk $disk -Policy p -QmpSocket $vm.QmpSocket
        $job.State | Should -Be 'Succeeded'
        $job.Result.Mode | Should -Be 'Initial'
        $job.Result.BytesScanned | Should -Be $size
        (Get-AsrProtectedItem qvm).QmpSocketPath | Should -Be $vm.QmpSocket
        $first = Get-AsrRecoveryPoint qvm -Latest
        $first.Tracker | Should -Be 'QemuDirtyBitmap'
        Get-PointHash $first (Join-TestPath $dir 'solo-1') | Should -Be $initial

        # Writes through QEMU's block layer, as the guest's: 4 KiB, 64 KiB unaligned (17 blocks), 1000 bytes
        # inside one block, the last block. The delta reads those 20 blocks, not the 32 MiB disk.
        Write-TestQemu $vm 1MB 4096 0x11
        Write-TestQemu $vm (10MB + 512) 64KB 0x22
        Write-TestQemu $vm (20MB + 100) 1000 0x33
        Write-TestQemu $vm ($size - 4096) 4096 0x44
        $expected = Get-AsrSampleHash $disk
        $expected | Should -Not -Be $initial
        $job = Invoke-AsrReplication -Name qvm
        $job.State | Should -Be 'Succeeded'
        $job.Result.Mode | Should -Be 'Delta'
        $job.Result.BytesScanned | Should -Be (20 * 4096) -Because 'only the blocks QEMU marked dirty are read'
        $job.Result.ChangedBytes | Should -BeGreaterThan 0
        $second = Get-AsrRecoveryPoint qvm -Latest
        $second.Sequence | Should -Be ($first.Sequence + 1)
        $second.Tracker | Should -Be 'QemuDirtyBitmap'
        Get-PointHash $second (Join-TestPath $dir 'solo-2') | Should -Be $expected

        # A cycle with 8 MiB to read; the guest writes as soon as QEMU starts the cycle's fleecing job,
        # i.e. after the capture, to a block the scan reads last. The point is the disk as of the capture.
        Write-TestQemu $vm 0 8MB 0x55
        $atCapture = Get-AsrSampleHash $disk
        $vm.Control.Events.Clear()
        $job = Invoke-AsrReplication -Name qvm -AsJob
        $null = Wait-TestQmpEvent $vm.Control {
            param($e)
            $e.GetProperty('event').GetString() -eq 'JOB_STATUS_CHANGE' -and $e.GetProperty('data').GetProperty('id').GetString().StartsWith('asr-job-') -and $e.GetProperty('data').GetProperty('status').GetString() -eq 'running'
        } 60
        Write-TestQemu $vm 28MB 4096 0x66
        # QMP replies and events leave QEMU in order: no BLOCK_EXPORT_DELETED before the write's reply
        # means the write landed while the cycle still exported the capture (before it finished reading).
        Get-TestQmpEventNames $vm.Control | Should -Not -Contain 'BLOCK_EXPORT_DELETED' -Because 'the write should land during the cycle'
        $afterWrite = Get-AsrSampleHash $disk
        $afterWrite | Should -Not -Be $atCapture
        $job = Wait-AsrJob -Id $job.Id -TimeoutSeconds 60
        $job.State | Should -Be 'Succeeded'
        $job.Result.BytesScanned | Should -Be 8MB
        # (The event that check relies on does come, once the cycle is done with the capture.)
        $null = Wait-TestQmpEvent $vm.Control { param($e) $e.GetProperty('event').GetString() -eq 'BLOCK_EXPORT_DELETED' } 10
        $third = Get-AsrRecoveryPoint qvm -Latest
        $third.Tracker | Should -Be 'QemuDirtyBitmap'
        Get-PointHash $third (Join-TestPath $dir 'solo-3') | Should -Be $atCapture -Because 'the write after the capture is not in the point'

        # The write made during that cycle is what the next one reads, and is in its point.
        $job = Invoke-AsrReplication -Name qvm
        $job.State | Should -Be 'Succeeded'
        $job.Result.BytesScanned | Should -Be 4096
        Get-PointHash (Get-AsrRecoveryPoint qvm -Latest) (Join-TestPath $dir 'solo-4') | Should -Be $afterWrite
        Test-TestQemuRunning $vm | Should -BeTrue
    }

    It 'a replication group of three QEMU guests gets coordinated points without freeze scripts' {
        # Step n (1, 2, 3, ...) of the writer fills 512-byte sector (n-1) div 3 of the sequence region of
        # disk (n-1) mod 3 with byte ((n-1) mod 255) + 1. The region starts zeroed, so a disk shows which
        # steps reached it; a consistent cut of the three holds exactly steps 1..N for some N.
        $regionOffset = 8MB
        $sectors = 8MB / 512
        $disks = foreach ($i in 0..2) {
            $path = Join-TestPath $dir "vm$i.img"
            New-AsrSampleDisk -Path $path -SizeBytes 16MB -Seed (30 + $i) | Out-Null
            $fs = [IO.File]::OpenWrite($path); try { $fs.Position = $regionOffset; $fs.Write([byte[]]::new(8MB), 0, 8MB) } finally { $fs.Dispose() }
            $path
        }
        $guests = foreach ($i in 0..2) { $vm = Start-TestQemu (Join-TestPath $dir "vm$i") $disks[$i]; $vms.Add($vm); $vm }
        foreach ($i in 0..2) {
            $job = Enable-AsrReplication -Name "vm$i" -Disk $disks[$i] -Policy fast -AgentHost $agentHost -ReplicationGroup vms -QmpSocket $guests[$i].QmpSocket
            $job.State | Should -Be 'Succeeded'
        }

        $zeroSector = [Convert]::ToHexString([byte[]]::new(512))
        $patternSector = foreach ($b in 0..255) { $s = [byte[]]::new(512); [Array]::Fill($s, [byte]$b); [Convert]::ToHexString($s) }
        function Get-WrittenSteps([string[]]$Paths) {
            <# The writer's steps found in the three images, sorted; throws on a sector that is neither zeros nor its step's pattern. #>
            $steps = [Collections.Generic.List[long]]::new()
            for ($k = 0; $k -lt 3; $k++) {
                $buf = [byte[]]::new($sectors * 512)
                $fs = [IO.File]::OpenRead($Paths[$k])
                try { $fs.Position = $regionOffset; $fs.ReadExactly($buf, 0, $buf.Length) } finally { $fs.Dispose() }
                for ($s = 0; $s -lt $sectors; $s++) {
                    $hex = [Convert]::ToHexString($buf, $s * 512, 512)
                    if ([string]::Equals($hex, $zeroSector)) { continue }
                    $n = 3L * $s + $k + 1
                    if (-not [string]::Equals($hex, $patternSector[(($n - 1) % 255) + 1])) { throw "Sector $s of $($Paths[$k]) holds neither zeros nor the pattern of step $n." }
                    $steps.Add($n)
                }
            }
            $sorted = $steps.ToArray(); [Array]::Sort($sorted)
            , $sorted
        }
        function Test-Prefix([long[]]$Steps) { for ($i = 0; $i -lt $Steps.Count; $i++) { if ($Steps[$i] -ne $i + 1) { return $false } }; $true }

        $state.AgentStarted = $true
        $agent = Start-AsrAgent -HostName $agentHost -LogPath $agentLog -TickInterval '00:00:00.250'
        $agent.State | Should -Be 'Running'

        # The writer stands in for the guests' vCPUs: a paused guest issues no I/O, so it writes to a
        # machine only while QEMU reports it running. (Its check and its write are two monitor commands:
        # a pause between them lets that one write land, but the next step then finds its machine paused.)
        $n = 0L; $waits = 0L
        $deadline = [DateTime]::UtcNow.AddSeconds(100)
        $nextPoll = [DateTime]::UtcNow
        $groupPoints = @()
        while ($true) {
            if ([DateTime]::UtcNow -ge $nextPoll) {
                $groupPoints = @(Get-AsrRecoveryPoint -ReplicationGroup vms -ErrorAction SilentlyContinue)
                if ($groupPoints.Count -ge 2) { break }
                if ([DateTime]::UtcNow -gt $deadline) { throw "Timed out after 100 s waiting for two group points ($($groupPoints.Count) so far). Agent log: $(if ([IO.File]::Exists($agentLog)) { [IO.File]::ReadAllText($agentLog) })" }
                $nextPoll = [DateTime]::UtcNow.AddMilliseconds(500)
            }
            if ($n -ge 3L * $sectors) { [Threading.Thread]::Sleep(50); continue }
            $vm = $guests[$n % 3]
            if (-not (Test-TestQemuRunning $vm)) { $waits++; [Threading.Thread]::Sleep(1); continue }
            Write-TestQemu $vm ($regionOffset + 512L * [long][Math]::Floor($n / 3)) 512 ([byte](($n % 255) + 1))
            $n++
            [Threading.Thread]::Sleep(1)
        }
        $takenWhileWriting = @($groupPoints | ForEach-Object { $_.Sequence })
        $stopped = Stop-AsrAgent -HostName $agentHost -PassThru
        $stopped.State | Should -Be 'Stopped'
        $state.AgentStarted = $false
        $n | Should -BeLessThan (3L * $sectors) -Because 'the sequence region must not fill up while points are taken'

        # The writer's own record: the disks hold exactly steps 1..n.
        $final = Get-WrittenSteps $disks
        $final.Count | Should -Be $n
        Test-Prefix $final | Should -BeTrue

        $groupPoints = @(Get-AsrRecoveryPoint -ReplicationGroup vms)
        $groupPoints.Count | Should -BeGreaterOrEqual 2
        $previous = 0; $lastWhileWriting = 0
        foreach ($gp in $groupPoints) {
            $gp.Members.Count | Should -Be 3
            $exported = foreach ($i in 0..2) {
                $m = @($gp.Members | Where-Object { $_.ItemName -eq "vm$i" })
                $m.Count | Should -Be 1
                $point = Get-AsrRecoveryPoint "vm$i" -Sequence $m[0].PointSequence
                $point.GroupPointId | Should -Be $gp.GroupPointId
                $point.RecoveryPointTimeUtc | Should -Be $gp.RecoveryPointTimeUtc
                $point.Tracker | Should -Be 'QemuDirtyBitmap'
                $point.Consistency | Should -Be 'CrashConsistent'
                $job = $point | Export-AsrRecoveryPoint -Destination (Join-TestPath $dir "gp$($gp.Sequence)-vm$i") -ErrorAction Stop
                $job.Result.Files[0]
            }
            $steps = Get-WrittenSteps $exported
            $counts = [long[]]::new(3); foreach ($st in $steps) { $counts[($st - 1) % 3]++ }
            Test-Prefix $steps | Should -BeTrue -Because "group point $($gp.Sequence) must hold steps 1..N with no gap (steps per machine: $($counts -join ', '); the writer made $n steps and waited $waits times for a paused guest)"
            $steps.Count | Should -BeGreaterThan $previous -Because 'the writer kept writing between group points'
            $previous = $steps.Count
            if ($takenWhileWriting -contains $gp.Sequence) { $lastWhileWriting = $steps.Count }
        }
        $lastWhileWriting | Should -BeLessThan $n -Because 'the writer was still writing when the group points were taken'

        # Every guest was paused for each group point (QEMU tells every monitor), and runs again.
        foreach ($vm in $guests) {
            @(Get-TestQmpEventNames $vm.Control | Where-Object { $_ -eq 'STOP' }).Count | Should -BeGreaterOrEqual $groupPoints.Count
            Test-TestQemuRunning $vm | Should -BeTrue
        }
    }
}
