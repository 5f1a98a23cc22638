param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

Describe 'Jobs: -AsJob, Wait-AsrJob, Stop-AsrJob [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'big.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 192MB -Seed 3 | Out-Null
        $vaultPath = New-TestVaultLocation $dir
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It '-AsJob returns a running job at once; Wait-AsrJob waits for it and writes it finished' {
        $job = Enable-AsrReplication -Name big -Disk $disk -Policy p -AsJob
        $job.State | Should -Be 'InProgress'
        $job.Operation | Should -Be 'EnableReplication'
        (Get-AsrJob -Id $job.Id).State | Should -Be 'InProgress'
        $done = $job | Wait-AsrJob
        $done.State | Should -Be 'Succeeded'
        $done.PercentComplete | Should -Be 100
        $done.EndTimeUtc | Should -Not -BeNullOrEmpty
        (Get-AsrJob -Id $job.Id).State | Should -Be 'Succeeded'
    }

    It 'a second cycle while one runs is refused with ProtectedItemBusy' {
        New-AsrSampleDisk -Path $disk -SizeBytes 192MB -Seed 4 | Out-Null
        $job = Get-AsrProtectedItem big | Invoke-AsrReplication -AsJob
        try {
            $err = { Get-AsrProtectedItem big | Invoke-AsrReplication -ErrorAction Stop } | Should -Throw -ErrorId 'ProtectedItemBusy,*' -PassThru
            $err.CategoryInfo.Category | Should -Be 'ResourceBusy'
        } finally { $job | Wait-AsrJob | Out-Null }
    }

    It 'Stop-AsrJob cancels a cycle: the job is Cancelled, no point is published, the next cycle is exact' {
        New-AsrSampleDisk -Path $disk -SizeBytes 192MB -Seed 5 | Out-Null
        $pointsBefore = @(Get-AsrRecoveryPoint -Item big).Count
        $job = Get-AsrProtectedItem big | Invoke-AsrReplication -AsJob
        $job | Stop-AsrJob -Confirm:$false
        $stopped = $job | Wait-AsrJob -ErrorAction SilentlyContinue -ErrorVariable waitErrors
        $stopped.State | Should -Be 'Cancelled'
        $waitErrors[0].FullyQualifiedErrorId | Should -Match 'OperationCancelled'
        @(Get-AsrRecoveryPoint -Item big).Count | Should -Be $pointsBefore
        $expected = Get-AsrSampleHash $disk
        (Get-AsrProtectedItem big | Invoke-AsrReplication).State | Should -Be 'Succeeded'
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item big -Latest) (Join-TestPath $dir 'after-stop'))['big.img'] | Should -Be $expected
    }

    It 'Stop-AsrJob of a finished job is InvalidStateTransition; Wait-AsrJob -TimeoutSeconds reports a timeout' {
        $finished = Get-AsrJob -State Succeeded | ForEach-Object { $_ } | Where-Object Operation -eq 'EnableReplication'
        { $finished | Stop-AsrJob -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidStateTransition,*'
        # A job of another, live process that will not finish within the timeout: a record owned by a
        # real child process (sleep), exactly what Wait-AsrJob sees while another session's job runs.
        $sleeper = [Diagnostics.Process]::Start('sleep', '60')
        try {
            $id = [Guid]::NewGuid()
            $record = @{ id = $id; operation = 'ReplicationCycle'; targetName = 'big'; state = 'InProgress'; percentComplete = 40
                startTimeUtc = [DateTimeOffset]::UtcNow.ToString('o'); ownerProcessId = $sleeper.Id
                ownerProcessStartUtc = $sleeper.StartTime.ToUniversalTime().ToString('o'); ownerHost = [Environment]::MachineName }
            Write-VaultObject $vaultPath "jobs/$id.json" ([Text.Json.JsonSerializer]::Serialize($record, [hashtable], [Text.Json.JsonSerializerOptions]$null))
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $r = Wait-AsrJob -Id $id -TimeoutSeconds 1 -ErrorAction SilentlyContinue -ErrorVariable timeoutErrors
            $r.State | Should -Be 'InProgress'
            $timeoutErrors[0].FullyQualifiedErrorId | Should -Match 'JobWaitTimeout'
            $timeoutErrors[0].CategoryInfo.Category | Should -Be 'OperationTimeout'
            # ... and once that process is gone, the same record reads as Interrupted.
            $sleeper.Kill(); $sleeper.WaitForExit()
            (Get-AsrJob -Id $id).State | Should -Be 'Interrupted'
            Remove-VaultObject $vaultPath "jobs/$id.json"
        } finally { if (-not $sleeper.HasExited) { $sleeper.Kill() } }
    }
}

Describe 'Crash safety: a replication process killed mid-cycle [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'crash.img'
        $vaultPath = New-TestVaultLocation $dir
        New-AsrSampleDisk -Path $disk -SizeBytes 512MB -Seed 7 | Out-Null
        New-AsrVault -Path $vaultPath -EncryptionKey 'crash key' | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name crash -Disk $disk -Policy p | Out-Null
        $atPoint1 = Get-AsrSampleHash $disk
        New-AsrSampleDisk -Path $disk -SizeBytes 512MB -Seed 8 | Out-Null   # every random region changes
        $atPoint2 = Get-AsrSampleHash $disk

        # Another real process runs the cycle; it is killed (SIGKILL) once it has written packs for point 2.
        $child = (Start-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath' -EncryptionKey 'crash key'; Get-AsrProtectedItem crash | Invoke-AsrReplication | Out-Null").Process
        $item = Get-AsrProtectedItem crash
        $point2Packs = "items/$($item.Id)/packs/000000000002"  # point 2: "<seq>.<attempt>-<n>.pack"
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $killedMidCycle = $false
        while ($watch.Elapsed.TotalSeconds -lt 60 -and -not $child.HasExited) {
            if (@(Get-VaultObjectKeys $vaultPath $point2Packs).Count -gt 0) { $child.Kill(); $killedMidCycle = $true; break }
            [Threading.Thread]::Sleep(5)
        }
        $child.WaitForExit()
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'the process was killed while the cycle was writing data' {
        $killedMidCycle | Should -BeTrue
        @(Get-VaultObjectKeys $vaultPath $point2Packs).Count | Should -BeGreaterThan 0
    }

    It 'the vault lists only the whole point 1, which still exports bit-exact' {
        $points = @(Get-AsrRecoveryPoint -Item crash)
        $points.Sequence | Should -Be @(1)
        (Get-ExportedHashes $points[0] (Join-TestPath $dir 'p1'))['crash.img'] | Should -Be $atPoint1
    }

    It 'the killed job is shown as Interrupted' {
        $job = @(Get-AsrJob -TargetName crash -Operation ReplicationCycle)[-1]
        $job.State | Should -Be 'Interrupted'
        $job.StatusMessage | Should -Match 'ended before the job'
    }

    It 'the item shows at once that the interrupted cycle will be followed by a checksum resync' {
        $item = Get-AsrProtectedItem crash
        $item.CycleInProgressJobId | Should -Not -BeNullOrEmpty
        $item.State | Should -Be 'ResyncRequired'
        $item.ResyncReason | Should -Match 'did not complete'
    }

    It 'the resync compares every block, sends only the differing ones, shows its percentage on the item, and point 2 is exact' {
        # Back to point 1's content plus 1% scattered writes: a checksum resync sends ~1%, where a
        # resync that did not really compare (e.g. against an empty replica) would send 256 MiB.
        New-AsrSampleDisk -Path $disk -SizeBytes 512MB -Seed 7 | Out-Null
        $written = Write-AsrSampleChange -Path $disk -Fraction 0.01 -Seed 9
        $atPoint2 = Get-AsrSampleHash $disk
        # The killed process's item lock: free at once on a local vault, when its lease runs out on a blob vault.
        Wait-VaultLockReleased $vaultPath "locks/item-$((Get-AsrProtectedItem crash).Id).lock"
        $job = Get-AsrProtectedItem crash | Invoke-AsrReplication -AsJob
        $seen = [Collections.Generic.List[int]]::new()
        while (-not (Get-AsrJob -Id $job.Id).IsFinished) {
            $i = Get-AsrProtectedItem crash
            if ($null -ne $i.ActiveJobPercent) { $seen.Add($i.ActiveJobPercent) }
        }
        $done = $job | Wait-AsrJob
        $done.Result.Mode | Should -Be 'Resync'
        $done.Result.RecoveryPointSequence | Should -Be 2
        $done.Result.BlocksCompared | Should -Be (512MB / 4096)
        $done.Result.ChangedBytes | Should -BeGreaterThan ($written / 2)
        $done.Result.ChangedBytes | Should -BeLessOrEqual $written
        $done.Result.ChangedBlocks | Should -Be ($done.Result.ChangedBytes / 4096)
        $seen.Count | Should -BeGreaterThan 0 -Because 'Get-AsrProtectedItem shows the running resync''s percentage'
        (Get-AsrProtectedItem crash).CycleInProgressJobId | Should -BeNullOrEmpty
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item crash -Latest) (Join-TestPath $dir 'p2'))['crash.img'] | Should -Be $atPoint2
    }
}

Describe 'Write-Progress of one job never goes backwards [<Backend>]' {
    # The progress records the cmdlets write, as a host receives them: a runspace of this process whose
    # Progress stream collects every ProgressRecord (ProgressPreference Continue).
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $os = Join-TestPath $dir 'p-os.img'; $data = Join-TestPath $dir 'p-data.img'
        New-AsrSampleDisk -Path $os -SizeBytes 192MB -Seed 31 | Out-Null   # large enough for several 100 ms progress polls per job
        New-AsrSampleDisk -Path $data -SizeBytes 128MB -Seed 32 | Out-Null
        $vaultPath = New-TestVaultLocation $dir
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        Enable-AsrReplication -Name prog -Disk $os, $data -Policy p | Out-Null

        function Get-ProgressOf([string]$Command) {
            <# Runs $Command in a fresh runspace on this vault and returns the percentages of its progress records (not Completed ones). #>
            $ps = [PowerShell]::Create()
            try {
                [void]$ps.AddScript("`$ProgressPreference = 'Continue'; Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; $Command")
                [void]$ps.Invoke()
                if ($ps.HadErrors) { throw "$Command failed: $($ps.Streams.Error -join '; ')" }
                @($ps.Streams.Progress | Where-Object { $_.RecordType -ne 'Completed' -and $_.PercentComplete -ge 0 } | ForEach-Object { $_.PercentComplete })
            } finally { $ps.Dispose() }
        }

        function Assert-NeverBackwards([int[]]$Percent, [string]$What) {
            # The cmdlet polls its job every 100 ms: a fast job may show one record, a longer one many.
            $Percent.Count | Should -BeGreaterThan 0 -Because "$What reports progress"
            for ($i = 1; $i -lt $Percent.Count; $i++) {
                if ($Percent[$i] -lt $Percent[$i - 1]) { throw "$What went back from $($Percent[$i - 1])% to $($Percent[$i])% (report $i of $($Percent -join ', '))" }
            }
        }
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'a checksum resync of two disks' {
        Write-AsrSampleChange -Path $data -Fraction 0.05 -Seed 33 | Out-Null
        Assert-NeverBackwards (Get-ProgressOf 'Get-AsrProtectedItem prog | Resume-AsrResync | Out-Null') 'Resume-AsrResync'
    }

    It 'a planned failover (final sync, source check, export), then commit, reprotect and failback' {
        Write-AsrSampleChange -Path $os -Fraction 0.05 -Seed 34 | Out-Null
        $target = Join-TestPath $dir 'recovery'
        Assert-NeverBackwards (Get-ProgressOf "Get-AsrProtectedItem prog | Start-AsrFailover -Planned -SourceStopped -Target (New-AsrLocalTarget '$target') -Confirm:`$false | Out-Null") 'a planned failover'
        Get-AsrProtectedItem prog | Complete-AsrFailover -Confirm:$false | Out-Null
        Write-AsrSampleChange -Path (Join-TestPath $target 'prog/p-os.img') -Fraction 0.02 -Seed 35 | Out-Null
        Assert-NeverBackwards (Get-ProgressOf 'Get-AsrProtectedItem prog | Update-AsrProtectionDirection -Confirm:$false | Out-Null') 'reprotect'
        Assert-NeverBackwards (Get-ProgressOf 'Get-AsrProtectedItem prog | Invoke-AsrFailback -Confirm:$false | Out-Null') 'failback'
        (Get-AsrProtectedItem prog).State | Should -Be 'Protected'
    }
}
