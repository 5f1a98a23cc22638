param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

Describe 'Recovery plans: a 3-group plan over 5 machines [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = New-TestVaultLocation $dir
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        $machines = 'db01', 'app01', 'app02', 'web01', 'web02'
        $hashes = @{}
        $seed = 0
        foreach ($m in $machines) {
            $disk = Join-TestPath $dir "$m.img"
            New-AsrSampleDisk -Path $disk -SizeBytes 3MB -Seed (++$seed) | Out-Null
            Enable-AsrReplication -Name $m -Disk $disk -Policy p | Out-Null
            $hashes[$m] = Get-AsrSampleHash $disk
        }
        $log = Join-TestPath $dir 'order.log'
        $plan = Join-TestPath $dir 'shop.ps1'
        [IO.File]::WriteAllText($plan, @"
AsrRecoveryPlan 'shop' {
    AsrGroup 1 -Items db01 {
        AsrStep 'Stop app tier' -Before { param(`$ctx) [IO.File]::AppendAllText('$log', "g1-before `$([DateTime]::UtcNow.Ticks) `$(`$ctx.FailoverType) `$(`$ctx.FailoverDirection) `$(`$ctx.GroupId)``n") }
        AsrStep 'Check db' -After { param(`$ctx) [IO.File]::AppendAllText('$log', "g1-after `$([DateTime]::UtcNow.Ticks) `$(`$ctx.VmMap['db01'].State)``n") }
    }
    AsrGroup 2 -Items app01, app02 {
        AsrStep 'Warm caches' -After { param(`$ctx) [IO.File]::AppendAllText('$log', "g2-after `$([DateTime]::UtcNow.Ticks)``n"); 'warm' }
    }
    AsrGroup 3 -Items web01, web02 {
        AsrStep 'Repoint DNS' -Before { param(`$ctx) [IO.File]::AppendAllText('$log', "g3-before `$([DateTime]::UtcNow.Ticks)``n") }
        AsrStep 'Planned only' -Before { param(`$ctx) throw 'must not run in a test' } -FailoverType Planned
    }
}
"@)
        $target = New-AsrLocalTarget (Join-TestPath $dir 'recovery')
        $job = Start-AsrRecoveryPlan -Path $plan -FailoverType Unplanned -Target $target -Confirm:$false
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'runs as one job with a task per step and machine, all succeeded' {
        $job.State | Should -Be 'Succeeded'
        $job.Operation | Should -Be 'RecoveryPlanUnplanned'
        ($job.Tasks | ForEach-Object Kind) | Should -Be @('StepBefore', 'Machine', 'StepAfter', 'Machine', 'Machine', 'StepAfter', 'StepBefore', 'Machine', 'Machine')
        @($job.Tasks | Where-Object State -ne 'Succeeded').Count | Should -Be 0
        ($job.Tasks | Where-Object Name -like '*Warm caches*').Output | Should -Be 'warm'
        (Get-AsrJob -Id $job.Id).Tasks.Count | Should -Be 9
    }

    It 'ran groups in order: step timestamps and task times never overlap across groups' {
        $lines = [IO.File]::ReadAllLines($log)
        ($lines | ForEach-Object { $_.Split(' ')[0] }) | Should -Be @('g1-before', 'g1-after', 'g2-after', 'g3-before')
        $ticks = $lines | ForEach-Object { [long]$_.Split(' ')[1] }
        for ($i = 1; $i -lt $ticks.Count; $i++) { $ticks[$i] | Should -BeGreaterThan $ticks[$i - 1] }
        $g = @{}
        foreach ($n in 1..3) { $g[$n] = @($job.Tasks | Where-Object { $_.GroupId -eq $n }) }
        foreach ($n in 2..3) {
            $prevEnd = [Linq.Enumerable]::Max([long[]]@($g[$n - 1] | ForEach-Object { $_.EndTimeUtc.Ticks }))
            $start = [Linq.Enumerable]::Min([long[]]@($g[$n] | ForEach-Object { $_.StartTimeUtc.Ticks }))
            $start | Should -BeGreaterOrEqual $prevEnd -Because "group $n starts after group $($n - 1) ends"
        }
    }

    It 'gave steps the runbook-style context' {
        $first = [IO.File]::ReadAllLines($log)[0].Split(' ')
        $first[2..4] | Should -Be @('Unplanned', 'PrimaryToRecovery', '1')
        [IO.File]::ReadAllLines($log)[1] | Should -Match 'g1-after \d+ FailedOver'
    }

    It 'failed over every machine: recovered disks equal the sources by hash' {
        foreach ($m in $machines) {
            (Get-AsrProtectedItem $m).State | Should -Be 'FailedOver'
            Get-AsrSampleHash (Join-TestPath $target.Path "$m/$m.img") | Should -Be $hashes[$m] -Because $m
        }
    }

    It 'a Commit run of the same plan commits every machine' {
        (Start-AsrRecoveryPlan -Path $plan -FailoverType Commit -Confirm:$false).State | Should -Be 'Succeeded'
        foreach ($m in $machines) { (Get-AsrProtectedItem $m).State | Should -Be 'Committed' }
    }
}

Describe 'Recovery plans: pause, then resume from another process [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines 'db01', 'web01' -SizeBytes 2MB
        $plan = Join-TestPath $dir 'paused.ps1'
        [IO.File]::WriteAllText($plan, @"
AsrRecoveryPlan 'paused' {
    AsrGroup 1 -Items db01
    AsrPause 'Check replication of the orders table' -FailoverType Planned, Unplanned
    AsrGroup 2 -Items web01 {
        AsrStep 'Repoint DNS' -After { param(`$ctx) "web01 now on `$(`$ctx.VmMap['web01'].Disks['web01.img'])" }
    }
}
"@)
        $target = Join-TestPath $dir 'recovery'
        Disconnect-AsrVault
        # Process A starts the run and exits at the pause.
        $a = Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; `$j = Start-AsrRecoveryPlan -Path '$plan' -FailoverType Unplanned -Target (New-AsrLocalTarget '$target') -Confirm:`$false; 'JOB=' + `$j.Id + ' STATE=' + `$j.State"
        $jobId = [regex]::Match($a.Output, 'JOB=(\S+)').Groups[1].Value
        Connect-AsrVault -Path $vaultPath
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'the first process stopped at the pause: the job is Suspended with the pause text' {
        $a.ExitCode | Should -Be 0 -Because $a.Error
        $a.Output | Should -Match 'STATE=Suspended'
        $job = Get-AsrJob -Id $jobId
        $job.State | Should -Be 'Suspended'
        $job.StatusMessage | Should -Match 'Check replication of the orders table'
        $job.AllowedActions | Should -Contain 'Resume-AsrJob'
        (Get-AsrProtectedItem db01).State | Should -Be 'FailedOver'
        (Get-AsrProtectedItem web01).State | Should -Be 'Protected'
    }

    It 'a second process resumes it with a comment; it completes there' {
        $b = Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; `$d = Get-AsrJob -Id $jobId | Resume-AsrJob -Comment 'orders table verified' | Wait-AsrJob; 'STATE=' + `$d.State"
        $b.ExitCode | Should -Be 0 -Because $b.Error
        $b.Output | Should -Match 'STATE=Succeeded'
        $job = Get-AsrJob -Id $jobId
        $job.State | Should -Be 'Succeeded'
        ($job.Tasks | Where-Object Kind -eq 'Pause').Output | Should -Be 'orders table verified'
        $job.Plan.Comments[0] | Should -Match 'orders table verified'
        ($job.Tasks | Where-Object Kind -eq 'StepAfter').Output | Should -Match 'web01 now on .*recovery/web01/web01.img'
        (Get-AsrProtectedItem web01).State | Should -Be 'FailedOver'
    }

    It 'a finished run cannot be resumed again (InvalidStateTransition)' {
        { Get-AsrJob -Id $jobId | Resume-AsrJob -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidStateTransition,*'
    }
}

Describe 'Recovery plans: failing steps, restart, and bad plans [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines 'a1', 'a2' -SizeBytes 1MB
        $flag = Join-TestPath $dir 'ready.flag'
        $plan = Join-TestPath $dir 'fails.ps1'
        [IO.File]::WriteAllText($plan, @"
AsrRecoveryPlan 'fails' {
    AsrGroup 1 -Items a1 {
        AsrStep 'Optional check' -After { throw 'optional check failed' } -ContinueOnError
    }
    AsrStep 'Gate' -Before { if (-not [IO.File]::Exists('$flag')) { throw 'the network is not ready' } }
    AsrGroup 2 -Items a2
}
"@)
        $target = New-AsrLocalTarget (Join-TestPath $dir 'recovery')
        $job = Start-AsrRecoveryPlan -Path $plan -FailoverType Unplanned -Target $target -Confirm:$false -ErrorAction SilentlyContinue -ErrorVariable planErrors
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'a failing step fails its task with the script''s error and stops the plan' {
        $job.State | Should -Be 'Failed'
        $planErrors[0].FullyQualifiedErrorId | Should -Match 'RecoveryPlanStepFailed'
        $gate = $job.Tasks | Where-Object Name -eq 'Gate'
        $gate.State | Should -Be 'Failed'
        $gate.Error | Should -Match 'the network is not ready'
        ($job.Tasks | Where-Object Item -eq 'a2').State | Should -Be 'Pending'
        (Get-AsrProtectedItem a2).State | Should -Be 'Protected'
    }

    It 'a step with -ContinueOnError fails its task but the plan goes on' {
        ($job.Tasks | Where-Object Name -like '*Optional check*').State | Should -Be 'Failed'
        ($job.Tasks | Where-Object Item -eq 'a1').State | Should -Be 'Succeeded'
    }

    It 'Restart-AsrJob continues at the failed task once the cause is fixed, without redoing finished tasks' {
        $a1FailedOverAt = ($job.Tasks | Where-Object Item -eq 'a1').EndTimeUtc
        [IO.File]::WriteAllText($flag, 'ok')
        $done = Get-AsrJob -Id $job.Id | Restart-AsrJob
        $done.State | Should -Be 'Succeeded'
        ($done.Tasks | Where-Object Item -eq 'a1').EndTimeUtc | Should -Be $a1FailedOverAt
        ($done.Tasks | Where-Object Name -eq 'Gate').State | Should -Be 'Succeeded'
        (Get-AsrProtectedItem a2).State | Should -Be 'FailedOver'
    }

    It 'bad plans are refused before anything runs: <Why>' -ForEach @(
        @{ Why = 'syntax error'; Text = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items a1 { "; Expect = 'syntax errors: line 1' }
        @{ Why = 'unknown machine'; Text = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items nope }"; Expect = "machine 'nope' is not a protected item" }
        @{ Why = 'duplicate group numbers'; Text = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items a1; AsrGroup 1 -Items a2 }"; Expect = 'group number 1 is used 2 times' }
        @{ Why = 'a machine in two groups'; Text = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items a1; AsrGroup 2 -Items A1 }"; Expect = "machine 'a1' is in groups 1 and 2" }
        @{ Why = 'no plan'; Text = "'just a string'"; Expect = 'must call AsrRecoveryPlan exactly once' }
        @{ Why = 'a state that does not allow it'; Text = "AsrRecoveryPlan 'x' { AsrGroup 1 -Items a1 }"; Expect = "'a1' is FailedOver" }
    ) {
        $file = Join-TestPath $dir "bad-$([Guid]::NewGuid().ToString('N').Substring(0, 6)).ps1"
        [IO.File]::WriteAllText($file, $Text)
        $before = @(Get-AsrJob).Count
        $err = { Start-AsrRecoveryPlan -Path $file -FailoverType Unplanned -Target $target -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'RecoveryPlanInvalid,*' -PassThru
        $err.Exception.Message | Should -Match ([regex]::Escape($Expect))
        @(Get-AsrJob).Count | Should -Be $before -Because 'a refused plan starts no job'
    }
}

Describe 'Recovery plans: a run whose process is killed, restarted [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines 'k1', 'k2' -SizeBytes 1MB
        $go = Join-TestPath $dir 'go.flag'
        $plan = Join-TestPath $dir 'slow.ps1'
        # The step before group 2 waits (up to 60 s) for a flag: the run is killed while it waits.
        [IO.File]::WriteAllText($plan, @"
AsrRecoveryPlan 'slow' {
    AsrGroup 1 -Items k1
    AsrGroup 2 -Items k2 {
        AsrStep 'Wait for the network' -Before { for (`$i = 0; `$i -lt 600 -and -not [IO.File]::Exists('$go'); `$i++) { [Threading.Thread]::Sleep(100) }; if (-not [IO.File]::Exists('$go')) { throw 'timed out' } }
    }
}
"@)
        $target = Join-TestPath $dir 'recovery'
        Disconnect-AsrVault
        $child = (Start-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; Start-AsrRecoveryPlan -Path '$plan' -FailoverType Unplanned -Target (New-AsrLocalTarget '$target') -Confirm:`$false | Out-Null").Process
        Connect-AsrVault -Path $vaultPath
        $jobId = $null
        $watch = [Diagnostics.Stopwatch]::StartNew()
        while ($watch.Elapsed.TotalSeconds -lt 60 -and -not $child.HasExited) {
            $running = @(Get-AsrJob -Operation 'RecoveryPlan*')
            if ($running.Count -gt 0 -and ($running[0].Tasks | Where-Object { $_.Name -like '*Wait for the network*' -and $_.State -eq 'InProgress' })) { $jobId = $running[0].Id; break }
            [Threading.Thread]::Sleep(50)
        }
        $child.Kill($true); $child.WaitForExit()
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'the run was killed while its step ran; the job shows Interrupted and offers Restart-AsrJob' {
        $jobId | Should -Not -BeNullOrEmpty
        $job = Get-AsrJob -Id $jobId
        $job.State | Should -Be 'Interrupted'
        $job.AllowedActions | Should -Contain 'Restart-AsrJob'
        ($job.Tasks | Where-Object Item -eq 'k1').State | Should -Be 'Succeeded'
        (Get-AsrProtectedItem k2).State | Should -Be 'Protected'
    }

    It 'Restart-AsrJob continues from the first unfinished task (group 1 is not run again)' {
        $k1Done = ((Get-AsrJob -Id $jobId).Tasks | Where-Object Item -eq 'k1').EndTimeUtc
        [IO.File]::WriteAllText($go, 'go')
        $done = Get-AsrJob -Id $jobId | Restart-AsrJob
        $done.State | Should -Be 'Succeeded'
        ($done.Tasks | Where-Object Item -eq 'k1').EndTimeUtc | Should -Be $k1Done
        (Get-AsrProtectedItem k2).State | Should -Be 'FailedOver'
        (Get-AsrProtectedItem k1).State | Should -Be 'FailedOver'
    }
}

Describe 'Recovery plan jobs compose with PowerShell''s own job cmdlets [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        New-AsrSampleDisk -Path (Join-TestPath $dir 'j1.img') -SizeBytes 1MB | Out-Null
        Enable-AsrReplication -Name j1 -Disk (Join-TestPath $dir 'j1.img') -Policy p | Out-Null
        $plan = Join-TestPath $dir 'job.ps1'
        [IO.File]::WriteAllText($plan, "AsrRecoveryPlan 'job' { AsrPause 'Approve the drill'; AsrGroup 1 -Items j1 }")
        $target = New-AsrLocalTarget (Join-TestPath $dir 'drills')
    }
    AfterAll {
        Get-Job | Remove-Job -Force
        if ((Get-AsrProtectedItem j1).State -eq 'TestFailedOver') { Get-AsrProtectedItem j1 | Start-AsrTestFailoverCleanup -Confirm:$false | Out-Null }
        Disconnect-AsrVault; Remove-TestDirectory $dir
    }

    It '-AsJob also registers a PowerShell job: Wait-Job returns at the pause (Suspended), Receive-Job gives the AsrJob' {
        $asr = Start-AsrRecoveryPlan -Path $plan -FailoverType Test -Target $target -AsJob
        $ps = Get-Job -Name $asr.Id
        $ps.PSJobTypeName | Should -Be 'AsrJob'
        $ps | Wait-Job -Timeout 60 | Out-Null
        $ps.State | Should -Be 'Suspended'
        $received = $ps | Receive-Job
        $received.Id | Should -Be $asr.Id
        $received.State | Should -Be 'Suspended'
    }

    It 'after Resume-AsrJob -AsJob, Wait-Job/Receive-Job see the run complete' {
        $asr = @(Get-AsrJob -State Suspended)[0]
        $resumed = $asr | Resume-AsrJob -Comment 'approved' -AsJob
        # The newest PowerShell job of that name is the resumed run (it may already have finished).
        $result = @(Get-Job -Name $resumed.Id)[-1] | Wait-Job -Timeout 60 | Receive-Job
        $result.State | Should -Be 'Succeeded'
        (Get-AsrProtectedItem j1).State | Should -Be 'TestFailedOver'
    }
}

Describe 'Every failover type runs through a plan, in lifecycle order [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        foreach ($m in 'f1', 'f2', 'f3') {
            New-AsrSampleDisk -Path (Join-TestPath $dir "$m.img") -SizeBytes 2MB -Seed $m.Length | Out-Null
            Enable-AsrReplication -Name $m -Disk (Join-TestPath $dir "$m.img") -Policy p | Out-Null
        }
        $log = Join-TestPath $dir 'directions.log'
        $plan = Join-TestPath $dir 'all.ps1'
        [IO.File]::WriteAllText($plan, @"
AsrRecoveryPlan 'all' {
    AsrGroup 1 -Items f1 {
        AsrStep 'Record' -Before { param(`$ctx) [IO.File]::AppendAllText('$log', "`$(`$ctx.FailoverType):`$(`$ctx.FailoverDirection)``n") }
        AsrStep 'Only back home' -After { param(`$ctx) [IO.File]::AppendAllText('$log', "home``n") } -Direction RecoveryToPrimary
    }
    AsrGroup 2 -Items f2, f3
}
"@)
        $target = New-AsrLocalTarget (Join-TestPath $dir 'site2')
        function Invoke-PlanRun([string]$Type) {
            $args = @{ Path = $plan; FailoverType = $Type; Confirm = $false }
            if ($Type -in 'Test', 'Planned', 'Unplanned') { $args.Target = $target }
            $job = Start-AsrRecoveryPlan @args
            $job.State | Should -Be 'Succeeded' -Because "$Type run: $($job.StatusMessage)"
        }
        function Get-States { (@('f1', 'f2', 'f3') | ForEach-Object { (Get-AsrProtectedItem $_).State }) -join ',' }
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'Test then TestCleanup' {
        Invoke-PlanRun Test
        Get-States | Should -Be 'TestFailedOver,TestFailedOver,TestFailedOver'
        Invoke-PlanRun TestCleanup
        Get-States | Should -Be 'Protected,Protected,Protected'
    }

    It 'Planned (final sync, nothing lost) then Commit' {
        Write-AsrSampleChange -Path (Join-TestPath $dir 'f2.img') -Fraction 0.05 -Seed 3 | Out-Null
        $f2 = Get-AsrSampleHash (Join-TestPath $dir 'f2.img')
        Invoke-PlanRun Planned
        Get-States | Should -Be 'FailedOver,FailedOver,FailedOver'
        Get-AsrSampleHash (Join-TestPath $target.Path 'f2/f2.img') | Should -Be $f2
        Invoke-PlanRun Commit
        Get-States | Should -Be 'Committed,Committed,Committed'
    }

    It 'Reprotect then Failback brings the recovered data home' {
        Write-AsrSampleChange -Path (Join-TestPath $target.Path 'f3/f3.img') -Fraction 0.05 -Seed 4 | Out-Null
        $f3 = Get-AsrSampleHash (Join-TestPath $target.Path 'f3/f3.img')
        Invoke-PlanRun Reprotect
        Get-States | Should -Be 'Reprotected,Reprotected,Reprotected'
        Invoke-PlanRun Failback
        Get-States | Should -Be 'Protected,Protected,Protected'
        Get-AsrSampleHash (Join-TestPath $dir 'f3.img') | Should -Be $f3
    }

    It 'steps saw each run''s failover type and direction; direction-restricted steps ran only for failback' {
        [IO.File]::ReadAllLines($log) | Should -Be @('Test:PrimaryToRecovery', 'TestCleanup:PrimaryToRecovery', 'Planned:PrimaryToRecovery',
            'Commit:PrimaryToRecovery', 'Reprotect:PrimaryToRecovery', 'Failback:RecoveryToPrimary', 'home')
    }

    It 'Stop-AsrJob ends a suspended run; it can no longer be resumed' {
        $paused = Join-TestPath $dir 'paused.ps1'
        [IO.File]::WriteAllText($paused, "AsrRecoveryPlan 'p' { AsrPause 'wait'; AsrGroup 1 -Items f1 }")
        $job = Start-AsrRecoveryPlan -Path $paused -FailoverType Unplanned -Target (New-AsrLocalTarget (Join-TestPath $dir 'site3')) -Confirm:$false
        $job.State | Should -Be 'Suspended'
        ($job | Stop-AsrJob -Confirm:$false -PassThru).State | Should -Be 'Cancelled'
        (Get-AsrJob -Id $job.Id).State | Should -Be 'Cancelled'
        { Get-AsrJob -Id $job.Id | Resume-AsrJob -ErrorAction Stop } | Should -Throw -ErrorId 'InvalidStateTransition,*'
        (Get-AsrProtectedItem f1).State | Should -Be 'Protected'
    }
}

Describe 'Recovery plans: restart after a partly failed group; step timeouts [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = Initialize-TestVault $dir -Machines 'm1', 'm2' -SizeBytes 1MB
        $plan = Join-TestPath $dir 'pair.ps1'
        [IO.File]::WriteAllText($plan, "AsrRecoveryPlan 'pair' { AsrGroup 1 -Items m1, m2 }")
        $target = New-AsrLocalTarget (Join-TestPath $dir 'recovery')
        # Another operation holds m2: its failover fails, m1's succeeds.
        $lock = Lock-VaultObject $vaultPath "locks/item-$((Get-AsrProtectedItem m2).Id).lock"
        $job = Start-AsrRecoveryPlan -Path $plan -FailoverType Unplanned -Target $target -Confirm:$false -ErrorAction SilentlyContinue
        Unlock-VaultObject $lock
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'the group failed on m2 only' {
        $job.State | Should -Be 'Failed'
        ($job.Tasks | Where-Object Item -eq 'm1').State | Should -Be 'Succeeded'
        ($job.Tasks | Where-Object Item -eq 'm2').Error | Should -Match 'busy'
    }

    It 'Restart-AsrJob runs only m2: m1 is not failed over again' {
        $m1End = ($job.Tasks | Where-Object Item -eq 'm1').EndTimeUtc
        $done = Get-AsrJob -Id $job.Id | Restart-AsrJob
        $done.State | Should -Be 'Succeeded'
        ($done.Tasks | Where-Object Item -eq 'm1').EndTimeUtc | Should -Be $m1End
        (Get-AsrProtectedItem m2).State | Should -Be 'FailedOver'
    }

    It 'a step past its -TimeoutSeconds is stopped and fails its task' {
        $slow = Join-TestPath $dir 'slow-step.ps1'
        [IO.File]::WriteAllText($slow, "AsrRecoveryPlan 'slow' { AsrStep 'Hangs' -TimeoutSeconds 1 -Before { while (`$true) { [Threading.Thread]::Sleep(50) } }; AsrGroup 1 -Items m1, m2 }")
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $r = Start-AsrRecoveryPlan -Path $slow -FailoverType Commit -Confirm:$false -ErrorAction SilentlyContinue
        $watch.Elapsed.TotalSeconds | Should -BeLessThan 30
        $r.State | Should -Be 'Failed'
        ($r.Tasks | Where-Object Name -eq 'Hangs').Error | Should -Match 'did not finish within 1 s'
        (Get-AsrProtectedItem m1).State | Should -Be 'FailedOver'
    }
}
