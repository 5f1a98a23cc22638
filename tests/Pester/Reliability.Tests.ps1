param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

# Faults of issue #12 through real processes: an Enable-AsrReplication killed mid-copy (item 4) and a storage outage
# mid-job (item 10). The engine-level forms are tests/Unit/Reliability and tests/Unit/Azure/BlobOutageJobTests.

# Defined for one backend only (a kill test of a local vault (on blob the dead process's lease adds a minute)): on the other it is not a test at all, rather than a skipped one.
if ($Backend -eq 'Local') {
Describe 'An Enable-AsrReplication killed mid-copy can go on [<Backend>]' -Tag Reliability {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        # One row is enough: on a blob vault the killed process's lease only adds its minute (ProtectedItemBusy meanwhile).
        $skip = $Backend -ne 'Local'
        if ($skip) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'killed.img'
        $vaultPath = New-TestVaultLocation $dir
        New-AsrSampleDisk -Path $disk -SizeBytes 256MB -Seed 41 | Out-Null
        New-AsrVault -Path $vaultPath | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        $sourceHash = Get-AsrSampleHash $disk

        # A real pwsh runs the initial replication and is killed (SIGKILL) once it has stored packs of point 1.
        $child = (Start-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; Enable-AsrReplication -Name killed -Disk '$disk' -Policy p | Out-Null").Process
        $killedMidCopy = $false
        $watch = [Diagnostics.Stopwatch]::StartNew()
        while ($watch.Elapsed.TotalSeconds -lt 60 -and -not $child.HasExited) {
            $packs = @(Get-VaultObjectKeys $vaultPath 'items/' | Where-Object { $_ -match '/packs/000000000001[.-]' })
            if ($packs.Count -gt 0) { $child.Kill(); $killedMidCopy = $true; break }
            [Threading.Thread]::Sleep(5)
        }
        $child.WaitForExit()
        $item = Get-AsrProtectedItem killed
        $orphans = @(Get-VaultObjectKeys $vaultPath "items/$($item.Id)/packs/")
    }
    AfterAll { if (-not $skip) { Disconnect-AsrVault; Remove-TestDirectory $dir } }

    It 'the process was killed while it was storing the initial copy' {
        $killedMidCopy | Should -BeTrue
        $orphans.Count | Should -BeGreaterThan 0
        (Get-AsrJob -TargetName killed -Operation EnableReplication)[-1].State | Should -Be 'Interrupted'
    }

    It 'the item waits in InitialReplicationPending and says what to do' {
        $item.State | Should -Be 'InitialReplicationPending'
        $item.NeedsResync | Should -BeFalse
        $item.AllowedOperations | Should -Be @('Invoke-AsrReplication', 'Resume-AsrResync', 'Disable-AsrReplication')
        $item.LastError | Should -Match 'did not complete.*Invoke-AsrReplication'
    }

    It 'Invoke-AsrReplication in a new process runs the initial replication again; the point equals the source by SHA-256' {
        $r = Invoke-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultPath'; `$j = Get-AsrProtectedItem killed | Invoke-AsrReplication; 'RESULT state=' + `$j.State; 'RESULT mode=' + `$j.Result.Mode"
        $r.Result.state | Should -Be 'Succeeded' -Because $r.Error
        $r.Result.mode | Should -Be 'Initial'
        $point = Get-AsrRecoveryPoint -Item killed -Latest
        $point.Sequence | Should -Be 1
        (Get-ExportedHashes $point (Join-TestPath $dir 'restore'))['killed.img'] | Should -Be $sourceHash
        (Get-AsrProtectedItem killed).State | Should -Be 'Protected'
    }

    It 'nothing of the killed attempt is left in the vault' {
        $point = Get-AsrRecoveryPoint -Item killed -Latest
        @(Get-VaultObjectKeys $vaultPath "items/$($item.Id)/packs/" | Sort-AsrLines) | Should -Be @($point.Packs | Sort-AsrLines)
    }
}
}

# Defined for one backend only (an outage of the blob store): on the other it is not a test at all, rather than a skipped one.
if ($Backend -eq 'Blob') {
Describe 'A job whose blob storage went away ends Failed in the vault too [<Backend>]' -Tag Reliability, Azurite {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'TestAzurite.ps1'))
        # Starts and stops an Azurite of its own, so one row is enough: the Blob one.
        $skip = $Backend -ne 'Blob'
        if ($skip) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $disk = Join-TestPath $dir 'outage.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 256MB -Seed 43 | Out-Null
        $azurite = Start-TestAzurite
        $vaultUrl = "$($azurite.Endpoint)/outage-$([Guid]::NewGuid().ToString('N').Substring(0, 12))"
        $environment = @{ AZURE_STORAGE_CONNECTION_STRING = $azurite.ConnectionString }
        $env:AZURE_STORAGE_CONNECTION_STRING, $saved = $azurite.ConnectionString, $env:AZURE_STORAGE_CONNECTION_STRING
        New-AsrVault -Path $vaultUrl | Out-Null
        New-AsrPolicy -Vault $vaultUrl -Name p | Out-Null

        # A real pwsh runs Enable-AsrReplication with the module's default retries; Azurite stops once packs are stored.
        # The child then stays alive (as a session or agent would) until the parent has read the vault again.
        $done = Join-TestPath $dir 'child-done'
        $release = Join-TestPath $dir 'release-child'
        $child = Start-PwshProcess (@"
Import-Module AsrModule
Connect-AsrVault -Path '$vaultUrl'
`$watch = [Diagnostics.Stopwatch]::StartNew()
`$job = Enable-AsrReplication -Name outage -Disk '$disk' -Policy p -ErrorAction SilentlyContinue
'RESULT state=' + `$job.State; 'RESULT error=' + `$job.Errors[0].ErrorId; 'RESULT id=' + `$job.Id
'RESULT seenHere=' + (Get-AsrJob -Id `$job.Id).State
Set-Content '$done' 'done'
while (-not (Test-Path '$release') -and `$watch.Elapsed.TotalSeconds -lt 180) { Start-Sleep -Milliseconds 200 }
"@) $environment
        $stoppedAt = $null
        $watch = [Diagnostics.Stopwatch]::StartNew()
        while ($watch.Elapsed.TotalSeconds -lt 90 -and -not $child.Process.HasExited -and -not (Test-Path $done)) {
            if (-not $stoppedAt -and @(Get-VaultObjectKeys $vaultUrl 'items/' | Where-Object { $_ -match '/packs/000000000001[.-]' }).Count -gt 0) {
                Suspend-TestAzurite $azurite
                $stoppedAt = [Diagnostics.Stopwatch]::StartNew()
            }
            [Threading.Thread]::Sleep(20)
        }
        $reportedAfter = if ($stoppedAt) { $stoppedAt.Elapsed.TotalSeconds }
        Resume-TestAzurite $azurite
        # Another process's view of the job record, once the storage is back (the child's background retry writes it).
        $recordWatch = [Diagnostics.Stopwatch]::StartNew()
        do {
            Start-Sleep -Milliseconds 250
            $jobs = @(Get-AsrJob -Vault $vaultUrl -TargetName outage -Operation EnableReplication -ErrorAction SilentlyContinue)
        } until (($jobs.Count -gt 0 -and $jobs[-1].State -ne 'InProgress') -or $recordWatch.Elapsed.TotalSeconds -gt 30)
        $recordAfter = $recordWatch.Elapsed.TotalSeconds
        Set-Content $release 'go'
        $result = Wait-PwshProcess $child 60
        Write-Host "Outage reported $([Math]::Round($reportedAfter, 1)) s after Azurite stopped; the record read $($jobs[-1].State) $([Math]::Round($recordAfter, 1)) s after it restarted"
    }
    AfterAll {
        if (-not $skip) {
            $env:AZURE_STORAGE_CONNECTION_STRING = $saved
            if ($child -and -not $child.Process.HasExited) { $child.Process.Kill() }
            Stop-TestAzurite $azurite
            Remove-TestDirectory $dir
        }
    }

    It 'the job failed with VaultUnavailable (the time it took is printed: timings are measured, not asserted)' {
        $stoppedAt | Should -Not -BeNullOrEmpty
        $result.Result.state | Should -Be 'Failed' -Because $result.Output
        $result.Result.error | Should -Be 'VaultUnavailable'
        # The documented budget is 0.5 + 1 + 2 + 4 + 8 s of backoff (the SDK adds ±20% jitter), plus the request and the job's end.
        Write-Host "    the outage was reported $([Math]::Round($reportedAfter, 1)) s after Azurite stopped"
    }

    It 'its own process shows the true end, not Interrupted' {
        $result.Result.seenHere | Should -Be 'Failed'
    }

    It 'another process reads Failed once the storage is back (not InProgress, not Interrupted)' {
        $jobs[-1].Id | Should -Be $result.Result.id
        $jobs[-1].State | Should -Be 'Failed'
        $jobs[-1].Errors[0].ErrorId | Should -Be 'VaultUnavailable'
    }

    It 'the item can go on: the next cycle publishes the first point' {
        $j = Get-AsrProtectedItem -Vault $vaultUrl outage | Invoke-AsrReplication
        $j.State | Should -Be 'Succeeded'
        $j.Result.Mode | Should -Be 'Initial'
    }

    It 'Azurite stopped and restarted mid-way through a delta cycle: the cycle ends with a documented id or succeeds; the item goes on; every point verifies and is exact' {
        . ([IO.Path]::Combine($PSScriptRoot, 'ReliabilityHelpers.ps1'))
        $hashes = @{ 1 = Get-AsrSampleHash $disk }
        Write-AsrSampleChange -Path $disk -Fraction 0.3 -Seed 44 | Out-Null
        $hashes[2] = Get-AsrSampleHash $disk
        $cycle = Start-PwshProcess "Import-Module AsrModule; Connect-AsrVault -Path '$vaultUrl'; try { 'RESULT outcome=' + (Get-AsrProtectedItem outage | Invoke-AsrReplication -ErrorAction Stop).State } catch { 'RESULT outcome=' + `$_.FullyQualifiedErrorId.Split(',')[0]; 'RESULT category=' + `$_.CategoryInfo.Category }" $environment
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $stopped = $false
        while ($watch.Elapsed.TotalSeconds -lt 90 -and -not $cycle.Process.HasExited) {
            if (@(Get-VaultObjectKeys $vaultUrl 'items/' | Where-Object { $_ -match '/packs/000000000002[.-]' }).Count -gt 0) { Suspend-TestAzurite $azurite; $stopped = $true; break }
            [Threading.Thread]::Sleep(20)
        }
        Start-Sleep -Seconds 3           # within the retry budget: the cycle's requests may get through once it is back
        Resume-TestAzurite $azurite
        $r = Wait-PwshProcess $cycle 120
        Write-Host "delta cycle with Azurite stopped for 3 s mid-way: $($r.Result.outcome)"
        $stopped | Should -BeTrue -Because 'Azurite was stopped while the cycle stored packs'
        if ($r.Result.outcome -ne 'Succeeded') { (Get-AsrDocumentedErrorId).Contains($r.Result.outcome) | Should -BeTrue -Because $r.Output }
        Wait-VaultLockReleased $vaultUrl "locks/item-$((Get-AsrProtectedItem -Vault $vaultUrl outage).Id).lock" 120
        Connect-AsrVault -Path $vaultUrl
        try {
            $next = Get-AsrProtectedItem outage | Invoke-AsrReplication -ErrorAction Stop
            $next.State | Should -Be 'Succeeded'
            foreach ($p in Get-AsrRecoveryPoint -Item outage) {
                ($p | Test-AsrRecoveryPoint).Verified | Should -BeTrue -Because "point $($p.Sequence) must verify"
                $want = if ($p.Sequence -eq 1) { $hashes[1] } else { $hashes[2] }
                (Get-ExportedHashes $p (Join-TestPath $dir "restore-$($p.Sequence)")).Values | Should -Be $want -Because "point $($p.Sequence) must equal the source"
            }
        } finally { Disconnect-AsrVault }
    }
}
}

# ---- The reliability suite (#12, "Done means") ----
# Data-driven and seeded (ASR_RELIABILITY_SEED, default 12: every random choice below derives from it). The short form
# runs in CI: one kill trial per operation on a local vault, and a cycle kill on a blob vault. The long form is the same
# tests with ASR_SOAK_TRIALS trials per operation (bench/reliability-soak.ps1 sets 20 and prints the counts table);
# the tag Soak marks the tests whose size that variable sets. Every area reports its counts as a "RELIABILITY ..." line
# (ReliabilityHelpers.ps1, Add-ReliabilityCount). The bad-input catalogue is BadInputs.Tests.ps1; a full vault on a
# tmpfs and a read-only one are in Vault.Tests.ps1 ('A full or read-only vault file system'), an ext4 one is below.

# kill -9 at a seeded random moment of each long operation, on a 64 MiB disk (about a second of work, so the kill lands inside it);
# then, in a fresh process: every point listed before still listed, verified and bit-exact (SHA-256 of the export = the
# source's when that point was made), every point published since equal to the source when the operation began, and the
# item goes on the way a user would go on (the next cycle, the export retried, the failover cancelled or retried, the plan
# run restarted). A trial whose operation finished before the kill is tried again with an earlier moment (3 attempts).
$killOperations = @(
    @{ Operation = 'enable'; Backends = @('Local') }
    @{ Operation = 'cycle'; Backends = @('Local', 'Blob') }     # on a blob vault the killed lease adds its minute
    @{ Operation = 'export'; Backends = @('Local') }
    @{ Operation = 'failover'; Backends = @('Local') }
    @{ Operation = 'plan'; Backends = @('Local') }
)
Describe 'kill -9 during <Operation> [<Backend>]' -Tag Reliability, Soak -ForEach @($killOperations | Where-Object { $_.Backends -contains $Backend }) {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'ReliabilityHelpers.ps1'))
        Import-Module AsrModule
        $ProgressPreference = 'SilentlyContinue'
        $dir = New-TestDirectory
        $vault = New-TestVaultLocation $dir
        New-AsrVault -Path $vault | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        $rng = New-ReliabilityRandom "kill/$Operation/$Backend"
        $trialCount = Get-ReliabilityTrialCount
        $expected = @{}       # item -> sequence (string) -> disk -> SHA-256 of the source when the point was made
        function Add-Item([string]$Name, [long]$Size, [int]$Seed) {
            $disk = Join-TestPath $dir "$Name.img"
            New-AsrSampleDisk -Path $disk -SizeBytes $Size -Seed $Seed | Out-Null
            $hash = Get-AsrSampleHash $disk
            $watch = [Diagnostics.Stopwatch]::StartNew()
            Enable-AsrReplication -Name $Name -Disk $disk -Policy p -ErrorAction Stop | Out-Null
            $expected[$Name] = @{ '1' = @{ "$Name.img" = $hash } }
            [int]$watch.ElapsedMilliseconds
        }
        function Invoke-Cycle([string]$Name, [int]$Seed) {
            $disk = Join-TestPath $dir "$Name.img"
            Write-AsrSampleChange -Path $disk -Fraction 0.25 -Seed $Seed | Out-Null
            $hash = Get-AsrSampleHash $disk
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $job = Get-AsrProtectedItem $Name | Invoke-AsrReplication -ErrorAction Stop
            $expected[$Name]["$($job.Result.RecoveryPointSequence)"] = @{ "$Name.img" = $hash }
            [int]$watch.ElapsedMilliseconds
        }
        function Measure-Export([string]$Name) {
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $to = Join-TestPath $dir 'calibrate'
            Get-AsrRecoveryPoint -Item $Name -Latest | Export-AsrRecoveryPoint -Destination $to -Force -ErrorAction Stop | Out-Null
            [IO.Directory]::Delete($to, $true)
            [int]$watch.ElapsedMilliseconds
        }
        # Setup, and how long the operation takes here (the kill moment is a random fraction of it).
        $items = @()
        $planPath = Join-TestPath $dir 'two.ps1'
        switch ($Operation) {
            'enable' { $durationMs = Add-Item 'e0' 64MB 100; $items = @('e0') }
            'cycle' { Add-Item 'c' 64MB 200 | Out-Null; $durationMs = Invoke-Cycle 'c' 201; $items = @('c') }
            'export' { Add-Item 'x' 64MB 300 | Out-Null; Invoke-Cycle 'x' 301 | Out-Null; $durationMs = Measure-Export 'x'; $items = @('x') }
            'failover' { Add-Item 'f' 64MB 400 | Out-Null; Invoke-Cycle 'f' 401 | Out-Null; $durationMs = Measure-Export 'f'; $items = @('f') }
            'plan' {
                Add-Item 'p1' 64MB 500 | Out-Null; Add-Item 'p2' 64MB 501 | Out-Null; $items = @('p1', 'p2')
                [IO.File]::WriteAllText($planPath, "AsrRecoveryPlan 'two' { AsrGroup 1 -Items p1, p2 }")
                $watch = [Diagnostics.Stopwatch]::StartNew()
                Start-AsrRecoveryPlan -Path $planPath -FailoverType Unplanned -Target (New-AsrLocalTarget (Join-TestPath $dir 'calibrate')) -Confirm:$false -ErrorAction Stop | Out-Null
                $durationMs = [int]$watch.ElapsedMilliseconds
                foreach ($n in $items) { Get-AsrProtectedItem $n | Undo-AsrFailover -Confirm:$false -ErrorAction Stop | Out-Null }
            }
        }
        Write-Host "kill -9 during $Operation [$Backend]: $trialCount trial(s), the operation takes ~$durationMs ms here, seed $(Get-ReliabilitySeed)"

        $trials = [Collections.Generic.List[object]]::new()
        $lastExported = @()
        for ($t = 1; $t -le $trialCount; $t++) {
            for ($attempt = 1; $attempt -le 3; $attempt++) {
                $trialDir = Join-TestPath $dir "trial-$t-$attempt"
                $pending = @{}; $goOn = @{}; $prelude = ''
                switch ($Operation) {
                    'enable' {
                        $name = "e$t$([char](96 + $attempt))"
                        $disk = Join-TestPath $dir "$name.img"
                        New-AsrSampleDisk -Path $disk -SizeBytes 64MB -Seed (100 + 10 * $t + $attempt) | Out-Null
                        $pending[$name] = @{ "$name.img" = Get-AsrSampleHash $disk }
                        $text = "Enable-AsrReplication -Name $name -Disk '$disk' -Policy p"
                        $goOn = @{ Name = $name; Disk = $disk; Policy = 'p' }
                        $items += $name
                    }
                    { $_ -eq 'cycle' } {
                        Write-AsrSampleChange -Path (Join-TestPath $dir 'c.img') -Fraction 0.25 -Seed (1000 + 10 * $t + $attempt) | Out-Null
                        $pending['c'] = @{ 'c.img' = Get-AsrSampleHash (Join-TestPath $dir 'c.img') }
                        $text = 'Get-AsrProtectedItem c | Invoke-AsrReplication'
                        $goOn = @{ Name = 'c' }
                    }
                    'export' {
                        $sequences = @($expected['x'].Keys)
                        $seq = $sequences[$rng.Next($sequences.Count)]
                        $destination = Join-TestPath $trialDir 'export'
                        $text = "Get-AsrRecoveryPoint -Item x -Sequence $seq | Export-AsrRecoveryPoint -Destination '$destination'"
                        $goOn = @{ Name = 'x'; Sequence = $seq; Destination = $destination }
                    }
                    'failover' {
                        $target = Join-TestPath $trialDir 'target'
                        $text = "Get-AsrProtectedItem f | Start-AsrFailover -Target (New-AsrLocalTarget '$target') -Confirm:`$false"
                        $goOn = @{ Names = @('f'); Target = $target }
                    }
                    'plan' {
                        $target = Join-TestPath $trialDir 'target'
                        $text = "Start-AsrRecoveryPlan -Path '$planPath' -FailoverType Unplanned -Target (New-AsrLocalTarget '$target') -Confirm:`$false"
                        $goOn = @{ Names = @('p1', 'p2'); Target = $target; Plan = $planPath; PreviousRuns = @(Get-AsrJob -Operation 'RecoveryPlan*' | ForEach-Object { "$($_.Id)" }) }
                    }
                }
                # A seeded moment within the operation; each further attempt of a trial earlier than the last.
                $fraction = (0.05 + 0.85 * $rng.NextDouble()) / [Math]::Pow(2, $attempt - 1)
                $kill = Start-KilledOperation -Vault $vault -Operation $text -TrialDir $trialDir -DelayMs ([int]($fraction * $durationMs)) -Prelude $prelude
                if ($kill.DurationMs) { $durationMs = $kill.DurationMs }
                # Which points the check exports this time: all of an item with few, else its latest and two at random
                # (each point was exported once when it was made; the last It exports every point again).
                $check = @{}
                foreach ($n in $expected.Keys) {
                    $seqs = @($expected[$n].Keys | Sort-Object { [long]$_ })
                    $check[$n] = if ($seqs.Count -le 3) { $seqs } else { @($seqs[-1]) + @(1..2 | ForEach-Object { $seqs[$rng.Next($seqs.Count - 1)] }) }
                }
                $report = Invoke-ReliabilityCheck -TrialDir $trialDir -Request @{
                    Vault = $vault; Operation = $Operation; Expected = $expected; Check = $check; Pending = $pending; GoOn = $goOn; Items = $items
                }
                foreach ($np in @($report.NewPoints)) {
                    if (-not $np.Ok) { continue }
                    if (-not $expected.ContainsKey($np.Item)) { $expected[$np.Item] = @{} }
                    $expected[$np.Item]["$($np.Sequence)"] = $pending[$np.Item]
                }
                $lastExported = @($report.Exported)
                $trials.Add([pscustomobject]@{
                    Trial = $t; Attempt = $attempt; Killed = $kill.KilledMidOperation; DelayMs = $kill.DelayMs; FinishedMs = $kill.DurationMs
                    Lost = @($report.Lost); Corrupt = @($report.Corrupt); Stuck = $report.Stuck; Notes = @($report.Notes); StateAfterKill = $report.StateAfterKill
                })
                Write-Host ("  trial $t.$attempt kill at $($kill.DelayMs) ms: " + $(if ($kill.KilledMidOperation) { 'killed mid-operation' } else { "finished first ($($kill.DurationMs) ms)" }) +
                    "; after: $(($report.StateAfterKill.GetEnumerator() | ForEach-Object { "$($_.Key)=$($_.Value)" }) -join ' '); $(@($report.Notes) -join '; ')" +
                    $(if ($report.Stuck) { "; STUCK: $($report.Stuck)" }) + $(if ($report.Lost) { "; LOST: $($report.Lost -join ' | ')" }) + $(if ($report.Corrupt) { "; CORRUPT: $($report.Corrupt -join ' | ')" }))
                if ($kill.KilledMidOperation) { break }
            }
        }
        $counts = @{
            Trials = $trials.Count; Kills = @($trials | Where-Object Killed).Count
            Lost = ($trials | ForEach-Object { $_.Lost.Count } | Measure-Object -Sum).Sum
            Corrupt = ($trials | ForEach-Object { $_.Corrupt.Count } | Measure-Object -Sum).Sum
            Stuck = @($trials | Where-Object Stuck).Count
        }
        Add-ReliabilityCount "kill -9 $Operation" $Backend $counts
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'each trial''s kill landed mid-operation (the process was killed before the operation returned)' {
        @($trials | Where-Object Killed | ForEach-Object Trial | Select-Object -Unique).Count | Should -Be $trialCount
    }

    It 'no point listed before a kill was lost' {
        @($trials | ForEach-Object Lost) | Should -BeNullOrEmpty
    }

    It 'no point is corrupt: each verifies and exports equal to the source when it was made' {
        @($trials | ForEach-Object Corrupt) | Should -BeNullOrEmpty
    }

    It 'the item went on after every kill' {
        @($trials | Where-Object Stuck | ForEach-Object { "trial $($_.Trial).$($_.Attempt): $($_.Stuck)" }) | Should -BeNullOrEmpty
    }

    It 'at the end every point of every item verifies, and exports bit-exact' {
        # The last check exported some points already (in the short form all of them); the others are exported here.
        $bad = foreach ($n in $expected.Keys) {
            foreach ($seq in $expected[$n].Keys) {
                $point = Get-AsrRecoveryPoint -Item $n -Sequence $seq
                if (($point | Test-AsrRecoveryPoint).Verified -ne $true) { "$n point $seq does not verify" }
                if ("$n/$seq" -in $lastExported) { continue }
                $got = Get-ExportedHashes $point (Join-TestPath $dir "final-$n-$seq")
                [IO.Directory]::Delete((Join-TestPath $dir "final-$n-$seq"), $true)
                foreach ($d in $expected[$n][$seq].Keys) { if ($got[$d] -ne $expected[$n][$seq][$d]) { "$n point $seq disk $d" } }
            }
        }
        @($bad) | Should -BeNullOrEmpty
    }
}

# Corruption of every object kind: each is flipped (bytes XORed at seeded offsets), truncated (to a seeded length) or
# deleted, then the cmdlets that read it run, each with a timeout (a step that hangs fails the case): every error they
# give must be a documented id with a category (VaultDataCorrupt naming the object, VaultFormatUnsupported, ...), never an
# unhandled exception; another item (its own policy, disk and points) must be unaffected; then the object is put back.
# The local vault is encrypted (every record authenticated), the blob one plain. The short form takes one mutation per kind
# (chosen by the seed) on each backend; with ASR_SOAK_TRIALS > 1 every kind gets all three.
. ([IO.Path]::Combine($PSScriptRoot, 'ReliabilityHelpers.ps1'))   # New-ReliabilityRandom and Get-ReliabilityTrialCount at discovery
$corruptKinds = @(
    @{ Kind = 'vault header'; Key = { 'asrvault.json' }; Global = $true }
    @{ Kind = 'policy'; Key = { 'policies/pa.json' } }
    @{ Kind = 'item record'; Key = { "items/$($ids.a)/item.json" } }
    @{ Kind = 'name claim'; Key = { 'names/a' } }
    @{ Kind = 'manifest'; Key = { Select-Seeded (Get-VaultObjectKeys $vault "items/$($ids.a)/points/") } }
    @{ Kind = 'extent index'; Key = { Select-Seeded @(Get-VaultObjectKeys $vault "items/$($ids.a)/index/" | Where-Object { $_ -like '*.idx' }) } }
    @{ Kind = 'full map (rebased point)'; Key = { Select-Seeded @(Get-VaultObjectKeys $vault "items/$($ids.r)/index/" | Where-Object { $_ -like '*.map' }) } }
    @{ Kind = 'change tracker'; Key = { Select-Seeded (Get-VaultObjectKeys $vault "items/$($ids.a)/tracker/") } }
    @{ Kind = 'pack'; Key = { Select-Seeded (Get-VaultObjectKeys $vault "items/$($ids.a)/packs/") } }
    @{ Kind = 'job record'; Key = { Select-Seeded (Get-VaultObjectKeys $vault 'jobs/') } }
    @{ Kind = 'event'; Key = { Select-Seeded (Get-VaultObjectKeys $vault 'events/') } }
    @{ Kind = 'pin'; Key = { Select-Seeded (Get-VaultObjectKeys $vault "pins/$($ids.a)/") } }
)
$mutations = 'flip', 'truncate', 'delete'
$corruptCases = foreach ($k in $corruptKinds) {
    $pick = (New-ReliabilityRandom "corrupt/$($k.Kind)/$Backend").Next(3)
    foreach ($m in $(if ((Get-ReliabilityTrialCount) -gt 1) { $mutations } else { $mutations[$pick] })) { $k + @{ Mutation = $m } }
}

Describe 'Corruption of every object kind [<Backend>]' -Tag Reliability, Corruption {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'ReliabilityHelpers.ps1'))
        Import-Module AsrModule
        $ProgressPreference = 'SilentlyContinue'
        $dir = New-TestDirectory
        $vault = New-TestVaultLocation $dir
        $key = if ($Backend -eq 'Local') { 'reliability key' }
        if ($key) { New-AsrVault -Path $vault -EncryptionKey $key | Out-Null; Connect-AsrVault -Path $vault -EncryptionKey $key }
        else { New-AsrVault -Path $vault | Connect-AsrVault }
        New-AsrPolicy -Name pa | Out-Null
        New-AsrPolicy -Name pb | Out-Null
        New-AsrPolicy -Name p0 -RecoveryPointRetentionHours 0 | Out-Null   # keeps only the newest point: rebased to a full map
        foreach ($d in @(@('a', 4MB, 'pa'), @('b', 2MB, 'pb'), @('r', 1MB, 'p0'))) {
            New-AsrSampleDisk -Path (Join-TestPath $dir "$($d[0]).img") -SizeBytes $d[1] -Seed ($d[1] / 1MB) | Out-Null
            Enable-AsrReplication -Name $d[0] -Disk (Join-TestPath $dir "$($d[0]).img") -Policy $d[2] | Out-Null
        }
        foreach ($s in 1..2) {
            foreach ($n in 'a', 'r') { Write-AsrSampleChange -Path (Join-TestPath $dir "$n.img") -Fraction 0.05 -Seed (60 + $s) | Out-Null; Get-AsrProtectedItem $n | Invoke-AsrReplication | Out-Null }
        }
        $ids = @{}; foreach ($i in Get-AsrProtectedItem) { $ids[$i.Name] = $i.Id }
        # A reader's pin on a's latest point, as an export holds one while it reads: caught while a real export of this
        # process runs (so it is sealed as the vault seals pins) and put back after it, owned by this live process.
        $pin = $null
        for ($try = 0; $try -lt 20 -and -not $pin; $try++) {
            $exporter = [powershell]::Create()
            [void]$exporter.AddScript("Connect-AsrVault -Path '$vault' $(if ($key) { "-EncryptionKey '$key'" }); Get-AsrRecoveryPoint -Item a -Latest | Export-AsrRecoveryPoint -Destination '$(Join-TestPath $dir 'pinned')' -Force")
            $async = $exporter.BeginInvoke()
            while (-not $async.IsCompleted -and -not $pin) {
                # (a writer's temporary file, *.tmp-*, is not a pin: it is renamed into place or removed at any moment)
                foreach ($k in Get-VaultObjectKeys $vault 'pins/' | Where-Object { $_ -notmatch '\.tmp-' }) { $bytes = Read-VaultObject $vault $k; if ($bytes) { $pin = @{ Key = $k; Bytes = $bytes } } }
            }
            try { [void]$exporter.EndInvoke($async) } finally { $exporter.Dispose() }
        }
        if (-not $pin) {
            # Not caught (the export was quicker than the listing): a plain pin record, which an encrypted vault must refuse.
            $latestA = Get-AsrRecoveryPoint -Item a -Latest
            $pin = @{ Key = "pins/$($ids.a)/$([Guid]::NewGuid().ToString('N')).json"; Bytes = [Text.Encoding]::UTF8.GetBytes((@{
                    sequence = $latestA.Sequence; pointId = $latestA.PointId; purpose = 'Export'; ownerHost = [Environment]::MachineName
                    ownerProcessId = $PID; ownerProcessStartUtc = [Diagnostics.Process]::GetCurrentProcess().StartTime.ToUniversalTime(); createdUtc = [DateTimeOffset]::UtcNow
                } | ConvertTo-Json)) }
        }
        Write-VaultObject $vault $pin.Key $pin.Bytes
        $bHashes = @{}; foreach ($p in Get-AsrRecoveryPoint -Item b) { $bHashes[$p.Sequence] = (Get-ExportedHashes $p (Join-TestPath $dir "b-$($p.Sequence)")).Values }
        Disconnect-AsrVault
        $timed = @{ Runspace = New-TimedRunspace }   # replaced when a step hangs
        $connect = if ($key) { "Connect-AsrVault -Path '$vault' -EncryptionKey '$key'" } else { "Connect-AsrVault -Path '$vault'" }
        $steps = [ordered]@{
            'Connect-AsrVault'        = $connect
            'Get-AsrPolicy'           = 'Get-AsrPolicy | Out-Null'
            'Get-AsrProtectedItem'    = 'Get-AsrProtectedItem | Out-Null'
            'Get-AsrRecoveryPoint'    = 'Get-AsrRecoveryPoint -Item a | Out-Null'
            'Test-AsrRecoveryPoint'   = 'Get-AsrRecoveryPoint -Item a | Test-AsrRecoveryPoint | Out-Null'
            'Export-AsrRecoveryPoint' = "Get-AsrRecoveryPoint -Item a -Latest | Export-AsrRecoveryPoint -Destination '$(Join-TestPath $dir 'export')' -Force | Out-Null"
            'Invoke-AsrReplication'   = "Write-AsrSampleChange -Path '$(Join-TestPath $dir 'a.img')' -Fraction 0.01 -Seed (Get-Random) | Out-Null; Get-AsrProtectedItem a, r | Invoke-AsrReplication | Out-Null"
            'Get-AsrJob'              = 'Get-AsrJob | Out-Null'
            'Get-AsrEvent'            = 'Get-AsrEvent -Newest 100 | Out-Null'
        }
        $null = Invoke-TimedStep $timed.Runspace ". '$(Join-TestPath $PSScriptRoot 'TestHelpers.ps1')'"
        $results = [Collections.Generic.List[object]]::new()
        $rng = New-ReliabilityRandom "corrupt/$Backend"
        function Select-Seeded($Keys) { $Keys = @($Keys); if ($Keys.Count) { $Keys[$rng.Next($Keys.Count)] } }
    }
    AfterAll {
        if ($results.Count) {
            Add-ReliabilityCount 'corruption' $Backend @{ Cases = $results.Count; Categorised = @($results | Where-Object { -not $_.Problems }).Count }
        }
        if ($timed.Runspace) { $timed.Runspace.Dispose() }
        Disconnect-AsrVault
        Remove-TestDirectory $dir
    }

    It '<Mutation> of the <Kind>: a categorised error naming it, or ignored; no hang; other items unaffected' -ForEach $corruptCases {
        $objectKey = & $Key
        $objectKey | Should -Not -BeNullOrEmpty -Because "the vault must hold a $Kind to damage"
        $original = Read-VaultObject $vault $objectKey
        $caseRng = New-ReliabilityRandom "corrupt/$Kind/$Mutation/$Backend"
        switch ($Mutation) {
            'flip' {
                $bytes = [byte[]]$original.Clone()
                foreach ($i in 1..(1 + $caseRng.Next(8))) { $o = $caseRng.Next($bytes.Length); $bytes[$o] = $bytes[$o] -bxor (1 + $caseRng.Next(255)) }
                Write-VaultObject $vault $objectKey $bytes
            }
            'truncate' { $cut = [byte[]]::new($caseRng.Next($original.Length)); [Array]::Copy($original, $cut, $cut.Length); Write-VaultObject $vault $objectKey $cut }
            'delete' { Remove-VaultObject $vault $objectKey }
        }
        $problems = [Collections.Generic.List[string]]::new()
        $outcomes = [Collections.Generic.List[string]]::new()
        try {
            foreach ($step in $steps.GetEnumerator()) {
                $r = Invoke-TimedStep $timed.Runspace $step.Value -TimeoutSeconds 90 -ErrorAction Continue
                if ($r.TimedOut) {
                    $problems.Add("$($step.Key) did not end within 90 s")
                    $timed.Runspace = New-TimedRunspace; $null = Invoke-TimedStep $timed.Runspace ". '$(Join-TestPath $PSScriptRoot 'TestHelpers.ps1')'"
                    continue
                }
                foreach ($e in @($r.Errors | Select-Object -Unique)) {
                    $outcomes.Add("$($step.Key): $(Get-AsrErrorId $e)")
                    if (-not (Test-AsrDocumentedError $e)) { $problems.Add("$($step.Key): uncategorised error $(Format-AsrError $e)") }
                    elseif ((Get-AsrErrorId $e) -eq 'VaultDataCorrupt' -and $e.Exception.Message -notmatch [regex]::Escape($objectKey) -and
                        $e.Exception.Message -notmatch [regex]::Escape([IO.Path]::GetFileNameWithoutExtension($objectKey))) {
                        $problems.Add("$($step.Key): VaultDataCorrupt does not name $objectKey ($($e.Exception.Message))")
                    }
                }
                if ($step.Key -eq 'Connect-AsrVault' -and -not $r.Ok) { break }   # nothing else can open this vault
            }
            if (-not $Global) {
                # The other item: listed, and every point of it verifies and exports as it did.
                $other = Invoke-TimedStep $timed.Runspace "$($steps['Connect-AsrVault']); Get-AsrProtectedItem b | Out-Null; Get-AsrRecoveryPoint -Item b | Test-AsrRecoveryPoint | Where-Object { -not `$_.Verified } | ForEach-Object { throw ""b point `$(`$_.Sequence) does not verify"" }" -TimeoutSeconds 90
                if (-not $other.Ok) { $problems.Add("the other item was affected: $(if ($other.TimedOut) { 'timed out' } else { Format-AsrError $other.Error })") }
            }
        } finally {
            Write-VaultObject $vault $objectKey $original
        }
        Write-Host "  $Mutation $Kind ($objectKey): $(if ($outcomes.Count) { $outcomes -join '; ' } else { 'no error' })"
        $results.Add([pscustomobject]@{ Kind = $Kind; Mutation = $Mutation; Key = $objectKey; Problems = @($problems); Outcomes = @($outcomes) })
        @($problems) | Should -BeNullOrEmpty
    }

    It 'once every object is back the vault is whole: b''s points export as before, a and r go on' {
        $withKey = if ($key) { @{ EncryptionKey = $key } } else { @{} }
        Connect-AsrVault -Path $vault @withKey
        foreach ($p in Get-AsrRecoveryPoint -Item b) { (Get-ExportedHashes $p (Join-TestPath $dir "b-after-$($p.Sequence)")).Values | Should -Be $bHashes[$p.Sequence] }
        foreach ($n in 'a', 'r') {
            Write-AsrSampleChange -Path (Join-TestPath $dir "$n.img") -Fraction 0.02 -Seed 77 | Out-Null
            (Get-AsrProtectedItem $n | Invoke-AsrReplication -ErrorAction Stop).State | Should -Be 'Succeeded'
            (Get-ExportedHashes (Get-AsrRecoveryPoint -Item $n -Latest) (Join-TestPath $dir "$n-final")).Values | Should -Be (Get-AsrSampleHash (Join-TestPath $dir "$n.img"))
        }
    }
}

# Two writers of one item at once, in two real processes released together: one cycle wins and the other is refused
# (ProtectedItemBusy) without publishing; one Enable-AsrReplication of a name wins and the other is ProtectedItemAlreadyExists.
Describe 'Two writers [<Backend>]' -Tag Reliability {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'ReliabilityHelpers.ps1'))
        Import-Module AsrModule
        $dir = New-TestDirectory
        $vault = New-TestVaultLocation $dir
        New-AsrVault -Path $vault | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        $disk = Join-TestPath $dir 'w.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 48MB -Seed 70 | Out-Null
        Enable-AsrReplication -Name w -Disk $disk -Policy p | Out-Null
        Write-AsrSampleChange -Path $disk -Fraction 0.3 -Seed 71 | Out-Null
        $sourceHash = Get-AsrSampleHash $disk
        function Start-Together([string[]]$Commands) {
            # Each child loads the module and connects, then waits for the go file: the operations start within milliseconds.
            $go = Join-TestPath $dir "go-$([Guid]::NewGuid().ToString('N').Substring(0, 6))"
            $children = foreach ($c in $Commands) {
                $ready = Join-TestPath $dir "ready-$([Guid]::NewGuid().ToString('N').Substring(0, 6))"
                [pscustomobject]@{ Ready = $ready; Child = Start-PwshProcess @"
`$ProgressPreference = 'SilentlyContinue'
Import-Module AsrModule; Connect-AsrVault -Path '$vault'
[IO.File]::WriteAllText('$ready', 'ready')
while (-not [IO.File]::Exists('$go')) { [Threading.Thread]::Sleep(2) }
try { `$j = $c -ErrorAction Stop; 'RESULT outcome=' + `$j.State } catch { 'RESULT outcome=' + `$_.FullyQualifiedErrorId.Split(',')[0]; 'RESULT error=' + `$_.Exception.Message }
"@ }
            }
            $watch = [Diagnostics.Stopwatch]::StartNew()
            while (@($children | Where-Object { -not [IO.File]::Exists($_.Ready) }).Count -and $watch.Elapsed.TotalSeconds -lt 120) { [Threading.Thread]::Sleep(20) }
            [IO.File]::WriteAllText($go, 'go')
            foreach ($c in $children) { Wait-PwshProcess $c.Child 300 }
        }
        $cycles = @(Start-Together @('Get-AsrProtectedItem w | Invoke-AsrReplication', 'Get-AsrProtectedItem w | Invoke-AsrReplication'))
        $other = Join-TestPath $dir 'n2.img'
        New-AsrSampleDisk -Path (Join-TestPath $dir 'n1.img') -SizeBytes 8MB -Seed 72 | Out-Null
        New-AsrSampleDisk -Path $other -SizeBytes 8MB -Seed 73 | Out-Null
        $enables = @(Start-Together @("Enable-AsrReplication -Name twin -Disk '$(Join-TestPath $dir 'n1.img')' -Policy p", "Enable-AsrReplication -Name twin -Disk '$other' -Policy p"))
        Write-Host "two cycles: $(($cycles | ForEach-Object { $_.Result.outcome }) -join ', '); two enables: $(($enables | ForEach-Object { $_.Result.outcome }) -join ', ')"
    }
    AfterAll { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'two cycles of one item: one Succeeded, the other ProtectedItemBusy' {
        @($cycles | ForEach-Object { $_.Result.outcome } | Sort-Object) | Should -Be @('ProtectedItemBusy', 'Succeeded') -Because ($cycles.Output -join "`n")
    }

    It 'the winner''s point is whole and equals the source; every point verifies' {
        @(Get-AsrRecoveryPoint -Item w).Count | Should -Be 2
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item w -Latest) (Join-TestPath $dir 'w-latest')).Values | Should -Be $sourceHash
        @(Get-AsrRecoveryPoint -Item w | Test-AsrRecoveryPoint | Where-Object { -not $_.Verified }) | Should -BeNullOrEmpty
        (Get-AsrProtectedItem w).State | Should -Be 'Protected'
    }

    It 'two Enable-AsrReplication of one name: one Succeeded, the other ProtectedItemAlreadyExists; one item' {
        @($enables | ForEach-Object { $_.Result.outcome } | Sort-Object) | Should -Be @('ProtectedItemAlreadyExists', 'Succeeded') -Because ($enables.Output -join "`n")
        @(Get-AsrProtectedItem twin).Count | Should -Be 1
        (Get-AsrProtectedItem twin).State | Should -Be 'Protected'
        (Get-AsrRecoveryPoint -Item twin -Latest | Test-AsrRecoveryPoint).Verified | Should -BeTrue
    }
}

# Disk full on a small real ext4 file system (loop-mounted image): the full tmpfs and the read-only mount are tested in
# Vault.Tests.ps1 ('A full or read-only vault file system'). An initial replication that does not fit fails with
# VaultStorageFull; nothing published is lost; once the failed item is disabled the others go on. Root only.
# Defined for one backend only (a file system to fill exists for a local vault only): on the other it is not a test at all, rather than a skipped one.
if ($Backend -eq 'Local') {
Describe 'A vault on a full ext4 file system [<Backend>]' -Tag Reliability, Mount, LoopDevice {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'ReliabilityHelpers.ps1'))
        $skipReason = Get-MissingCommandReason mount, umount, mkfs.ext4, truncate -NeedsRoot
        if ($skipReason) { return }
        Import-Module AsrModule
        $dir = New-TestDirectory
        $image = Join-TestPath $dir 'fs.ext4'
        $fs = Join-TestPath $dir 'fs'
        [void][IO.Directory]::CreateDirectory($fs)
        Invoke-Native truncate @('-s', '24M', $image) | Out-Null
        Invoke-Native mkfs.ext4 @('-q', '-F', $image) | Out-Null
        Invoke-Native mount @('-o', 'loop', $image, $fs) | Out-Null
        $mounted = $true
        $vault = Join-TestPath $fs 'vault'
        New-AsrVault -Path $vault | Connect-AsrVault
        New-AsrPolicy -Name p -CompressionLevel 1 | Out-Null
        $small = Join-TestPath $dir 'small.img'
        New-AsrSampleDisk -Path $small -SizeBytes 4MB -Seed 80 | Out-Null
        Enable-AsrReplication -Name small -Disk $small -Policy p | Out-Null
        $first = @{ 'small.img' = Get-AsrSampleHash $small }
        $big = Join-TestPath $dir 'big.img'
        New-AsrSampleDisk -Path $big -SizeBytes 96MB -Seed 81 | Out-Null   # ~24 MiB of random data: more than the file system holds
        $bigJob = Enable-AsrReplication -Name big -Disk $big -Policy p -ErrorVariable bigErrors -ErrorAction SilentlyContinue
        Write-AsrSampleChange -Path $small -Fraction 0.2 -Seed 82 | Out-Null
        $cycleJob = Get-AsrProtectedItem small | Invoke-AsrReplication -ErrorVariable cycleErrors -ErrorAction SilentlyContinue
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        Disconnect-AsrVault
        if ($mounted) { Invoke-Native umount @('-l', $fs) | Out-Null }
        Remove-TestDirectory $dir
    }

    It 'the initial replication that does not fit fails with VaultStorageFull (ResourceUnavailable)' {
        $bigJob.State | Should -Be 'Failed'
        $bigErrors[-1].FullyQualifiedErrorId | Should -BeLike 'VaultStorageFull,*'
        $bigErrors[-1].CategoryInfo.Category | Should -Be 'ResourceUnavailable'
        (Get-AsrProtectedItem big).State | Should -Be 'InitialReplicationPending'
    }

    It 'a cycle of another item on the full file system succeeds or fails with VaultStorageFull, never otherwise' {
        if ($cycleJob.State -ne 'Succeeded') { $cycleErrors[-1].FullyQualifiedErrorId | Should -BeLike 'VaultStorageFull,*' }
        @(Get-AsrRecoveryPoint -Item small | Test-AsrRecoveryPoint | Where-Object { -not $_.Verified }) | Should -BeNullOrEmpty
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item small -Sequence 1) (Join-TestPath $dir 'first')).Values | Should -Be $first.Values
    }

    It 'once the item that did not fit is disabled, the other goes on and its point is exact' {
        Get-AsrProtectedItem big | Disable-AsrReplication -Confirm:$false -ErrorAction Stop
        (Get-AsrProtectedItem small | Invoke-AsrReplication -ErrorAction Stop).State | Should -Be 'Succeeded'
        (Get-ExportedHashes (Get-AsrRecoveryPoint -Item small -Latest) (Join-TestPath $dir 'after')).Values | Should -Be (Get-AsrSampleHash $small)
        @(Get-ChildItem -Recurse -File $vault | Where-Object Name -like '*.tmp-*') | Should -BeNullOrEmpty
    }
}
}
