param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# The replication agent as a real child process (dotnet AsrModule.Agent.dll in its own session),
# driven through Start-AsrAgent / Stop-AsrAgent, over a real vault and real disk files.
Describe 'The replication agent protects its host''s machines continuously [<Backend>]' -Tag Agent, Slow {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vaultPath = New-TestVaultLocation $dir
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name fast -CrashConsistentFrequencyMinutes 0.5 -AppConsistentFrequencyHours 0 -RecoveryPointRetentionHours 24 -RpoThresholdMinutes 1 | Out-Null
        $agentHost = 'agent-' + [Guid]::NewGuid().ToString('N').Substring(0, 6)
        $log = Join-TestPath $dir 'agent.log'

        function Read-Sequence([string]$Path) {
            $b = [byte[]]::new(8)
            $f = [IO.File]::OpenRead($Path); try { [void]$f.Read($b, 0, 8) } finally { $f.Dispose() }
            [BitConverter]::ToInt64($b, 0)
        }

        # solo: a 1 GiB disk, so a hash-scan cycle lasts long enough to be killed in the middle.
        $solo = Join-TestPath $dir 'solo.img'
        $f = [IO.File]::Create($solo); $f.SetLength(1GB); $f.Dispose()
        Write-AsrSampleChange -Path $solo -Fraction 0.01 -Seed 3 | Out-Null
        Enable-AsrReplication -Name solo -Disk $solo -Policy fast -AgentHost $agentHost | Out-Null

        # late: protected by no agent at first; assigned while the agent runs.
        $late = Join-TestPath $dir 'late.img'
        New-AsrSampleDisk -Path $late -SizeBytes 2MB -Seed 4 | Out-Null
        Enable-AsrReplication -Name late -Disk $late -Policy fast -AgentHost 'nobody-here' | Out-Null

        # g0..g2: a replication group whose one writer writes 1, 2, 3, ... round-robin to the first
        # 8 bytes of the three disks. The freeze script stops the writer (SIGSTOP) and thaw resumes it.
        $pidFile = Join-TestPath $dir 'writer.pid'
        $hookLog = Join-TestPath $dir 'hook.log'
        $hook = Join-TestPath $dir 'freeze.sh'
        [IO.File]::WriteAllText($hook, "#!/bin/sh`necho `"`$1 `$ASR_ITEM_NAME`" >> '$hookLog'`nif [ `"`$1`" = freeze ]; then kill -STOP `$(cat '$pidFile'); else kill -CONT `$(cat '$pidFile'); fi`n")
        [IO.File]::SetUnixFileMode($hook, [IO.UnixFileMode]'UserRead, UserWrite, UserExecute')
        $groupDisks = foreach ($i in 0..2) {
            $p = Join-TestPath $dir "g$i.img"
            New-AsrSampleDisk -Path $p -SizeBytes 4MB -Seed (10 + $i) | Out-Null
            $p
        }
        foreach ($i in 0..2) {
            Enable-AsrReplication -Name "g$i" -Disk $groupDisks[$i] -Policy fast -AgentHost $agentHost -ReplicationGroup trio -AppConsistencyScript $hook | Out-Null
        }
        $writerCommand = @"
`$fs = @('$($groupDisks[0])', '$($groupDisks[1])', '$($groupDisks[2])') | ForEach-Object { [IO.File]::Open(`$_, 'Open', 'ReadWrite', 'ReadWrite') }
[IO.File]::WriteAllText('$pidFile', [string][Environment]::ProcessId)
`$n = 0L
while (`$true) { `$n++; `$buf = [BitConverter]::GetBytes(`$n); `$f = `$fs[`$n % 3]; `$f.Position = 0; `$f.Write(`$buf, 0, 8); `$f.Flush(); if (`$n % 64 -eq 0) { [Threading.Thread]::Sleep(1) } }
"@
        $writer = (Start-PwshProcess $writerCommand).Process
        Wait-Until { [IO.File]::Exists($pidFile) -and (Read-Sequence $groupDisks[0]) -gt 100 } 30 'the writer runs'

        # The group's freeze script is allowed on this host by the agent's own configuration, not by the vault.
        $agent = Start-AsrAgent -HostName $agentHost -LogPath $log -TickInterval '00:00:00.250' -AllowedFreezeScript $hook
    }
    AfterAll {
        try { Stop-AsrAgent -HostName $agentHost -Force -TimeoutSeconds 60 -ErrorAction SilentlyContinue } catch { }
        if ($writer -and -not $writer.HasExited) { & /bin/kill -CONT $writer.Id 2>$null; $writer.Kill() }
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It 'starts as a background process that reports in the vault' {
        $agent.State | Should -Be 'Running'
        $agent.HostName | Should -Be $agentHost
        $agent.ProcessId | Should -BeGreaterThan 0
        (Get-AsrAgent -HostName $agentHost).State | Should -Be 'Running'
        (Get-AsrEvent -EventType AgentStarted).AgentHost | Should -Contain $agentHost
    }

    It 'publishes points at the policy''s 30-second frequency' {
        Wait-Until { @(Get-AsrRecoveryPoint solo).Count -ge 2 } 75 'solo has a second point'
        $points = @(Get-AsrRecoveryPoint solo)
        $gap = ($points[1].RecoveryPointTimeUtc - $points[0].RecoveryPointTimeUtc).TotalSeconds
        $gap | Should -BeGreaterOrEqual 29.5
        $gap | Should -BeLessThan 45
        $item = Get-AsrProtectedItem solo
        $item.ReplicationHealth | Should -Be 'Normal'
        $item.CurrentRpo.TotalSeconds | Should -BeLessThan 60
    }

    It 'picks up an item assigned to its host without a restart' {
        @(Get-AsrRecoveryPoint late).Count | Should -Be 1
        Set-AsrProtectedItem late -AgentHost $agentHost
        Write-AsrSampleChange -Path $late -Fraction 0.05 -Seed 9 | Out-Null
        $expected = Get-AsrSampleHash $late
        Wait-Until { @(Get-AsrRecoveryPoint late).Count -ge 2 } 30 'late has a point from the agent'
        $hashes = Get-ExportedHashes (Get-AsrRecoveryPoint late -Latest) (Join-TestPath $dir 'late-export')
        $hashes['late.img'] | Should -Be $expected
        (Get-AsrEvent -ProtectedItem late -EventType ItemAssigned).Count | Should -BeGreaterOrEqual 1
    }

    It 'takes coordinated group points: no point shows a later write on one machine without the earlier ones on the others' {
        Wait-Until { @(Get-AsrRecoveryPoint -ReplicationGroup trio -ErrorAction SilentlyContinue).Count -ge 2 } 100 'the group has two points'
        $groupPoints = @(Get-AsrRecoveryPoint -ReplicationGroup trio)
        foreach ($gp in $groupPoints) {
            $gp.Members.Count | Should -Be 3
            $values = foreach ($m in $gp.Members) {
                $point = Get-AsrRecoveryPoint $m.ItemName -Sequence $m.PointSequence
                $point.GroupPointId | Should -Be $gp.GroupPointId
                $point.RecoveryPointTimeUtc | Should -Be $gp.RecoveryPointTimeUtc
                $point.Consistency | Should -Be 'AppConsistent'
                $out = Join-TestPath $dir "gp$($gp.Sequence)-$($m.ItemName)"
                $job = $point | Export-AsrRecoveryPoint -Destination $out -ErrorAction Stop
                Read-Sequence $job.Result.Files[0]
            }
            # Writes go 1,2,3,... round-robin: a consistent cut holds three consecutive numbers.
            $sorted = [long[]]@($values); [Array]::Sort($sorted)
            ($sorted[2] - $sorted[0]) | Should -BeLessOrEqual 2 -Because "group point $($gp.Sequence) holds $($values -join ', ')"
            $sorted[0] | Should -BeGreaterThan 0
        }
        # Every member was frozen before any was thawed, each time.
        $lines = [IO.File]::ReadAllLines($hookLog)
        for ($i = 0; $i + 5 -lt $lines.Count; $i += 6) {
            @($lines[$i..($i + 2)] | Where-Object { $_ -like 'freeze *' }).Count | Should -Be 3
            @($lines[($i + 3)..($i + 5)] | Where-Object { $_ -like 'thaw *' }).Count | Should -Be 3
        }
    }

    It 'drills the whole group from one group point: every member serves its point of that instant' {
        $gp = Get-AsrRecoveryPoint -ReplicationGroup trio -Latest
        $target = New-AsrLocalTarget (Join-TestPath $dir 'group-drills')
        try {
            foreach ($m in $gp.Members) {
                $drill = Get-AsrProtectedItem $m.ItemName | Start-AsrTestFailover -RecoveryPoint $gp -Target $target
                $drill.State | Should -Be 'Succeeded'
                $drill.Result.RecoveryPointSequence | Should -Be $m.PointSequence
                (Get-AsrProtectedItem $m.ItemName | Test-AsrTestFailover).Result.Verified | Should -BeTrue
            }
            # A machine outside the group cannot use the group's point.
            { Get-AsrProtectedItem solo | Start-AsrTestFailover -RecoveryPoint $gp -Target $target -ErrorAction Stop } |
                Should -Throw -ErrorId 'RecoveryPointNotFound*'
        }
        finally {
            foreach ($m in $gp.Members) { Get-AsrProtectedItem $m.ItemName | Start-AsrTestFailoverCleanup -Comment 'group drill' -Confirm:$false | Out-Null }
        }
    }

    It 'after kill -9 in the middle of a cycle, a restarted agent resyncs and every point still verifies' {
        # 20% of 1 GiB rewritten: the cycle spends seconds compressing and encrypting, so the kill lands inside it.
        Write-AsrSampleChange -Path $solo -Fraction 0.2 -Seed 21 | Out-Null
        Wait-Until { $null -ne (Get-AsrProtectedItem solo).CycleInProgressJobId } 60 'the agent starts a cycle of solo'
        # An agent that is gone before the kill ended by itself: say why (its stdout and stderr go to its log).
        try { [Diagnostics.Process]::GetProcessById($agent.ProcessId).Kill() }   # SIGKILL
        catch { throw "The agent (pid $($agent.ProcessId)) had ended before the kill ($($_.Exception.Message)). Its log ends:`n$((Get-Content $log -Tail 80) -join "`n")" }
        $killedJob = (Get-AsrProtectedItem solo).CycleInProgressJobId
        $before = (Get-AsrProtectedItem solo).LastPointSequence
        # SIGKILL takes effect when the process leaves the kernel: a cycle writing back its source's dirty pages
        # (the write fingerprint of a live read) can hold it there for a while on a busy machine.
        Wait-Until { (Get-AsrAgent -HostName $agentHost).State -eq 'NotResponding' } 60 'the killed agent shows NotResponding'
        @(Get-AsrRecoveryPoint solo | Where-Object JobId -eq $killedJob).Count | Should -Be 0 -Because 'the killed cycle must not have published'
        $item = Get-AsrProtectedItem solo
        $item.State | Should -Be 'ResyncRequired'
        (Get-AsrJob -Id $killedJob).State | Should -Be 'Interrupted'

        # The killed agent's locks are free at once on a local vault; on a blob vault their leases run out within
        # a minute: the new agent waits for its host lock, and retries the item whose lock is still held.
        $script:agent = Start-AsrAgent -HostName $agentHost -LogPath $log -TickInterval '00:00:00.250' -AllowedFreezeScript $hook
        $expected = Get-AsrSampleHash $solo
        Wait-Until { (Get-AsrProtectedItem solo).LastPointSequence -gt $before -and (Get-AsrProtectedItem solo).State -eq 'Protected' } 120 'the restarted agent publishes a point of solo'
        $latest = Get-AsrRecoveryPoint solo -Latest
        # The point is published before its job record is finished: wait for the record.
        Wait-Until { (Get-AsrJob -Id $latest.JobId).State -eq 'Succeeded' } 30 'the resync job record is finished'
        (Get-AsrJob -Id $latest.JobId).Result.Mode | Should -Be 'Resync'
        (Get-ExportedHashes $latest (Join-TestPath $dir 'solo-resync'))['solo.img'] | Should -Be $expected
        (Get-AsrEvent -ProtectedItem solo -EventType ResyncCompleted).Count | Should -BeGreaterOrEqual 1
        $results = @('solo', 'late', 'g0', 'g1', 'g2' | ForEach-Object { Get-AsrRecoveryPoint $_ } | Test-AsrRecoveryPoint)
        $results.Count | Should -BeGreaterOrEqual 9
        @($results | Where-Object { -not $_.Verified }).Count | Should -Be 0
    }

    It 'stops when asked through the vault and records it' {
        $stopped = Stop-AsrAgent -HostName $agentHost -PassThru
        $stopped.State | Should -Be 'Stopped'
        (Get-AsrEvent -EventType AgentStopped).AgentHost | Should -Contain $agentHost
        (Get-AsrProtectedItem solo).CycleInProgressJobId | Should -BeNullOrEmpty
    }
}

# What a host runs (issue #12): the vault names an item's freeze script and its SHA-256; the agent runs it
# only if its own configuration allows it (Start-AsrAgent -AllowedFreezeScript) and the hash still matches.
Describe 'The agent runs only the freeze scripts its host allows [<Backend>]' -Tag Agent {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $log = Join-TestPath $dir 'agent.log'
        New-AsrVault -Path (New-TestVaultLocation $dir) | Connect-AsrVault
        New-AsrPolicy -Name app -CrashConsistentFrequencyMinutes 0.5 -AppConsistentFrequencyHours 1 -RecoveryPointRetentionHours 24 -RpoThresholdMinutes 5 | Out-Null
        $agentHost = 'trust-' + [Guid]::NewGuid().ToString('N').Substring(0, 6)
        $allowed = Join-TestPath $dir 'allowed'
        $elsewhere = Join-TestPath $dir 'elsewhere'
        [void][IO.Directory]::CreateDirectory($allowed); [void][IO.Directory]::CreateDirectory($elsewhere)
        # Each script leaves a marker file when it runs.
        function New-MarkerScript([string]$Path) {
            [IO.File]::WriteAllText($Path, "#!/bin/sh`necho `"`$1 `$ASR_ITEM_NAME`" >> '$Path.ran'`n")
            [IO.File]::SetUnixFileMode($Path, [IO.UnixFileMode]'UserRead, UserWrite, UserExecute')
            $Path
        }
        $trusted = New-MarkerScript (Join-TestPath $allowed 'trusted.sh')
        $changed = New-MarkerScript (Join-TestPath $allowed 'changed.sh')
        $planted = New-MarkerScript (Join-TestPath $elsewhere 'planted.sh')
        foreach ($name in 'trusted', 'changed', 'planted') {
            New-AsrSampleDisk -Path (Join-TestPath $dir "$name.img") -SizeBytes 1MB -Seed 5 | Out-Null
        }
        # Set from this session: the record names each script with its hash. The agent is another process.
        Enable-AsrReplication -Name trusted -Disk (Join-TestPath $dir 'trusted.img') -Policy app -AgentHost $agentHost -AppConsistencyScript $trusted | Out-Null
        Enable-AsrReplication -Name changed -Disk (Join-TestPath $dir 'changed.img') -Policy app -AgentHost $agentHost -AppConsistencyScript $changed | Out-Null
        Enable-AsrReplication -Name planted -Disk (Join-TestPath $dir 'planted.img') -Policy app -AgentHost $agentHost -AppConsistencyScript $planted | Out-Null
        # In the allowed directory, but rewritten after it was pinned.
        [IO.File]::AppendAllText($changed, "echo rewritten >> '$changed.ran'`n")
        $agent = Start-AsrAgent -HostName $agentHost -LogPath $log -TickInterval '00:00:00.250' -AllowedFreezeScript $allowed

    }
    AfterAll {
        try { Stop-AsrAgent -HostName $agentHost -Force -TimeoutSeconds 60 -ErrorAction SilentlyContinue | Out-Null } catch { }
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It 'runs an allowed script for an app-consistent point, and never one outside its allow-list or with another hash' {
        Wait-Until { @(Get-AsrRecoveryPoint trusted | Where-Object Consistency -eq 'AppConsistent').Count -ge 1 } 60 'trusted has an app-consistent point'
        Wait-Until { @(Get-AsrEvent -EventType AppConsistencyScriptNotAllowed).Count -ge 2 } 30 'the refusals are reported'
        [IO.File]::ReadAllLines("$trusted.ran") | Should -Be @('freeze trusted', 'thaw trusted')
        [IO.File]::Exists("$planted.ran") | Should -BeFalse -Because 'the agent''s host does not allow the planted script'
        [IO.File]::Exists("$changed.ran") | Should -BeFalse -Because 'the script changed after it was pinned'
        $refusals = @(Get-AsrEvent -EventType AppConsistencyScriptNotAllowed)
        ($refusals | Where-Object ItemName -eq 'planted').Message | Should -BeLike '*allow-list*'
        ($refusals | Where-Object ItemName -eq 'changed').Message | Should -BeLike '*content changed*'
        @($refusals | Where-Object ItemName -eq 'trusted').Count | Should -Be 0
        @(Get-AsrRecoveryPoint planted | Where-Object Consistency -eq 'AppConsistent').Count | Should -Be 0
    }
}

# Issue #15 item 1: an idle agent's cost follows its host's items and what changed, not what the vault holds. Counted by
# Azurite itself (its debug log has a line per request it serves), over a window in which only the agent runs.
if ($Backend -eq 'Blob') {
    Describe 'An idle agent costs two listings a tick, whatever the vault holds [<Backend>]' -Tag Agent {
        BeforeAll {
            . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
            . ([IO.Path]::Combine($PSScriptRoot, 'TestAzurite.ps1'))
            Import-Module AsrModule
            $dir = New-TestDirectory
            $server = Start-TestAzurite -DebugLog
            New-AsrVault -ConnectionString $server.ConnectionString -Container catalog -EncryptionKey 'catalog key' | Connect-AsrVault
            New-AsrPolicy -Name hourly -CrashConsistentFrequencyMinutes 60 | Out-Null   # nothing falls due while the test watches
            $hostA = 'cat-a-' + [Guid]::NewGuid().ToString('N').Substring(0, 6)
            $hostB = 'cat-b-' + [Guid]::NewGuid().ToString('N').Substring(0, 6)
            foreach ($i in 0..15) {
                $disk = Join-TestPath $dir "m$i.img"
                New-AsrSampleDisk -Path $disk -SizeBytes 64KB -Seed (100 + $i) | Out-Null
                Enable-AsrReplication -Name "m$i" -Disk $disk -Policy hourly -AgentHost $(if ($i % 2) { $hostB } else { $hostA }) | Out-Null
            }
            $log = Join-TestPath $dir 'agent.log'
            $agent = Start-AsrAgent -HostName $hostA -EncryptionKey (ConvertTo-SecureString 'catalog key' -AsPlainText -Force) -LogPath $log -TickInterval '00:00:00.250'

            function Measure-IdleAgent([int]$Seconds) {
                # The test makes no request in the window: every request Azurite serves in it is the agent's.
                $from = [DateTimeOffset]::UtcNow
                Start-Sleep -Seconds $Seconds
                $to = [DateTimeOffset]::UtcNow
                $requests = @(Measure-TestAzuriteRequests $server $from $to)
                $ticks = @($requests | Where-Object { $_.Url -like "*comp=list*prefix=hosts/$hostA/*" }).Count
                [pscustomobject]@{ Requests = $requests; Ticks = $ticks; PerTick = $requests.Count / [math]::Max(1, $ticks) }
            }
        }
        AfterAll {
            try { Stop-AsrAgent -HostName $hostA -Force -TimeoutSeconds 60 -ErrorAction SilentlyContinue | Out-Null } catch { }
            Disconnect-AsrVault
            Stop-TestAzurite $server
            Remove-TestDirectory $dir
        }

        It 'lists its host''s folder and the policies each tick and reads no item while nothing changes' {
            Wait-Until { @((Get-AsrAgent -HostName $hostA).ProtectedItems).Count -eq 8 } 30 'the agent has read its 8 items'
            $idle = Measure-IdleAgent 4
            Write-Host "    idle: $($idle.Requests.Count) requests in $($idle.Ticks) ticks ($([math]::Round($idle.PerTick, 2)) per tick): $(($idle.Requests | Group-Object Method | ForEach-Object { "$($_.Name) $($_.Count)" }) -join ', ')"
            $idle.Ticks | Should -BeGreaterOrEqual 6
            $idle.PerTick | Should -BeLessOrEqual 3
            # Nothing under items/, names/ or jobs/: no item, claim or job record is read or listed.
            @($idle.Requests | Where-Object { $_.Url -match '(^|/|prefix=)(items|names|jobs)/' }).Count | Should -Be 0
        }

        It 'takes an item reassigned to its host at the next ticks, by the item''s marker alone' {
            Set-AsrProtectedItem m1 -AgentHost $hostA
            Wait-Until { @((Get-AsrAgent -HostName $hostA).ProtectedItems) -contains 'm1' } 30 'the agent protects m1'
            (Get-AsrEvent -ProtectedItem m1 -EventType ItemAssigned).AgentHost | Should -Contain $hostA
            $idle = Measure-IdleAgent 3
            $idle.PerTick | Should -BeLessOrEqual 3
            @((Get-AsrAgent -HostName $hostA).ProtectedItems).Count | Should -Be 9
        }

        It 'Get-AsrProtectedItem takes the agent''s items from its catalog snapshot and reads only the others' {
            $aIds = @(Get-AsrProtectedItem | Where-Object AgentHost -eq $hostA | ForEach-Object Id)
            $aIds.Count | Should -Be 9
            $pattern = "items/($($aIds -join '|'))/"
            # The agent writes its snapshot within CatalogSnapshotInterval (10 s) of the reassignment above.
            Wait-Until {
                $from = [DateTimeOffset]::UtcNow
                $script:listing = @(Get-AsrProtectedItem)
                $requests = @(Measure-TestAzuriteRequests $server $from ([DateTimeOffset]::UtcNow))
                $script:itemReads = @($requests | Where-Object { $_.Url -match $pattern })
                $script:otherReads = @($requests | Where-Object { $_.Url -match 'items/[0-9a-f]{16}/item\.json' -and $_.Url -notmatch $pattern })
                $script:itemReads.Count -eq 0
            } 40 'a listing that reads none of the agent''s items'
            $script:otherReads.Count | Should -Be 7   # host B has no agent: its items are read one by one
            $script:listing.Count | Should -Be 16
            # What the snapshot shows is what reading each item shows.
            foreach ($i in $script:listing) {
                $direct = Get-AsrProtectedItem -Name $i.Name
                "$($i.Name) $($i.State) $($i.ReplicationHealth) $($i.LastPointSequence) $($i.AgentHost) $($i.LastRecoveryPointTimeUtc)" |
                    Should -Be "$($direct.Name) $($direct.State) $($direct.ReplicationHealth) $($direct.LastPointSequence) $($direct.AgentHost) $($direct.LastRecoveryPointTimeUtc)"
            }
        }
    }
}
