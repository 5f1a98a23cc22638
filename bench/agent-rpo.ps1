<#
.SYNOPSIS
    RPO of the replication agent under a sustained random write load, with the agent's CPU and memory.
.DESCRIPTION
    Run in the pinned pwsh (bench/agent-rpo.sh builds Release and runs it; or by hand in `dotnet pwsh`, with a built
    out/AsrModule: $env:PSModulePath = "$PWD/out:$env:PSModulePath"; ./bench/agent-rpo.ps1 -SizeGB 1 -DurationSeconds 90).

      1. An encrypted vault; policy 'rpo' = zstd-1, a crash-consistent point every 30 s
         (-CrashConsistentFrequencyMinutes 0.5), RPO threshold 1 min.
      2. A raw disk of -SizeGB GiB, written out in full: 1 MiB regions i % 4 = random, text, zero, zero
         (the PRODUCT.md mix; zeros written, not holes), then synced. Enable-AsrReplication -AgentHost
         <unique> runs the initial replication here (timed, reported).
      3. Start-AsrAgent (a real agent process, default 1 s tick), then a SEPARATE writer process
         (python3): every 100 ms it writes its share of -WriteMBps MiB/s as random-sized writes of
         4 KiB..64 KiB (multiples of 4 KiB) of fresh random data (incompressible: the worst case for
         the agent) at random 4 KiB-aligned offsets with pwrite(2), no fsync, for -DurationSeconds.
      4. Every second: the item's CurrentRpo (Get-AsrProtectedItem), its last point sequence and whether
         a cycle is in progress; the agent's CPU time (/proc/PID/stat utime+stime, CLK_TCK 100) and RSS
         (/proc/PID/status VmRSS); the writer's bytes so far; the load average.
      5. Stops the writer and the agent (Stop-AsrAgent), then reports over the measurement window (after
         the first -WarmupSeconds, default 60, which hold the agent's first cycle): RPO min / median /
         p95 / max, RPO per 60 s of the run, points published, every ReplicationCycle job (Get-AsrJob:
         duration, bytes scanned / changed / stored), the writer's achieved rate, the agent's CPU (% of
         one core and of all cores) and peak RSS, and the vault's growth.
    The disk file stays in the page cache (the machine has RAM to spare), so scans read memory; with
    -ColdCache the page cache is synced and dropped every 5 s (root), so each scan reads storage.
    -AgentGcHeapLimitMB starts the agent with DOTNET_GCHeapHardLimit, to see whether its RSS is garbage
    the GC has not collected yet or memory it really needs.
    -FileSystem xfs|btrfs|ext4 puts the disk on a file system of its own: WorkDir/fs.img (sparse, -FileSystemGB GiB,
    default 2 x SizeGB + 2; xfs made with -m reflink=1) on a loop device (direct I/O) mounted at WorkDir/mnt (root).
    On xfs and btrfs the item's capture is a reflink clone and a cycle reads only the ranges where the clones' extent
    maps differ; on ext4 (and by default, the disk in WorkDir as it is) every cycle reads the whole disk. The mount
    and the loop device are released at the end (and, left by a killed run, at the start of the next one in the same
    WorkDir); the vault stays in WorkDir. -FrequencySeconds N makes the policy take a point every N s (5 or more,
    New-AsrPolicy -CrashConsistentFrequencySeconds) instead of 30 s; -RpoGoalSeconds (default 60) is the RPO the
    run is checked against ("RPO under ... throughout").
    Writes WorkDir/samples.csv (per-second samples), WorkDir/cycles.csv (one row per cycle job) and
    WorkDir/results.md (the tables printed). Unless -Keep, then deletes the disk, the vault and the
    writer script, leaving those three files, agent.log and writer.log.
#>
param(
    [double]$SizeGB = 4,
    [double]$WriteMBps = 10,            # MiB/s (10 MiB/s = 10.49 MB/s: the stricter reading of "10 MB/s")
    [int]$DurationSeconds = 300,        # writer run time = sampling time
    [int]$WarmupSeconds = 60,           # excluded from the window statistics (reported per 60 s anyway)
    [string]$WorkDir = '/tmp/asr-agent-rpo',
    [string]$Key = 'bench-passphrase-0123456789',
    [int]$Seed = 1,
    [int]$AgentGcHeapLimitMB = 0,       # > 0: start the agent with DOTNET_GCHeapHardLimit (does its memory stay bounded?)
    [switch]$ColdCache,                 # sync + drop the page cache every 5 s (root), so each scan reads the disk from storage
    [ValidateSet('none', 'xfs', 'btrfs', 'ext4')][string]$FileSystem = 'none',   # the disk on a loop-mounted file system of its own (root)
    [int]$FileSystemGB = 0,             # size of that file system (0: 2 x SizeGB + 2)
    [int]$FrequencySeconds = 0,         # > 0: a point every N s (New-AsrPolicy -CrashConsistentFrequencySeconds); 0: every 30 s
    [double]$RpoGoalSeconds = 60,       # the RPO the run is checked against
    [switch]$Keep
)
$ErrorActionPreference = 'Stop'
if ($DurationSeconds -le $WarmupSeconds) { throw "-DurationSeconds ($DurationSeconds) must be longer than -WarmupSeconds ($WarmupSeconds)." }
Import-Module AsrModule
$inv = [Globalization.CultureInfo]::InvariantCulture
function F([double]$x, [int]$Digits = 1) { if ([double]::IsNaN($x)) { '-' } else { $x.ToString("F$Digits", $inv) } }
function Say([string]$s) { [Console]::WriteLine($s) }
function P([string]$a, [string]$b) { [IO.Path]::Combine($a, $b) }

# ------------------------------------------------------------------ work dir
$WorkDir = [IO.Path]::GetFullPath($WorkDir)
$marker = P $WorkDir '.asr-agent-rpo'
$mountPoint = P $WorkDir 'mnt'
$fsImage = P $WorkDir 'fs.img'
$loopDevice = $null
function Invoke-Tool([string]$File, [string[]]$ArgList, [switch]$NoThrow) {
    $psi = [Diagnostics.ProcessStartInfo]::new($File)
    foreach ($a in $ArgList) { $psi.ArgumentList.Add($a) }
    $psi.UseShellExecute = $false; $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
    $p = [Diagnostics.Process]::Start($psi)
    $errTask = $p.StandardError.ReadToEndAsync()
    $out = $p.StandardOutput.ReadToEnd()
    $p.WaitForExit()
    if ($p.ExitCode -ne 0 -and -not $NoThrow) { throw "$File $($ArgList -join ' ') failed (exit $($p.ExitCode)): $($errTask.Result.Trim())" }
    $out.Trim()
}
function Test-Mounted([string]$Path) {
    foreach ($l in [IO.File]::ReadAllLines('/proc/mounts')) { if ($l.Split(' ')[1] -eq $Path) { return $true } }
    $false
}
function Dismount-DiskFileSystem {
    if (Test-Mounted $mountPoint) {
        $out = Invoke-Tool umount @($mountPoint) -NoThrow
        if (Test-Mounted $mountPoint) { Start-Sleep -Seconds 2; [void](Invoke-Tool umount @('-l', $mountPoint) -NoThrow) }
    }
    if ($script:loopDevice) { [void](Invoke-Tool losetup @('-d', $script:loopDevice) -NoThrow); $script:loopDevice = $null }
    elseif ([IO.File]::Exists($fsImage)) {
        # A killed earlier run's loop device(s) on this WorkDir's fs.img (only those)
        foreach ($l in (Invoke-Tool losetup @('-j', $fsImage) -NoThrow).Split("`n")) { if ($l -match '^(/dev/loop\d+):') { [void](Invoke-Tool losetup @('-d', $Matches[1]) -NoThrow) } }
    }
}
if ([IO.Directory]::Exists($WorkDir) -and [IO.File]::Exists($marker)) {
    Dismount-DiskFileSystem
    if (Test-Mounted $mountPoint) { throw "$mountPoint is still mounted (left by an earlier run?); unmount it first." }
}
if ([IO.Directory]::Exists($WorkDir)) {
    $entries = @([IO.Directory]::EnumerateFileSystemEntries($WorkDir))
    if ($entries.Count -gt 0 -and -not [IO.File]::Exists($marker)) { throw "Refusing to use $WorkDir : not empty and not an earlier agent-rpo work dir (no .asr-agent-rpo marker)." }
    foreach ($e in $entries) { if ([IO.Directory]::Exists($e)) { [IO.Directory]::Delete($e, $true) } elseif ($e -ne $marker) { [IO.File]::Delete($e) } }
}
[void][IO.Directory]::CreateDirectory($WorkDir)
[IO.File]::WriteAllText($marker, '')
$disk = if ($FileSystem -eq 'none') { P $WorkDir 'disk.img' } else { P $mountPoint 'disk.img' }
$vaultPath = P $WorkDir 'vault'
$agentLog = P $WorkDir 'agent.log'
$writerPy = P $WorkDir 'writer.py'
$writerStatus = P $WorkDir 'writer.status'
$writerLog = P $WorkDir 'writer.log'
$itemName = 'rpo'
$agentHost = 'rpo-bench-' + [Guid]::NewGuid().ToString('N').Substring(0, 8)
$cores = [Environment]::ProcessorCount

function Get-DirBytes([string]$Path) {
    $sum = 0L
    if ([IO.Directory]::Exists($Path)) { foreach ($f in [IO.Directory]::EnumerateFiles($Path, '*', [IO.SearchOption]::AllDirectories)) { try { $sum += [IO.FileInfo]::new($f).Length } catch { } } }
    $sum
}
function Get-ProcCpuTicks([int]$ProcessId) {
    # utime + stime (fields 14, 15 of /proc/PID/stat; counted after the ')' that ends the command name)
    try { $s = [IO.File]::ReadAllText("/proc/$ProcessId/stat") } catch { return -1L }
    $f = $s.Substring($s.LastIndexOf(')') + 2).Split(' ')
    [long]$f[11] + [long]$f[12]
}
function Get-ProcStatusKb([int]$ProcessId, [string]$Field) {
    try { foreach ($l in [IO.File]::ReadAllLines("/proc/$ProcessId/status")) { if ($l.StartsWith("${Field}:")) { return [long]($l.Substring($Field.Length + 1).Trim().Split(' ')[0]) } } } catch { }
    -1L
}
function Get-MachineCpu {
    # [busy, total] jiffies of all CPUs from /proc/stat (busy = total - idle - iowait)
    $f = [IO.File]::ReadAllLines('/proc/stat')[0].Split(' ', [StringSplitOptions]::RemoveEmptyEntries)
    $total = 0L; for ($i = 1; $i -le 8 -and $i -lt $f.Count; $i++) { $total += [long]$f[$i] }
    @(($total - [long]$f[4] - [long]$f[5]), $total)
}
function Get-LoadAvg { [IO.File]::ReadAllText('/proc/loadavg').Split(' ')[0..2] -join ' ' }
function Get-Sorted([double[]]$Values) { $a = [double[]]$Values.Clone(); [Array]::Sort($a); , $a }
function Get-Median([double[]]$Sorted) {
    $n = $Sorted.Count; if ($n -eq 0) { return [double]::NaN }
    if ($n % 2 -eq 1) { $Sorted[($n - 1) / 2] } else { ($Sorted[$n / 2 - 1] + $Sorted[$n / 2]) / 2 }
}
function Get-Pct([double[]]$Sorted, [double]$P) {
    # nearest rank
    $n = $Sorted.Count; if ($n -eq 0) { return [double]::NaN }
    $Sorted[[Math]::Max(0, [Math]::Min($n - 1, [int][Math]::Ceiling($P / 100 * $n) - 1))]
}

$writerSource = @'
import json, os, random, signal, sys, time
path, rate, duration, seed, status = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
BS, TICK = 4096, 0.1
fd = os.open(path, os.O_RDWR)
blocks = os.fstat(fd).st_size // BS
rng = random.Random(seed)
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
written = writes = ticks = late = 0
owed = 0.0
t0 = time.monotonic()
def put(done=False):
    s = {"pid": os.getpid(), "elapsed": time.monotonic() - t0, "bytes": written, "writes": writes, "ticks": ticks, "late_ticks": late, "done": done}
    with open(status + ".tmp", "w") as f:
        json.dump(s, f)
    os.replace(status + ".tmp", status)
    return s
put()
next_t, last_put = t0, t0
while not stop and time.monotonic() - t0 < duration:
    owed += rate * TICK                    # this tick's share; overshoot carries to the next tick
    while owed > 0:
        n = rng.randint(1, 16) * BS        # 4 KiB .. 64 KiB
        off = rng.randrange(blocks - n // BS + 1) * BS
        os.pwrite(fd, os.urandom(n), off)
        owed -= n
        written += n
        writes += 1
    ticks += 1
    next_t += TICK
    d = next_t - time.monotonic()
    if d > 0:
        time.sleep(d)
    else:
        late += 1                          # could not keep the pace this tick
    if time.monotonic() - last_put >= 1.0:
        put()
        last_put = time.monotonic()
os.close(fd)
print(json.dumps(put(True)))
'@

$agentPid = 0
$writer = $null
$results = [Collections.Generic.List[string]]::new()
function Out-Result([string]$s) { Say $s; $results.Add($s) }
try {
    # -------------------------------------------------------------- vault, disk, protection
    Say "== agent-rpo: $SizeGB GiB disk, $WriteMBps MiB/s random writes for $DurationSeconds s (warm-up $WarmupSeconds s), work dir $WorkDir"
    Say "   load average before: $(Get-LoadAvg)"
    if ($FileSystem -ne 'none') {
        $fsGB = if ($FileSystemGB -gt 0) { $FileSystemGB } else { [int][Math]::Ceiling(2 * $SizeGB + 2) }
        $f = [IO.FileStream]::new($fsImage, [IO.FileMode]::Create); $f.SetLength([long]$fsGB * 1GB); $f.Dispose()
        switch ($FileSystem) {
            'xfs' { [void](Invoke-Tool mkfs.xfs @('-q', '-f', '-m', 'reflink=1', $fsImage)) }
            'btrfs' { [void](Invoke-Tool mkfs.btrfs @('-q', '-f', $fsImage)) }
            'ext4' { [void](Invoke-Tool mkfs.ext4 @('-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', $fsImage)) }
        }
        $loopDevice = Invoke-Tool losetup @('-f', '--show', '--direct-io=on', $fsImage)
        [void][IO.Directory]::CreateDirectory($mountPoint)
        [void](Invoke-Tool mount @($loopDevice, $mountPoint))
        Say "   file system: $FileSystem on $loopDevice ($fsImage, $fsGB GiB) mounted at $mountPoint ($(Invoke-Tool findmnt @('-no', 'OPTIONS', $mountPoint) -NoThrow))"
    }
    New-AsrVault -Path $vaultPath -EncryptionKey $Key | Connect-AsrVault
    $frequency = if ($FrequencySeconds -gt 0) { @{ CrashConsistentFrequencySeconds = $FrequencySeconds } } else { @{ CrashConsistentFrequencyMinutes = 0.5 } }
    $policy = New-AsrPolicy -Name rpo -Compression Zstd -CompressionLevel 1 @frequency -RpoThresholdMinutes 1
    $frequencyS = if ($FrequencySeconds -gt 0) { $FrequencySeconds } else { 30 }
    Say "   policy: compression=$($policy.Compression) level=$($policy.CompressionLevel) every $($policy.CrashConsistentFrequencyMinutes) min ($frequencyS s), RPO threshold $($policy.RpoThresholdMinutes) min"

    $sw = [Diagnostics.Stopwatch]::StartNew()
    $size = [long]($SizeGB * 1GB)
    $size -= $size % 4096
    $rng = [Random]::new($Seed)
    $vocabulary = ('the of and to a in is it you that he was for on are with as his they be at one have this from or had by word but what some we can out ' +
        'other were all there when up use your how said an each she which do their time if will way about many then them write would like so these her ' +
        'long make thing see him two has look more day could go come did number sound no most people my over know water than call first who may down ' +
        'replication vault recovery point failover disk block extent cycle consistent storage network server backup restore database volume').Split(' ')
    $sb = [Text.StringBuilder]::new(1MB + 256)
    while ($sb.Length -lt 1MB) {
        $n = 8 + $rng.Next(13)
        for ($w = 0; $w -lt $n; $w++) { [void]$sb.Append($vocabulary[[int][Math]::Floor([Math]::Pow($rng.NextDouble(), 2.2) * $vocabulary.Count)]).Append(' ') }
        [void]$sb.Append(@('. ', ', ', ".`n", '? ')[$rng.Next(4)])
    }
    $text = [Text.Encoding]::ASCII.GetBytes($sb.ToString(0, 1MB))
    $buf = [byte[]]::new(1MB)
    $zero = [byte[]]::new(1MB)
    $fs = [IO.FileStream]::new($disk, [IO.FileMode]::Create, [IO.FileAccess]::Write, [IO.FileShare]::None, 1MB)
    try {
        for ($off = 0L; $off -lt $size; $off += 1MB) {
            $len = [int][Math]::Min([long]1MB, $size - $off)
            switch (($off / 1MB) % 4) {
                0 { $rng.NextBytes($buf); $fs.Write($buf, 0, $len) }
                1 { for ($k = 0; $k -lt 64; $k++) { $text[$rng.Next(1MB)] = [byte](97 + $rng.Next(26)) }; $fs.Write($text, 0, $len) }   # no two text regions alike
                default { $fs.Write($zero, 0, $len) }
            }
        }
    }
    finally { $fs.Dispose() }
    $sync = [Diagnostics.Process]::Start('sync'); $sync.WaitForExit()
    Say "   disk: $disk, $size bytes, written and synced in $(F $sw.Elapsed.TotalSeconds) s"

    $sw.Restart()
    $enable = Enable-AsrReplication -Name $itemName -Disk $disk -Policy rpo -AgentHost $agentHost
    $initialS = $sw.Elapsed.TotalSeconds
    if ("$($enable.State)" -ne 'Succeeded') { throw "Initial replication did not succeed: $($enable.State) $($enable.Errors | ForEach-Object { $_.Message })" }
    $captureMethod = "$((Get-AsrProtectedItem -Name $itemName).CaptureMethod)"
    Say "   capture method: $captureMethod"
    $vaultAfterInitial = Get-DirBytes $vaultPath
    Say "   initial replication (Enable-AsrReplication): $(F $initialS) s; stored $($enable.Result.BytesStored) B; vault $vaultAfterInitial B"

    # -------------------------------------------------------------- agent, writer
    [IO.File]::WriteAllText($writerPy, $writerSource)
    # The agent inherits this process's environment: a GC heap limit set here applies to it alone.
    if ($AgentGcHeapLimitMB -gt 0) { [Environment]::SetEnvironmentVariable('DOTNET_GCHeapHardLimit', ('0x{0:X}' -f ([long]$AgentGcHeapLimitMB * 1MB))) }
    try { $agent = Start-AsrAgent -HostName $agentHost -EncryptionKey $Key -LogPath $agentLog }
    finally { [Environment]::SetEnvironmentVariable('DOTNET_GCHeapHardLimit', $null) }
    $agentPid = [int]$agent.ProcessId
    $seq0 = [long](Get-AsrProtectedItem -Name $itemName).LastPointSequence
    Say "   agent '$agentHost' running, process $agentPid"
    $rateBytes = $WriteMBps * 1MB
    $psi = [Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in '-c', 'exec python3 "$@" > "$WRITER_LOG" 2>&1 < /dev/null', 'writer', $writerPy, $disk, $rateBytes.ToString('R', $inv), "$DurationSeconds", "$Seed", $writerStatus) { $psi.ArgumentList.Add($a) }
    $psi.Environment['WRITER_LOG'] = $writerLog
    $psi.UseShellExecute = $false
    $writer = [Diagnostics.Process]::Start($psi)
    $t0 = [DateTime]::UtcNow
    $t0Offset = [DateTimeOffset]::new($t0)
    Say "   writer process $($writer.Id) started; sampling every second"

    # -------------------------------------------------------------- sampling
    function Clear-PageCache([bool]$Wait) {
        $p = [Diagnostics.Process]::Start('/bin/sh', [string[]]@('-c', 'sync && echo 1 > /proc/sys/vm/drop_caches'))
        if ($Wait) { $p.WaitForExit(); if ($p.ExitCode -ne 0) { throw '-ColdCache: cannot drop the page cache (needs root).' } }
        $p
    }
    $droppers = [Collections.Generic.List[object]]::new()
    if ($ColdCache) { [void](Clear-PageCache $true) }
    $samples = [Collections.Generic.List[object]]::new()
    $self = [Diagnostics.Process]::GetCurrentProcess()
    $selfCpu0 = $self.TotalProcessorTime.TotalSeconds
    $machine0 = Get-MachineCpu
    $prevTicks = Get-ProcCpuTicks $agentPid
    $agentTicks0 = $prevTicks
    $prevWriterBytes = 0L
    $agentCpuAtWarmup = -1L; $machineAtWarmup = $null; $tAtWarmup = 0.0; $selfCpuAtWarmup = 0.0
    for ($i = 1; $i -le $DurationSeconds; $i++) {
        $wait = ($t0.AddSeconds($i) - [DateTime]::UtcNow).TotalMilliseconds
        if ($wait -gt 0) { [Threading.Thread]::Sleep([int]$wait) }
        $t = ([DateTime]::UtcNow - $t0).TotalSeconds
        $ticks = Get-ProcCpuTicks $agentPid
        $rss = Get-ProcStatusKb $agentPid 'VmRSS'
        if ($ColdCache -and $i % 5 -eq 0) { $droppers.Add((Clear-PageCache $false)) }
        $q = [Diagnostics.Stopwatch]::StartNew()
        $item = Get-AsrProtectedItem -Name $itemName
        $queryMs = $q.Elapsed.TotalMilliseconds
        $wb = $prevWriterBytes
        try { $wb = [long](([IO.File]::ReadAllText($writerStatus) -split '"bytes": ')[1].Split(',')[0]) } catch { }
        $cpuPct = if ($ticks -ge 0 -and $prevTicks -ge 0) { ($ticks - $prevTicks) } else { [double]::NaN }
        $samples.Add([pscustomobject]@{
            T = $t; Warmup = ($i -le $WarmupSeconds)
            Rpo = if ($item.CurrentRpo) { $item.CurrentRpo.TotalSeconds } else { [double]::NaN }
            Seq = [long]$item.LastPointSequence; InCycle = [int]($null -ne $item.CycleInProgressJobId); Health = "$($item.ReplicationHealth)"
            CpuTicks = $ticks; CpuPct = $cpuPct; RssKb = $rss; WriterBytes = $wb; WriterMiBps = ($wb - $prevWriterBytes) / 1MB
            QueryMs = $queryMs; Load = (Get-LoadAvg).Split(' ')[0]
        })
        $prevTicks = $ticks; $prevWriterBytes = $wb
        if ($i -eq $WarmupSeconds) { $agentCpuAtWarmup = $ticks; $machineAtWarmup = Get-MachineCpu; $tAtWarmup = $t; $selfCpuAtWarmup = $self.TotalProcessorTime.TotalSeconds; $seqAtWarmup = [long]$item.LastPointSequence; $vaultAtWarmup = Get-DirBytes $vaultPath }
        if ($ticks -lt 0) { throw "The agent process $agentPid is gone at t=$(F $t) s. Agent log: $([IO.File]::ReadAllText($agentLog))" }
        if ($i % 10 -eq 0) { Say "   t=$($i.ToString().PadLeft(4)) s  RPO $(F $samples[-1].Rpo) s  point $($item.LastPointSequence)  in cycle $($samples[-1].InCycle)  agent CPU $(F $cpuPct 0)%  RSS $(F ($rss / 1024) 0) MiB  writer $(F ($wb / 1MB / $t)) MiB/s  load $($samples[-1].Load)" }
    }
    $tEnd = ([DateTime]::UtcNow - $t0).TotalSeconds
    $agentCpuEnd = Get-ProcCpuTicks $agentPid
    $machineEnd = Get-MachineCpu
    $selfCpuEnd = $self.TotalProcessorTime.TotalSeconds
    $hwmKb = Get-ProcStatusKb $agentPid 'VmHWM'
    $writerCpuTicks = Get-ProcCpuTicks $writer.Id
    $endItem = Get-AsrProtectedItem -Name $itemName
    $vaultEnd = Get-DirBytes $vaultPath
    $loadEnd = Get-LoadAvg
    $diskExtents = try { (Invoke-Tool filefrag @($disk) -NoThrow) -replace '^.*: ', '' } catch { '?' }   # fragmentation the writes left (each clone cycle unshares what was written)

    # -------------------------------------------------------------- stop writer, agent
    if (-not $writer.WaitForExit(15000)) { & /bin/kill -TERM $writer.Id; [void]$writer.WaitForExit(10000) }
    $ws = $null
    try { $ws = [IO.File]::ReadAllText($writerStatus) } catch { }
    $writerBytes = [long](($ws -split '"bytes": ')[1].Split(',')[0])
    $writerElapsed = [double](($ws -split '"elapsed": ')[1].Split(',')[0])
    $writerWrites = [long](($ws -split '"writes": ')[1].Split(',')[0])
    $writerLate = [long](($ws -split '"late_ticks": ')[1].Split(',')[0])
    $writerTicks = [long](($ws -split '"ticks": ')[1].Split(',')[0])
    $stopped = Stop-AsrAgent -HostName $agentHost -TimeoutSeconds 120 -Force -PassThru
    $agentPid = 0
    Say "   writer and agent stopped (agent state $($stopped.State)); load average $loadEnd"

    # -------------------------------------------------------------- results
    $cycles = @(Get-AsrJob -Operation ReplicationCycle -TargetName $itemName)
    $cycleList = [Collections.Generic.List[object]]::new()
    foreach ($c in $cycles) { $cycleList.Add($c) }
    $cycleList.Sort([Comparison[object]] { param($a, $b) $a.StartTimeUtc.CompareTo($b.StartTimeUtc) })
    $points = @(Get-AsrRecoveryPoint -Item $itemName)

    $win = @($samples | Where-Object { -not $_.Warmup -and -not [double]::IsNaN($_.Rpo) })
    $rpoAll = Get-Sorted ([double[]]@($win | ForEach-Object { $_.Rpo }))
    $rssPeakKb = 0L; foreach ($s in $samples) { if ($s.RssKb -gt $rssPeakKb) { $rssPeakKb = $s.RssKb } }
    $rssWinPeakKb = 0L; foreach ($s in $win) { if ($s.RssKb -gt $rssWinPeakKb) { $rssWinPeakKb = $s.RssKb } }
    $winSeconds = $tEnd - $tAtWarmup
    $agentCpuWinS = if ($agentCpuAtWarmup -ge 0) { ($agentCpuEnd - $agentCpuAtWarmup) / 100.0 } else { [double]::NaN }
    $agentCpuAllS = ($agentCpuEnd - $agentTicks0) / 100.0
    $machineWinPct = if ($machineAtWarmup) { 100.0 * ($machineEnd[0] - $machineAtWarmup[0]) / [Math]::Max(1, $machineEnd[1] - $machineAtWarmup[1]) } else { [double]::NaN }
    $pointsInWin = $endItem.LastPointSequence - $seqAtWarmup
    $winPoints = @($points | Where-Object { $_.RecoveryPointTimeUtc -ge $t0Offset.AddSeconds($tAtWarmup) })
    $gaps = [Collections.Generic.List[double]]::new()
    $sortedPoints = [Collections.Generic.List[object]]::new(); foreach ($p in $points) { $sortedPoints.Add($p) }
    $sortedPoints.Sort([Comparison[object]] { param($a, $b) $a.Sequence.CompareTo($b.Sequence) })
    for ($k = 1; $k -lt $sortedPoints.Count; $k++) {
        if ($sortedPoints[$k].RecoveryPointTimeUtc -ge $t0Offset.AddSeconds($tAtWarmup)) { $gaps.Add(($sortedPoints[$k].RecoveryPointTimeUtc - $sortedPoints[$k - 1].RecoveryPointTimeUtc).TotalSeconds) }
    }
    $gapSorted = Get-Sorted ([double[]]$gaps.ToArray())
    $winCycles = @($cycleList | Where-Object { $_.EndTimeUtc -ge $t0Offset.AddSeconds($tAtWarmup) -and "$($_.State)" -eq 'Succeeded' })   # published in the window
    $durSorted = Get-Sorted ([double[]]@($winCycles | ForEach-Object { $_.Duration.TotalSeconds }))
    $scanRates = Get-Sorted ([double[]]@($winCycles | ForEach-Object { $_.Result.BytesScanned / 1MB / [Math]::Max(0.001, $_.Duration.TotalSeconds) }))
    $failed = @($cycleList | Where-Object { "$($_.State)" -ne 'Succeeded' })
    # Exact RPO peaks: just before cycle k publishes, the newest point is k-1, so the RPO then is
    # (end of cycle k) - (time of point k-1); the per-second samples can miss it by up to a second.
    $pointTime = @{}; foreach ($p in $points) { $pointTime[[long]$p.Sequence] = $p.RecoveryPointTimeUtc }
    $peaks = [Collections.Generic.List[double]]::new()
    foreach ($c in $winCycles) {
        $k = [long]$c.Result.RecoveryPointSequence
        if ($pointTime.ContainsKey($k - 1) -and $c.EndTimeUtc) { $peaks.Add(($c.EndTimeUtc - $pointTime[$k - 1]).TotalSeconds) }
    }
    $peakSorted = Get-Sorted ([double[]]$peaks.ToArray())
    $cpuModel = ''
    foreach ($l in [IO.File]::ReadAllLines('/proc/cpuinfo')) { if ($l.StartsWith('model name')) { $cpuModel = $l.Substring($l.IndexOf(':') + 1).Trim(); break } }
    $engineAsm = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -eq 'AsrModule.Engine' }
    $config = if ($engineAsm) { $engineAsm.GetCustomAttributes([Reflection.AssemblyConfigurationAttribute], $false) | ForEach-Object { $_.Configuration } } else { '?' }
    $met = if ($rpoAll.Count -gt 0 -and $rpoAll[-1] -lt 60 -and ($peakSorted.Count -eq 0 -or $peakSorted[-1] -lt 60)) { 'yes' } else { 'NO' }
    $metGoal = if ($rpoAll.Count -gt 0 -and $rpoAll[-1] -le $RpoGoalSeconds -and ($peakSorted.Count -eq 0 -or $peakSorted[-1] -le $RpoGoalSeconds)) { 'yes' } else { 'NO' }
    $where = if ($FileSystem -eq 'none') { 'in the work dir' } else { "on a loop-mounted $FileSystem$(if ($FileSystem -eq 'xfs') { ' (reflink=1)' })" }

    Out-Result ''
    Out-Result "### agent-rpo $([DateTime]::UtcNow.ToString('yyyy-MM-dd HH:mm', $inv)) UTC"
    Out-Result ''
    Out-Result "machine: $cores cores ($cpuModel), module build $config; load average at start $($samples[0].Load), at end $loadEnd; machine CPU busy in the window (all processes) $(F $machineWinPct 0)%"
    Out-Result "disk $(F ($size / 1GB) 2) GiB (random/text/zero/zero, written out), initial replication $(F $initialS) s; $where, capture $captureMethod; policy zstd-1, point every $frequencyS s, RPO threshold 60 s; encrypted vault; agent tick 1 s$(if ($ColdCache) { '; page cache dropped every 5 s (cold reads)' } else { '; disk file in the page cache (warm reads)' })$(if ($AgentGcHeapLimitMB -gt 0) { ", agent GC heap hard limit $AgentGcHeapLimitMB MiB" })"
    Out-Result "writer: separate python3 process, $WriteMBps MiB/s target, random 4-64 KiB pwrite of random data at random 4 KiB offsets, paced per 100 ms, no fsync"
    Out-Result ''
    Out-Result "| measured over t = $(F $tAtWarmup 0)..$(F $tEnd 0) s (after $WarmupSeconds s warm-up) | value |"
    Out-Result '|---|---|'
    Out-Result "| RPO min / median / p95 / max | $(F $rpoAll[0]) / $(F (Get-Median $rpoAll)) / $(F (Get-Pct $rpoAll 95)) / $(F $rpoAll[-1]) s ($($rpoAll.Count) samples) |"
    Out-Result "| RPO just before each publication (exact, from point and cycle end times) min / max | $(F $peakSorted[0]) / $(F $peakSorted[-1]) s |"
    Out-Result "| RPO under $(F $RpoGoalSeconds 0) s throughout | $(if ($RpoGoalSeconds -eq 60) { $met } else { $metGoal }) |"
    Out-Result "| points published (interval min / median / max) | $pointsInWin ($(F $gapSorted[0]) / $(F (Get-Median $gapSorted)) / $(F $gapSorted[-1]) s) |"
    Out-Result "| cycles that published in the window: duration min / median / max | $($winCycles.Count): $(F $durSorted[0]) / $(F (Get-Median $durSorted)) / $(F $durSorted[-1]) s; failed/cancelled (whole run) $($failed.Count) |"
    Out-Result "| cycle scan rate (BytesScanned / duration) median | $(F (Get-Median $scanRates) 0) MiB/s |"
    Out-Result "| writer achieved | $(F ($writerBytes / 1MB / $writerElapsed) 2) MiB/s = $(F ($writerBytes / 1e6 / $writerElapsed) 2) MB/s ($writerWrites writes, $writerLate of $writerTicks ticks late) |"
    Out-Result "| agent CPU, window | $(F (100 * $agentCpuWinS / $winSeconds) 1)% of one core = $(F (100 * $agentCpuWinS / $winSeconds / $cores) 1)% of $cores cores ($(F $agentCpuWinS) s CPU in $(F $winSeconds 0) s) |"
    Out-Result "| agent CPU, whole run incl. first cycle | $(F (100 * $agentCpuAllS / $tEnd) 1)% of one core |"
    Out-Result "| agent RSS peak (sampled; kernel VmHWM) | $(F ($rssWinPeakKb / 1024) 0) MiB in the window, $(F ($rssPeakKb / 1024) 0) MiB whole run; VmHWM $(F ($hwmKb / 1024) 0) MiB |"
    Out-Result "| vault growth, window | $(F (($vaultEnd - $vaultAtWarmup) / 1MB)) MiB = $(F (($vaultEnd - $vaultAtWarmup) / 1MB / $winSeconds * 60) 0) MiB/min (writer wrote $(F ($writerBytes / 1MB / $writerElapsed * 60) 0) MiB/min; total vault $(F ($vaultEnd / 1MB) 0) MiB, $(F ($vaultAfterInitial / 1MB) 0) MiB after initial) |"
    Out-Result "| disk file at the end (filefrag) | $diskExtents |"
    Out-Result "| other CPU: writer / sampler (this process) | $(F (100 * $writerCpuTicks / 100.0 / $tEnd) 1)% / $(F (100 * ($selfCpuEnd - $selfCpu0) / $tEnd) 1)% of one core |"
    Out-Result ''
    Out-Result '| t (s) | RPO min | median | max | points published | agent CPU (1 core) | RSS max MiB |'
    Out-Result '|---|---|---|---|---|---|---|'
    $seqBefore = $seq0
    for ($b = 0; $b * 60 -lt $DurationSeconds; $b++) {
        $slice = @($samples | Where-Object { $_.T -gt $b * 60 -and $_.T -le ($b + 1) * 60 })
        if ($slice.Count -eq 0) { continue }
        $r = Get-Sorted ([double[]]@($slice | Where-Object { -not [double]::IsNaN($_.Rpo) } | ForEach-Object { $_.Rpo }))
        $cpu = 0.0; $rssMax = 0L; foreach ($s in $slice) { if (-not [double]::IsNaN($s.CpuPct)) { $cpu += $s.CpuPct }; if ($s.RssKb -gt $rssMax) { $rssMax = $s.RssKb } }
        $label = "$($b * 60)-$([Math]::Min(($b + 1) * 60, $DurationSeconds))$(if (($b + 1) * 60 -le $WarmupSeconds) { ' (warm-up)' })"
        $published = $slice[-1].Seq - $seqBefore
        $seqBefore = $slice[-1].Seq
        Out-Result "| $label | $(F $r[0]) | $(F (Get-Median $r)) | $(F $r[-1]) | $published | $(F ($cpu / $slice.Count) 0)% | $(F ($rssMax / 1024) 0) |"
    }
    Out-Result ''
    Out-Result '| cycle start t (s) | mode | duration s | scanned MiB | changed MiB | stored MiB | state |'
    Out-Result '|---|---|---|---|---|---|---|'
    $cycleCsv = [Collections.Generic.List[string]]::new()
    $cycleCsv.Add('start_t_s,end_t_s,duration_s,mode,state,point,bytes_scanned,changed_bytes,bytes_stored')
    foreach ($c in $cycleList) {
        $st = ($c.StartTimeUtc - $t0Offset).TotalSeconds
        $d = if ($c.Duration) { $c.Duration.TotalSeconds } else { [double]::NaN }
        $r = $c.Result
        Out-Result "| $(F $st) | $($r.Mode) | $(F $d 2) | $(F ($r.BytesScanned / 1MB) 0) | $(F ($r.ChangedBytes / 1MB)) | $(F ($r.BytesStored / 1MB)) | $($c.State) |"
        $cycleCsv.Add("$(F $st 2),$(F ($st + $d) 2),$(F $d 3),$($r.Mode),$($c.State),$($r.RecoveryPointSequence),$($r.BytesScanned),$($r.ChangedBytes),$($r.BytesStored)")
    }
    [IO.File]::WriteAllLines((P $WorkDir 'cycles.csv'), $cycleCsv)
    $csv = [Collections.Generic.List[string]]::new()
    $csv.Add('t_s,warmup,rpo_s,last_point,cycle_in_progress,health,agent_cpu_ticks,agent_cpu_pct_1core,agent_rss_mib,writer_bytes,writer_mibps,query_ms,load1')
    foreach ($s in $samples) {
        $csv.Add("$(F $s.T 2),$([int]$s.Warmup),$(F $s.Rpo 2),$($s.Seq),$($s.InCycle),$($s.Health),$($s.CpuTicks),$(F $s.CpuPct 0),$(F ($s.RssKb / 1024) 1),$($s.WriterBytes),$(F $s.WriterMiBps 2),$(F $s.QueryMs 1),$($s.Load)")
    }
    [IO.File]::WriteAllLines((P $WorkDir 'samples.csv'), $csv)
    [IO.File]::WriteAllLines((P $WorkDir 'results.md'), $results)
    Say ''
    Say "(samples: $(P $WorkDir 'samples.csv'); cycles: $(P $WorkDir 'cycles.csv'); tables: $(P $WorkDir 'results.md'); agent log: $agentLog)"
    Say "BENCH rpoMin=$(F $rpoAll[0]) rpoMedian=$(F (Get-Median $rpoAll)) rpoP95=$(F (Get-Pct $rpoAll 95)) rpoMax=$(F $rpoAll[-1]) under60=$met goal=$(F $RpoGoalSeconds 0) underGoal=$metGoal capture=$captureMethod frequency=$frequencyS fs=$FileSystem points=$pointsInWin agentCpu1core=$(F (100 * $agentCpuWinS / $winSeconds)) rssPeakMiB=$(F ($rssPeakKb / 1024) 0) writerMiBps=$(F ($writerBytes / 1MB / $writerElapsed) 2)"
}
finally {
    if ($writer -and -not $writer.HasExited) { try { $writer.Kill() } catch { } }
    if ($agentPid -gt 0) {
        try { Stop-AsrAgent -HostName $agentHost -TimeoutSeconds 60 -Force -ErrorAction SilentlyContinue | Out-Null } catch { }
    }
    try { Disconnect-AsrVault -ErrorAction SilentlyContinue } catch { }
    if (-not $Keep) {
        foreach ($p in $disk, $writerPy, $writerStatus) { if ([IO.File]::Exists($p)) { [IO.File]::Delete($p) } }
        if ([IO.Directory]::Exists($vaultPath)) { [IO.Directory]::Delete($vaultPath, $true) }
    }
    if ($FileSystem -ne 'none') {
        Dismount-DiskFileSystem
        if (-not $Keep -and -not (Test-Mounted $mountPoint)) {
            if ([IO.File]::Exists($fsImage)) { [IO.File]::Delete($fsImage) }
            if ([IO.Directory]::Exists($mountPoint)) { [IO.Directory]::Delete($mountPoint, $true) }
        }
    }
}
