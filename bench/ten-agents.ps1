<#
.SYNOPSIS
    Steps of bench/ten-agents.sh (issue #15 item 2): ten agents (ten host names, ten processes) protecting 100 items
    each on one blob vault (Azurite) for 30 minutes. Run in the pinned pwsh with the module under test first on
    PSModulePath; each step is its own pwsh process.
.DESCRIPTION
      policy : New-AsrVault (encrypted) on -ConnectionString/-Container and the policy 'ta': a crash-consistent point
               every -FrequencySeconds, no app-consistent points, RPO threshold 2 x the frequency (at least 1 minute)
      enable : Enable-AsrReplication of the items i = -Part, -Part + -Parts, ... below -Items (vmNNNN, disk
               -Work/disks/vmNNNN.img, policy 'ta', -AgentHost hNN with NN = i mod -Agents): several of these run
               at once; the initial replication of each item runs in the call
      run    : Start-AsrAgent for h00 .. h(-Agents - 1) (each its own process, log -Work/agents/hNN.log), prints
               'MARK start', samples Get-AsrAgent every -SampleSeconds for -Minutes (or until -Work/stop exists) into
               -Work/samples.csv (with the agent processes' CPU and RSS from /proc and the load average), prints
               'MARK end', then Stop-AsrAgent for every host
      collect: Get-AsrJob -Operation ReplicationCycle -> cycles.csv, Get-AsrEvent (since -Since) -> events.csv,
               Get-AsrAgent -> agents.csv, Get-AsrProtectedItem -> items.csv
      verify : for its share of the items (-Part of -Parts): every point listed (Get-AsrRecoveryPoint) -> points.jsonl,
               and Test-AsrRecoveryPoint on every point of the items named in -Work/verify-all.txt and on the latest
               point of the others -> tests-<part>.jsonl
#>
param(
    [Parameter(Mandatory)][ValidateSet('policy', 'enable', 'run', 'collect', 'verify')][string]$Step,
    [Parameter(Mandatory)][string]$ConnectionString,
    [Parameter(Mandatory)][string]$Container,
    [Parameter(Mandatory)][string]$Work,
    [int]$Agents = 10,
    [int]$Items = 1000,
    [int]$FrequencySeconds = 300,
    [int]$Part = 0,
    [int]$Parts = 1,
    [double]$Minutes = 30,
    [int]$SampleSeconds = 30,
    [string]$Since
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
$inv = [Globalization.CultureInfo]::InvariantCulture
$key = 'bench-passphrase-0123456789'
function Iso($t) { if ($null -eq $t) { '' } else { ([DateTimeOffset]$t).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ss.fffZ', $inv) } }
function Csv([string]$s) { if ($null -eq $s) { return '' }; '"' + ($s -replace '"', '""' -replace "`r?`n", ' ') + '"' }
function HostName([int]$i) { 'h{0:D2}' -f $i }
function Connect { Connect-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $key }

switch ($Step) {
    'policy' {
        New-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $key | Connect-AsrVault
        $rpo = [math]::Max(1, [int][math]::Ceiling(2 * $FrequencySeconds / 60))
        $p = New-AsrPolicy -Name ta -CrashConsistentFrequencySeconds $FrequencySeconds -AppConsistentFrequencyHours 0 -RpoThresholdMinutes $rpo
        [Console]::WriteLine("BENCH step=policy frequency_minutes=$($p.CrashConsistentFrequencyMinutes.ToString($inv)) rpo_threshold_minutes=$rpo")
    }
    'enable' {
        Connect
        $sw = [Diagnostics.Stopwatch]::StartNew(); $n = 0
        for ($i = $Part; $i -lt $Items; $i += $Parts) {
            $name = 'vm{0:D4}' -f $i
            $job = Enable-AsrReplication -Name $name -Disk ([IO.Path]::Combine($Work, 'disks', "$name.img")) -Policy ta -AgentHost (HostName ($i % $Agents))
            if ("$($job.State)" -ne 'Succeeded') { throw "Enable of $name ended $($job.State): $($job.Errors | ForEach-Object Message)" }
            $n++
            if ($n % 50 -eq 0) { [Console]::WriteLine("  part $Part`: $n items protected ($([int]$sw.Elapsed.TotalSeconds) s)") }
        }
        [Console]::WriteLine("BENCH step=enable part=$Part items=$n seconds=$($sw.Elapsed.TotalSeconds.ToString('F1', $inv))")
    }
    'run' {
        Connect
        $secure = ConvertTo-SecureString $key -AsPlainText -Force
        $hosts = 0..($Agents - 1) | ForEach-Object { HostName $_ }
        $logs = [IO.Path]::Combine($Work, 'agents'); [void][IO.Directory]::CreateDirectory($logs)
        $procs = @{}
        foreach ($h in $hosts) {
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $a = Start-AsrAgent -HostName $h -EncryptionKey $secure -LogPath ([IO.Path]::Combine($logs, "$h.log"))
            $procs[$h] = $a.ProcessId
            [Console]::WriteLine("  agent $h started: process $($a.ProcessId), $(@($a.ProtectedItems).Count) items, $($sw.Elapsed.TotalSeconds.ToString('F1', $inv)) s")
        }
        $tick = 100.0 # USER_HZ (getconf CLK_TCK)
        $csv = [IO.Path]::Combine($Work, 'samples.csv')
        [IO.File]::WriteAllText($csv, "time,host,state,pid,heartbeat_age_s,cycles_succeeded,cycles_failed,active_cycles,protected,cpu_s,rss_mib,load1,last_error`n")
        $start = [DateTimeOffset]::UtcNow
        [Console]::WriteLine("MARK start $(Iso $start)")
        $stopFile = [IO.Path]::Combine($Work, 'stop')
        $end = $start.AddMinutes($Minutes)
        while ($true) {
            $now = [DateTimeOffset]::UtcNow
            $load = (Get-Content /proc/loadavg -Raw).Split(' ')[0]
            $lines = foreach ($r in @(Get-AsrAgent -HostName 'h*')) {
                $cpu = ''; $rss = ''
                $procId = $procs[$r.HostName]
                if ($procId -and (Test-Path "/proc/$procId/stat")) {
                    try {
                        $f = (Get-Content "/proc/$procId/stat" -Raw) -replace '^.*\) ', '' -split ' '
                        $cpu = (([double]$f[11] + [double]$f[12]) / $tick).ToString('F1', $inv)
                        $m = Select-String -Path "/proc/$procId/status" -Pattern '^VmRSS:\s+(\d+)' | Select-Object -First 1
                        if ($m) { $rss = [int]([double]$m.Matches[0].Groups[1].Value / 1024) }
                    } catch { }
                }
                $age = ($now - $r.LastHeartbeatUtc).TotalSeconds.ToString('F1', $inv)
                "$(Iso $now),$($r.HostName),$($r.State),$($r.ProcessId),$age,$($r.CyclesSucceeded),$($r.CyclesFailed),$(@($r.ActiveCycles).Count),$(@($r.ProtectedItems).Count),$cpu,$rss,$load,$(Csv $r.LastError)"
            }
            [IO.File]::AppendAllText($csv, (($lines -join "`n") + "`n"))
            $stalled = @($lines | Where-Object { $_ -notmatch ',Running,' })
            $sum = ($lines | ForEach-Object { [long]($_.Split(',')[5]) } | Measure-Object -Sum).Sum
            $failed = ($lines | ForEach-Object { [long]($_.Split(',')[6]) } | Measure-Object -Sum).Sum
            [Console]::WriteLine("  $(Iso $now) +$([int]($now - $start).TotalSeconds) s: cycles succeeded $sum, failed $failed, load $load$(if ($stalled) { ", NOT RUNNING: " + (($stalled | ForEach-Object { $_.Split(',')[1] + ' ' + $_.Split(',')[2] + ' age ' + $_.Split(',')[4] }) -join '; ') })")
            if ($now -ge $end -or (Test-Path $stopFile)) { break }
            $next = [math]::Min($SampleSeconds, ($end - [DateTimeOffset]::UtcNow).TotalSeconds)
            if ($next -lt 1) { break }
            Start-Sleep -Milliseconds ([int](1000 * $next))
        }
        [Console]::WriteLine("MARK end $(Iso ([DateTimeOffset]::UtcNow))")
        foreach ($h in $hosts) {
            $sw = [Diagnostics.Stopwatch]::StartNew()
            $r = Stop-AsrAgent -HostName $h -PassThru
            [Console]::WriteLine("  agent $h stopped in $($sw.Elapsed.TotalSeconds.ToString('F1', $inv)) s: $($r.State), cycles $($r.CyclesSucceeded) succeeded / $($r.CyclesFailed) failed$(if ($r.LastError) { ', last error: ' + $r.LastError })")
        }
    }
    'collect' {
        Connect
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $out = [Collections.Generic.List[string]]::new()
        $out.Add('id,item,owner_host,state,start,end,seconds,sequence,changed_bytes,bytes_stored,errors')
        foreach ($j in @(Get-AsrJob -Operation ReplicationCycle)) {
            $secs = if ($j.EndTimeUtc) { ($j.EndTimeUtc - $j.StartTimeUtc).TotalSeconds.ToString('F3', $inv) } else { '' }
            $out.Add("$($j.Id),$($j.TargetName),$($j.OwnerHost),$($j.State),$(Iso $j.StartTimeUtc),$(Iso $j.EndTimeUtc),$secs,$($j.Result.RecoveryPointSequence),$($j.Result.ChangedBytes),$($j.Result.BytesStored),$(Csv (($j.Errors | ForEach-Object { "$($_.ErrorId): $($_.Message)" }) -join ' | '))")
        }
        [IO.File]::WriteAllLines([IO.Path]::Combine($Work, 'cycles.csv'), $out)
        $jobs = $out.Count - 1
        $out.Clear(); $out.Add('time,severity,type,item,host,job,message')
        foreach ($e in @(Get-AsrEvent -Since ([DateTimeOffset]::Parse($Since, $inv).UtcDateTime))) {
            $out.Add("$(Iso $e.TimeUtc),$($e.Severity),$($e.EventType),$($e.ItemName),$($e.AgentHost),$($e.JobId),$(Csv $e.Message)")
        }
        [IO.File]::WriteAllLines([IO.Path]::Combine($Work, 'events.csv'), $out)
        $events = $out.Count - 1
        $out.Clear(); $out.Add('host,state,pid,started,stopped,cycles_succeeded,cycles_failed,protected,last_error')
        foreach ($a in @(Get-AsrAgent -HostName 'h*')) {
            $out.Add("$($a.HostName),$($a.State),$($a.ProcessId),$(Iso $a.StartedUtc),$(Iso $a.StoppedUtc),$($a.CyclesSucceeded),$($a.CyclesFailed),$(@($a.ProtectedItems).Count),$(Csv $a.LastError)")
        }
        [IO.File]::WriteAllLines([IO.Path]::Combine($Work, 'agents.csv'), $out)
        $out.Clear(); $out.Add('item,host,state,health,last_sequence,last_point,rpo_s,needs_resync,last_error')
        foreach ($i in @(Get-AsrProtectedItem)) {
            $out.Add("$($i.Name),$($i.AgentHost),$($i.State),$($i.ReplicationHealth),$($i.LastPointSequence),$(Iso $i.LastRecoveryPointTimeUtc),$(if ($i.CurrentRpo) { $i.CurrentRpo.TotalSeconds.ToString('F0', $inv) }),$($i.NeedsResync),$(Csv $i.LastError)")
        }
        [IO.File]::WriteAllLines([IO.Path]::Combine($Work, 'items.csv'), $out)
        [Console]::WriteLine("BENCH step=collect cycle_jobs=$jobs events=$events items=$($out.Count - 1) seconds=$($sw.Elapsed.TotalSeconds.ToString('F1', $inv))")
    }
    'verify' {
        Connect
        $all = @{}
        $listFile = [IO.Path]::Combine($Work, 'verify-all.txt')
        if (Test-Path $listFile) { foreach ($n in [IO.File]::ReadAllLines($listFile)) { if ($n) { $all[$n] = $true } } }
        $protected = @(Get-AsrProtectedItem | Sort-Object Name)
        $pointsOut = [IO.Path]::Combine($Work, "points-$Part.jsonl"); $testsOut = [IO.Path]::Combine($Work, "tests-$Part.jsonl")
        $sw = [Diagnostics.Stopwatch]::StartNew(); $tested = 0; $bad = 0; $n = 0
        for ($k = $Part; $k -lt $protected.Count; $k += $Parts) {
            $item = $protected[$k]; $n++
            $err = $null
            $points = @(Get-AsrRecoveryPoint -Item $item.Name -ErrorAction SilentlyContinue -ErrorVariable err)
            $line = [ordered]@{ item = $item.Name; host = $item.AgentHost; last_sequence = $item.LastPointSequence
                sequences = @($points | ForEach-Object { $_.Sequence }); times = @($points | ForEach-Object { Iso $_.RecoveryPointTimeUtc })
                consistency = @($points | ForEach-Object { "$($_.Consistency)" }); errors = @($err | ForEach-Object { "$($_.FullyQualifiedErrorId): $($_.Exception.Message)" }) }
            [IO.File]::AppendAllText($pointsOut, ($line | ConvertTo-Json -Compress -Depth 4) + "`n")
            $toTest = if ($all.ContainsKey($item.Name)) { $points } else { @($points | Select-Object -Last 1) }
            foreach ($p in $toTest) {
                $terr = $null
                $t0 = [Diagnostics.Stopwatch]::StartNew()
                $r = $p | Test-AsrRecoveryPoint -ErrorAction SilentlyContinue -ErrorVariable terr
                $tested++
                $ok = [bool]($r -and $r.Verified -and -not $terr)
                if (-not $ok) { $bad++ }
                $t = [ordered]@{ item = $item.Name; sequence = $p.Sequence; time = Iso $p.RecoveryPointTimeUtc; all = $all.ContainsKey($item.Name)
                    verified = $ok; ms = [int]$t0.Elapsed.TotalMilliseconds
                    error = (@($terr | ForEach-Object { "$($_.FullyQualifiedErrorId): $($_.Exception.Message)" }) + @($r.Error | Where-Object { $_ }) +
                        @($r.Disks | Where-Object { -not $_.Verified } | ForEach-Object { "disk $($_.Disk): expected $($_.ExpectedDigest) actual $($_.ActualDigest) $($_.Error)" })) -join ' | ' }
                [IO.File]::AppendAllText($testsOut, ($t | ConvertTo-Json -Compress) + "`n")
            }
            if ($n % 100 -eq 0) { [Console]::WriteLine("  verify part $Part`: $n items, $tested points tested, $bad failed ($([int]$sw.Elapsed.TotalSeconds) s)") }
        }
        [Console]::WriteLine("BENCH step=verify part=$Part items=$n points_tested=$tested failed=$bad seconds=$($sw.Elapsed.TotalSeconds.ToString('F1', $inv))")
    }
}
