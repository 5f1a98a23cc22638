<#
.SYNOPSIS
    Steps of bench/memory-scale.sh (issue #15 item 3): one agent protecting a big sparse image (default 1 TiB holding a
    few GiB) and -Smalls small images; measures the agent's memory (VmRSS/VmHWM from /proc) and the cycle times. Run in
    the pinned pwsh with the module under test first on PSModulePath; each step is its own pwsh process.
.DESCRIPTION
      setup  : New-AsrVault (encrypted; -VaultPath, or -ConnectionString/-Container for a blob vault) and the policy
               'ms': a crash-consistent point every -FrequencySeconds, no app-consistent points
      enable : Enable-AsrReplication (policy 'ms', -AgentHost) of the small items s00.. (disks -Work/disks/sNN.img),
               then, with -Big, of the item 'big' (disk -BigDisk) in the same process. The initial replications run
               in this process; their jobs are in the vault, and this process's VmHWM before and after the big one is
               printed (a BENCH line). A failed Enable of 'big' is reported (its job's errors), not thrown: the item
               stays registered and the agent retries its initial replication.
      run    : Start-AsrAgent -HostName (log -Work/agent.log); prints 'MARK start'; every -SampleSeconds writes a line
               of -Work/rss.csv (the agent process's VmRSS, VmHWM, RssAnon, RssFile, threads, CPU from /proc/<pid>;
               the big item's last point, state and whether a cycle of it is in progress); whenever the big item's
               LastPointSequence changes (and once at the start) writes it to -Work/trigger, which makes the writer
               process change the disks; after -Minutes (or when -Work/stop exists, or the agent process is gone)
               prints 'MARK end' and stops the agent (Stop-AsrAgent -Force)
      collect: Get-AsrJob -> jobs.csv (every job: enables, the agent's cycles), Get-AsrEvent since -Since ->
               events.csv, Get-AsrRecoveryPoint -Item big -> points.csv, Get-AsrAgent -> agent.csv
      verify : Test-AsrRecoveryPoint on the big item's newest point (highest sequence, whatever its consistency):
               a BENCH line with the seconds, whether it verified, the error, and this process's VmHWM
#>
param(
    [Parameter(Mandatory)][ValidateSet('setup', 'enable', 'run', 'collect', 'verify')][string]$Step,
    [Parameter(Mandatory)][string]$Work,
    [string]$VaultPath,
    [string]$ConnectionString,
    [string]$Container = 'vault',
    [string]$AgentHost = 'memhost',
    [string]$BigDisk,
    [int]$Smalls = 50,
    [switch]$Big,
    [int]$FrequencySeconds = 60,
    [double]$Minutes = 10,
    [int]$SampleSeconds = 2,
    [string]$Since
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
$inv = [Globalization.CultureInfo]::InvariantCulture
$key = 'bench-passphrase-0123456789'
$secure = ConvertTo-SecureString $key -AsPlainText -Force
function Iso($t) { if ($null -eq $t) { '' } else { ([DateTimeOffset]$t).ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ss.fffZ', $inv) } }
function Csv([string]$s) { if ($null -eq $s) { return '' }; '"' + ($s -replace '"', '""' -replace "`r?`n", ' ') + '"' }
function F([double]$x, [string]$f = 'F1') { $x.ToString($f, $inv) }
function Connect {
    if ($ConnectionString) { Connect-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $secure }
    else { Connect-AsrVault -Path $VaultPath -EncryptionKey $secure }
}
# VmRSS, VmHWM, RssAnon, RssFile (KiB) and Threads of a process, from /proc/<pid>/status; $null when it is gone.
function ProcStatus([int]$procId) {
    $r = @{}
    try { $lines = [IO.File]::ReadAllLines("/proc/$procId/status") } catch { return $null }
    foreach ($l in $lines) {
        if ($l -match '^(VmRSS|VmHWM|RssAnon|RssFile|Threads):\s+(\d+)') { $r[$Matches[1]] = [long]$Matches[2] }
    }
    $r
}
function SmallName([int]$i) { 's{0:D2}' -f $i }

switch ($Step) {
    'setup' {
        if ($ConnectionString) { New-AsrVault -ConnectionString $ConnectionString -Container $Container -EncryptionKey $secure | Connect-AsrVault }
        else { New-AsrVault -Path $VaultPath -EncryptionKey $secure | Connect-AsrVault }
        $rpo = [math]::Max(1, [int][math]::Ceiling(3 * $FrequencySeconds / 60))
        $p = New-AsrPolicy -Name ms -CrashConsistentFrequencySeconds $FrequencySeconds -AppConsistentFrequencyHours 0 -RpoThresholdMinutes $rpo
        [Console]::WriteLine("BENCH step=setup frequency_minutes=$(F $p.CrashConsistentFrequencyMinutes 'G') rpo_threshold_minutes=$rpo")
    }
    'enable' {
        Connect
        $sw = [Diagnostics.Stopwatch]::StartNew()
        for ($i = 0; $i -lt $Smalls; $i++) {
            $name = SmallName $i
            $job = Enable-AsrReplication -Name $name -Disk ([IO.Path]::Combine($Work, 'disks', "$name.img")) -Policy ms -AgentHost $AgentHost
            if ("$($job.State)" -ne 'Succeeded') { throw "Enable of $name ended $($job.State): $($job.Errors | ForEach-Object Message)" }
        }
        [Console]::WriteLine("BENCH step=enable-small items=$Smalls seconds=$(F $sw.Elapsed.TotalSeconds)")
        if ($Big) {
            $before = ProcStatus $PID
            $sw.Restart()
            $err = $null
            $job = Enable-AsrReplication -Name big -Disk $BigDisk -Policy ms -AgentHost $AgentHost -ErrorAction SilentlyContinue -ErrorVariable err
            $secs = $sw.Elapsed.TotalSeconds
            $after = ProcStatus $PID
            $errors = @($job.Errors | ForEach-Object { "$($_.ErrorId): $($_.Message)" }) + @($err | ForEach-Object { "$($_.FullyQualifiedErrorId): $($_.Exception.GetType().FullName): $($_.Exception.Message)" }) | Select-Object -Unique
            $item = Get-AsrProtectedItem -Name big -ErrorAction SilentlyContinue
            [Console]::WriteLine("BENCH step=enable-big state=$($job.State) seconds=$(F $secs) stored_bytes=$($job.Result.BytesStored) scanned_bytes=$($job.Result.BytesScanned) " +
                "capture=$($item.CaptureMethod) item_state=$($item.State) session_hwm_mib_before=$(F ($before.VmHWM / 1024) 'F0') session_hwm_mib_after=$(F ($after.VmHWM / 1024) 'F0') " +
                "session_rss_mib_after=$(F ($after.VmRSS / 1024) 'F0')")
            foreach ($e in $errors) { [Console]::WriteLine("BENCH enable-big error: $e") }
        }
    }
    'run' {
        Connect
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $a = Start-AsrAgent -HostName $AgentHost -EncryptionKey $secure -LogPath ([IO.Path]::Combine($Work, 'agent.log'))
        $agentPid = [int]$a.ProcessId
        $cmd = try { ([IO.File]::ReadAllText("/proc/$agentPid/cmdline") -replace "`0", ' ').Trim() } catch { '?' }
        [IO.File]::WriteAllText([IO.Path]::Combine($Work, 'agent.pid'), "$agentPid`n")
        [Console]::WriteLine("  agent $AgentHost started in $(F $sw.Elapsed.TotalSeconds) s: process $agentPid ($cmd), $(@($a.ProtectedItems).Count) items")
        $tick = 100.0 # USER_HZ (getconf CLK_TCK)
        $csv = [IO.Path]::Combine($Work, 'rss.csv')
        [IO.File]::WriteAllText($csv, "time,elapsed_s,rss_kib,hwm_kib,rss_anon_kib,rss_file_kib,threads,cpu_s,load1,big_seq,big_state,big_cycle`n")
        $trigger = [IO.Path]::Combine($Work, 'trigger')
        $stopFile = [IO.Path]::Combine($Work, 'stop')
        $start = [DateTimeOffset]::UtcNow
        [Console]::WriteLine("MARK start $(Iso $start)")
        $end = $start.AddMinutes($Minutes)
        $lastSeq = -1L; $n = 0; $gone = $false
        while ($true) {
            $now = [DateTimeOffset]::UtcNow
            $st = ProcStatus $agentPid
            if ($null -eq $st) { $gone = $true; [Console]::WriteLine("  $(Iso $now): the agent process $agentPid is gone"); break }
            $cpu = ''
            try {
                $f = ([IO.File]::ReadAllText("/proc/$agentPid/stat") -replace '^.*\) ', '') -split ' '
                $cpu = F (([double]$f[11] + [double]$f[12]) / $tick)
            } catch { }
            $load = ([IO.File]::ReadAllText('/proc/loadavg')).Split(' ')[0]
            $item = Get-AsrProtectedItem -Name big -ErrorAction SilentlyContinue
            $seq = if ($item) { [long]$item.LastPointSequence } else { -1L }
            $cycling = if ($item -and $item.CycleInProgressJobId) { 1 } else { 0 }
            [IO.File]::AppendAllText($csv, "$(Iso $now),$(F ($now - $start).TotalSeconds),$($st.VmRSS),$($st.VmHWM),$($st.RssAnon),$($st.RssFile),$($st.Threads),$cpu,$load,$seq,$($item.State),$cycling`n")
            if ($seq -ne $lastSeq) {
                # a new point of the big item (or the start): the writer changes the disks before the next cycle
                [IO.File]::WriteAllText($trigger, "$seq`n")
                if ($lastSeq -ge 0) { [Console]::WriteLine("  $(Iso $now) +$([int]($now - $start).TotalSeconds) s: big point $seq; agent RSS $([int]($st.VmRSS / 1024)) MiB, HWM $([int]($st.VmHWM / 1024)) MiB, load $load") }
                $lastSeq = $seq
            }
            if (++$n % 30 -eq 0) { [Console]::WriteLine("  $(Iso $now) +$([int]($now - $start).TotalSeconds) s: agent RSS $([int]($st.VmRSS / 1024)) MiB, HWM $([int]($st.VmHWM / 1024)) MiB, big seq $seq $($item.State)$(if ($cycling) { ' (cycling)' }), load $load") }
            if ($now -ge $end -or (Test-Path $stopFile)) { break }
            $next = [math]::Min($SampleSeconds, ($end - [DateTimeOffset]::UtcNow).TotalSeconds)
            if ($next -lt 0.2) { break }
            Start-Sleep -Milliseconds ([int](1000 * $next))
        }
        [Console]::WriteLine("MARK end $(Iso ([DateTimeOffset]::UtcNow))")
        $sw.Restart()
        $r = Stop-AsrAgent -HostName $AgentHost -Force -PassThru -TimeoutSeconds 120 -ErrorAction SilentlyContinue
        [Console]::WriteLine("BENCH step=run agent_gone=$gone stop_seconds=$(F $sw.Elapsed.TotalSeconds) state=$($r.State) cycles_succeeded=$($r.CyclesSucceeded) cycles_failed=$($r.CyclesFailed) last_error=$(Csv $r.LastError)")
    }
    'collect' {
        Connect
        $out = [Collections.Generic.List[string]]::new()
        $out.Add('id,operation,item,owner_host,state,start,end,seconds,mode,sequence,bytes_scanned,changed_bytes,bytes_stored,errors')
        foreach ($j in @(Get-AsrJob)) {
            $secs = if ($j.EndTimeUtc) { F ($j.EndTimeUtc - $j.StartTimeUtc).TotalSeconds 'F3' } else { '' }
            $out.Add("$($j.Id),$($j.Operation),$($j.TargetName),$($j.OwnerHost),$($j.State),$(Iso $j.StartTimeUtc),$(Iso $j.EndTimeUtc),$secs,$($j.Result.Mode),$($j.Result.RecoveryPointSequence),$($j.Result.BytesScanned),$($j.Result.ChangedBytes),$($j.Result.BytesStored),$(Csv (($j.Errors | ForEach-Object { "$($_.ErrorId): $($_.Message)" }) -join ' | '))")
        }
        [IO.File]::WriteAllLines([IO.Path]::Combine($Work, 'jobs.csv'), $out)
        $jobs = $out.Count - 1
        $out.Clear(); $out.Add('time,severity,type,item,host,job,message')
        foreach ($e in @(Get-AsrEvent -Since ([DateTimeOffset]::Parse($Since, $inv).UtcDateTime))) {
            $out.Add("$(Iso $e.TimeUtc),$($e.Severity),$($e.EventType),$($e.ItemName),$($e.AgentHost),$($e.JobId),$(Csv $e.Message)")
        }
        [IO.File]::WriteAllLines([IO.Path]::Combine($Work, 'events.csv'), $out)
        $events = $out.Count - 1
        $out.Clear(); $out.Add('sequence,time,consistency,changed_bytes,stored_bytes')
        foreach ($p in @(Get-AsrRecoveryPoint -Item big -ErrorAction SilentlyContinue)) {
            $out.Add("$($p.Sequence),$(Iso $p.RecoveryPointTimeUtc),$($p.Consistency),$($p.ChangedBytes),$(($p.Disks | Measure-Object StoredBytes -Sum).Sum)")
        }
        [IO.File]::WriteAllLines([IO.Path]::Combine($Work, 'points.csv'), $out)
        $a = Get-AsrAgent -HostName $AgentHost -ErrorAction SilentlyContinue
        [IO.File]::WriteAllLines([IO.Path]::Combine($Work, 'agent.csv'), @('host,state,pid,cycles_succeeded,cycles_failed,last_error',
            "$($a.HostName),$($a.State),$($a.ProcessId),$($a.CyclesSucceeded),$($a.CyclesFailed),$(Csv $a.LastError)"))
        $i = Get-AsrProtectedItem -Name big -ErrorAction SilentlyContinue
        [Console]::WriteLine("BENCH step=collect jobs=$jobs events=$events big_points=$($out.Count - 1) big_state=$($i.State) big_capture=$($i.CaptureMethod) big_last_error=$(Csv $i.LastError)")
    }
    'verify' {
        Connect
        $p = @(Get-AsrRecoveryPoint -Item big -ErrorAction SilentlyContinue | Sort-Object Sequence) | Select-Object -Last 1
        if (-not $p) { [Console]::WriteLine('BENCH step=verify point=none verified=False seconds=0 error="the big item has no point"'); break }
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $terr = $null
        $r = $p | Test-AsrRecoveryPoint -ErrorAction SilentlyContinue -ErrorVariable terr
        $secs = $sw.Elapsed.TotalSeconds
        $ok = [bool]($r -and $r.Verified -and -not $terr)
        $err = (@($terr | ForEach-Object { "$($_.FullyQualifiedErrorId): $($_.Exception.GetType().FullName): $($_.Exception.Message)" }) + @($r.Error | Where-Object { $_ }) +
            @($r.Disks | Where-Object { -not $_.Verified } | ForEach-Object { "disk $($_.Disk): expected $($_.ExpectedDigest) actual $($_.ActualDigest) $($_.Error)" })) -join ' | '
        $st = ProcStatus $PID
        [Console]::WriteLine("BENCH step=verify point=$($p.Sequence) consistency=$($p.Consistency) verified=$ok seconds=$(F $secs) session_hwm_mib=$(F ($st.VmHWM / 1024) 'F0') error=$(Csv $err)")
    }
}
