<#
.SYNOPSIS
    RTO of a failover into Azure, our side: from the cmdlet call to "VM create accepted", against the FAKE Azure
    Resource Manager (tests/FakeArm, async LRO answers) with the managed disks' page blobs in a real Azurite.
.DESCRIPTION
    Run by bench/azure-rto.sh in the pinned pwsh (or by hand, see bench/README.md). Two roles in one file:

    * Without -Worker (the orchestrator): starts Azurite and the fake (tests/Pester/TestAzurite.ps1, TestFakeArm.ps1;
      `--mode async`, as Azure answers: 202/201 + Azure-AsyncOperation, polled), registers the subnet, and runs this
      file again with -Worker in a child pwsh STARTED with SSL_CERT_FILE=<the fake's cert.pem> (the module trusts the
      fake only so). Stops both afterwards.
    * -Worker: a local vault, -Machines protected items each with an OS disk (-OsDiskMB) and a data disk
      (-DataDiskMB), sparse files of which -DataFraction of the 1 MiB regions hold data (random and text alternately,
      the rest zeros), replicated once (Enable-AsrReplication). Then -Rounds rounds, each: (a) a recovery plan with all
      machines in one group, Start-AsrRecoveryPlan -FailoverType Unplanned -Target $azure (the machines of a group run
      in parallel), and (b) one Start-AsrFailover of the first machine alone; the order of (a) and (b) alternates per
      round. After each, Undo-AsrFailover of every machine failed over (as background jobs), then the fake must hold no
      disk and no VM (cleanup by the asr-operation tag, checked from the fake's own state).

    Figures per run, from the fake's request log (GET /_fake/requests, `received` = when the fake got the request,
    same clock as the bench): per machine the first disk PUT, the first grant (beginGetAccess), the last revoke
    (endGetAccess), the VM PUT (= "VM create accepted": the fake answers it 201 at once); for the run the last VM PUT
    and the job's end, all in seconds from the cmdlet call. Bytes uploaded are the module's own count (the failover
    record's uploadedBytes: non-zero ranges + the VHD footer), against the disks' sizes and their non-zero bytes.

    Output: a markdown table (medians and [min–max] over the rounds) on stdout and in -WorkDir/results.md, raw rows in
    -WorkDir/runs.csv and -WorkDir/machines.csv, the fake's request log of each run in -WorkDir/requests-<run>-<round>.csv.
    -AsyncPolls 2 makes each long-running operation take a second poll, which the SDK sends no sooner than 1 s after
    the first: the floor a real Azure operation costs at least.
#>
param(
    [string]$WorkDir = ([IO.Path]::Combine([IO.Path]::GetTempPath(), 'asr-azure-rto')),
    [int]$Machines = 10,
    [int]$OsDiskMB = 256,
    [int]$DataDiskMB = 64,
    [double]$DataFraction = 0.3,
    [int]$Rounds = 3,
    [int]$AsyncPolls = 1,
    [switch]$Keep,
    [switch]$Worker
)
$ErrorActionPreference = 'Stop'
$repo = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..'))
$testsDir = [IO.Path]::Combine($repo, 'tests', 'Pester')
. ([IO.Path]::Combine($testsDir, 'TestAzurite.ps1'))
. ([IO.Path]::Combine($testsDir, 'TestFakeArm.ps1'))

function Get-Median([double[]]$Values) {
    $s = @($Values | Sort-Object)
    if ($s.Count -eq 0) { return [double]::NaN }
    if ($s.Count % 2) { $s[($s.Count - 1) / 2] } else { ($s[$s.Count / 2 - 1] + $s[$s.Count / 2]) / 2 }
}
function Format-Stat([double[]]$Values, [string]$Format = 'F2') {
    $v = @($Values | Where-Object { -not [double]::IsNaN($_) })
    if ($v.Count -eq 0) { return 'n/a' }
    $m = (Get-Median $v).ToString($Format, [Globalization.CultureInfo]::InvariantCulture)
    if ($v.Count -eq 1) { return $m }
    $min = ($v | Measure-Object -Minimum).Minimum.ToString($Format, [Globalization.CultureInfo]::InvariantCulture)
    $max = ($v | Measure-Object -Maximum).Maximum.ToString($Format, [Globalization.CultureInfo]::InvariantCulture)
    "$m [$min–$max]"
}

# ------------------------------------------------------------------------------------------------ orchestrator
if (-not $Worker) {
    if ([IO.Directory]::Exists($WorkDir)) { [IO.Directory]::Delete($WorkDir, $true) }
    [void][IO.Directory]::CreateDirectory($WorkDir)
    $skip = Get-FakeArmSkipReason
    if ($skip) { throw "Cannot run: $skip" }
    $azurite = $null; $fake = $null
    try {
        $azurite = Start-TestAzurite
        # The container made beforehand: the fake creates it on the first grant, and concurrent first grants of
        # several disks would race it (the second one's Put Blob before the container exists).
        $http = [Net.Http.HttpClient]::new()
        try {
            $created = $http.PutAsync("$($azurite.Endpoint)/disks?restype=container&$(New-TestAccountSas)", [Net.Http.ByteArrayContent]::new([byte[]]::new(0))).GetAwaiter().GetResult()
            if (-not $created.IsSuccessStatusCode) { throw "Azurite refused to create the container 'disks': $([int]$created.StatusCode)" }
        } finally { $http.Dispose() }
        $fake = Start-TestFakeArm -AzuriteConnectionString $azurite.ConnectionString -Mode async
        # Polls until an operation completes: 1 = done on the SDK's first poll (sent at once); 2 = a second poll, which
        # the SDK sends no sooner than 1 s later (its floor), so each long-running operation costs >= 1 s.
        Invoke-FakeArmControl -FakeArm $fake -Method POST -Path '/_fake/config' -Body @{ mode = 'async'; asyncPolls = $AsyncPolls } | Out-Null
        Register-TestSubnet $fake (New-TestSubnetId 'recovery'), (New-TestSubnetId 'drill')
        [Console]::WriteLine("Azurite $($azurite.Endpoint) (pid $($azurite.Process.Id)); fake ARM $($fake.Endpoint) (pid $($fake.Process.Id), async LRO, $AsyncPolls poll(s) per operation)")
        $psi = [Diagnostics.ProcessStartInfo]::new([Environment]::ProcessPath)
        $arguments = @()
        if ([IO.Path]::GetFileNameWithoutExtension([Environment]::ProcessPath) -eq 'dotnet') { $arguments += [IO.Path]::Combine($PSHOME, 'pwsh.dll') }
        $arguments += @('-NoProfile', '-NonInteractive', '-File', $PSCommandPath, '-Worker', '-WorkDir', $WorkDir, '-Machines', "$Machines",
            '-OsDiskMB', "$OsDiskMB", '-DataDiskMB', "$DataDiskMB", '-DataFraction', $DataFraction.ToString([Globalization.CultureInfo]::InvariantCulture),
            '-Rounds', "$Rounds", '-AsyncPolls', "$AsyncPolls")
        foreach ($a in $arguments) { $psi.ArgumentList.Add($a) }
        $psi.UseShellExecute = $false
        $environment = Get-TestFakeArmEnvironment $fake @{ ASR_BENCH_AZURITE_PID = "$($azurite.Process.Id)"; ASR_BENCH_FAKEARM_PID = "$($fake.Process.Id)" }
        foreach ($k in $environment.Keys) {
            if ($null -eq $environment[$k]) { [void]$psi.Environment.Remove($k) } else { $psi.Environment[$k] = [string]$environment[$k] }
        }
        $child = [Diagnostics.Process]::Start($psi)
        $child.WaitForExit()
        if ($child.ExitCode -ne 0) { throw "The bench worker failed (exit code $($child.ExitCode))." }
    } finally {
        Stop-TestFakeArm $fake
        Stop-TestAzurite $azurite
        if (-not $Keep) {
            foreach ($d in 'vault', 'disks') { $p = [IO.Path]::Combine($WorkDir, $d); if ([IO.Directory]::Exists($p)) { [IO.Directory]::Delete($p, $true) } }
        }
    }
    return
}

# ------------------------------------------------------------------------------------------------ worker
Import-Module AsrModule
$fake = Get-TestFakeArmFromEnvironment
$inv = [Globalization.CultureInfo]::InvariantCulture

function Get-CpuSeconds([int]$ProcessId) {
    # utime + stime of a process, from /proc (clock ticks of 1/100 s on Linux).
    $stat = [IO.File]::ReadAllText("/proc/$ProcessId/stat")
    $fields = $stat.Substring($stat.LastIndexOf(')') + 2).Split(' ')
    ([double]$fields[11] + [double]$fields[12]) / 100
}
function Get-FakeRequestLog {
    # Raw JSON (ConvertFrom-Json would turn the ISO timestamps into local DateTimes).
    $raw = Invoke-WebRequest -Uri ($fake.Endpoint.TrimEnd('/') + '/_fake/requests') -SkipCertificateCheck -TimeoutSec 60
    $doc = [Text.Json.JsonDocument]::Parse($raw.Content)
    try {
        foreach ($e in $doc.RootElement.EnumerateArray()) {
            [pscustomobject]@{
                Received = [DateTimeOffset]::Parse($e.GetProperty('received').GetString(), $inv)
                Method = $e.GetProperty('method').GetString(); Path = $e.GetProperty('path').GetString(); Status = $e.GetProperty('status').GetInt32()
            }
        }
    } finally { $doc.Dispose() }
}
function New-BenchDisk([string]$Path, [long]$SizeMB, [double]$Fraction, [int]$Seed) {
    # Sparse raw image: a seeded choice of 1 MiB regions holds data (random and text alternately), the rest zeros.
    $rng = [Random]::new($Seed)
    $random = [byte[]]::new(1MB)
    $text = [Text.Encoding]::ASCII.GetBytes((('replication vault recovery point failover disk block extent ' * 20000)).Substring(0, 1MB))
    $fs = [IO.FileStream]::new($Path, [IO.FileMode]::Create, [IO.FileAccess]::Write)
    $dataRegions = 0
    try {
        $fs.SetLength($SizeMB * 1MB)
        for ($r = 0; $r -lt $SizeMB; $r++) {
            # Region 0 always holds data (a boot sector's place); the rest by the fraction.
            if ($r -ne 0 -and $rng.NextDouble() -ge $Fraction) { continue }
            $fs.Position = $r * 1MB
            if ($dataRegions % 2 -eq 0) { $rng.NextBytes($random); $fs.Write($random, 0, $random.Length) }
            else { $text[$rng.Next($text.Length)] = 33; $fs.Write($text, 0, $text.Length) }
            $dataRegions++
        }
    } finally { $fs.Dispose() }
    [long]$dataRegions * 1MB
}
function Assert-FakeEmpty([string]$When) {
    $state = Get-FakeArmState $fake
    $disks = @($state.disks | Where-Object { $_ }).Count; $vms = @($state.virtualMachines | Where-Object { $_ }).Count
    if ($disks -or $vms) { throw "After $When the fake still holds $disks disk(s) and $vms VM(s)." }
}

$names = @(1..$Machines | ForEach-Object { 'm{0:D2}' -f $_ })
$diskDir = [IO.Path]::Combine($WorkDir, 'disks')
[void][IO.Directory]::CreateDirectory($diskDir)
[Console]::WriteLine("load average: $([IO.File]::ReadAllText('/proc/loadavg').Trim())")
[Console]::WriteLine("$Machines machine(s), each an OS disk of $OsDiskMB MiB and a data disk of $DataDiskMB MiB, $([math]::Round(100 * $DataFraction))% of 1 MiB regions holding data; $Rounds round(s)")

New-AsrVault -Path ([IO.Path]::Combine($WorkDir, 'vault')) | Connect-AsrVault
New-AsrPolicy -Name bench | Out-Null
$nonZero = @{}; $diskBytes = @{}
$seed = 0
$enableWatch = [Diagnostics.Stopwatch]::StartNew()
foreach ($n in $names) {
    $os = [IO.Path]::Combine($diskDir, "$n-os.img"); $data = [IO.Path]::Combine($diskDir, "$n-data.img")
    $nonZero[$n] = (New-BenchDisk $os $OsDiskMB $DataFraction (++$seed)) + (New-BenchDisk $data $DataDiskMB $DataFraction (++$seed))
    $diskBytes[$n] = ([long]$OsDiskMB + $DataDiskMB) * 1MB
    Enable-AsrReplication -Name $n -Disk $os, $data -Policy bench | Out-Null
}
$enableWatch.Stop()
[Console]::WriteLine("protected $Machines machine(s) in $([math]::Round($enableWatch.Elapsed.TotalSeconds, 1)) s (disks made and initial replication)")

$planPath = [IO.Path]::Combine($WorkDir, 'bench-plan.ps1')
[IO.File]::WriteAllText($planPath, "AsrRecoveryPlan 'azure-rto' {`n    AsrGroup 1 -Items $($names -join ', ')`n}`n")

$subnet = New-TestSubnetId 'recovery'
$azure = New-AsrAzureTarget -SubscriptionId $fake.SubscriptionId -ResourceGroupName $fake.ResourceGroup -Location $fake.Region `
    -SubnetId $subnet -TestSubnetId (New-TestSubnetId 'drill') -VMSize Standard_D2s_v5 -DiskSku StandardSSD_LRS `
    -AccessToken 'fake-token' -ResourceManagerUrl $fake.Endpoint -AuthorityHost 'https://login.microsoftonline.com/'
$azuritePid = [int]$env:ASR_BENCH_AZURITE_PID; $fakePid = [int]$env:ASR_BENCH_FAKEARM_PID

function Measure-Failover([string]$Kind, [int]$Round, [string[]]$Items) {
    Invoke-FakeArmControl -FakeArm $fake -Method DELETE -Path '/_fake/requests' | Out-Null
    $cpu0 = @{ us = (Get-CpuSeconds $PID); azurite = (Get-CpuSeconds $azuritePid); fake = (Get-CpuSeconds $fakePid) }
    $load = [IO.File]::ReadAllText('/proc/loadavg').Split(' ')[0]
    $t0 = [DateTimeOffset]::UtcNow
    $watch = [Diagnostics.Stopwatch]::StartNew()
    if ($Kind -eq 'plan') {
        $job = Start-AsrRecoveryPlan -Path $planPath -FailoverType Unplanned -Target $azure -Confirm:$false
    } else {
        $job = Start-AsrFailover -Name $Items[0] -Target $azure -Confirm:$false
    }
    $job = @($job)[-1]
    $watch.Stop()
    if ($job.State -ne 'Succeeded') { throw "$Kind round ${Round}: job $($job.Id) ended $($job.State): $($job.Error)" }
    $cpu = @{ us = (Get-CpuSeconds $PID) - $cpu0.us; azurite = (Get-CpuSeconds $azuritePid) - $cpu0.azurite; fake = (Get-CpuSeconds $fakePid) - $cpu0.fake }
    $log = @(Get-FakeRequestLog)
    $log | Select-Object @{ n = 'T'; e = { ($_.Received - $t0).TotalSeconds.ToString('F3', $inv) } }, Method, Path, Status |
        Export-Csv -Path ([IO.Path]::Combine($WorkDir, "requests-$Kind-$Round.csv")) -NoTypeInformation
    $rel = { param($t) ($t - $t0).TotalSeconds }
    $rows = foreach ($n in $Items) {
        $item = Get-AsrProtectedItem $n
        $mine = @($log | Where-Object { $_.Path -match "/disks/$n-" })
        $diskPuts = @($mine | Where-Object { $_.Method -eq 'PUT' })
        $grants = @($mine | Where-Object { $_.Path -like '*/beginGetAccess' })
        $revokes = @($mine | Where-Object { $_.Path -like '*/endGetAccess' })
        $vmPut = @($log | Where-Object { $_.Method -eq 'PUT' -and $_.Path -match "/virtualMachines/$n$" })
        if ($vmPut.Count -ne 1 -or $vmPut[0].Status -notin 200, 201) { throw "$Kind round ${Round}: $n has $($vmPut.Count) VM PUT(s) (status $($vmPut.Status))." }
        $uploaded = [long]$item.Failover.Machine.Properties['uploadedBytes']
        [pscustomobject]@{
            Kind = $Kind; Round = $Round; Machine = $n
            FirstDiskPutS = & $rel ($diskPuts | Select-Object -First 1).Received
            FirstGrantS = & $rel ($grants | Select-Object -First 1).Received
            LastRevokeS = & $rel ($revokes | Select-Object -Last 1).Received
            VmPutS = & $rel $vmPut[0].Received
            UploadedBytes = $uploaded; NonZeroBytes = $nonZero[$n]; DiskBytes = $diskBytes[$n]
            DiskPuts = $diskPuts.Count
        }
    }
    $rows = @($rows)
    $counts = [ordered]@{
        diskPut = @($log | Where-Object { $_.Method -eq 'PUT' -and $_.Path -match '/disks/' }).Count
        grant = @($log | Where-Object { $_.Path -like '*/beginGetAccess' }).Count
        revoke = @($log | Where-Object { $_.Path -like '*/endGetAccess' }).Count
        vmPut = @($log | Where-Object { $_.Method -eq 'PUT' -and $_.Path -match '/virtualMachines/' }).Count
        poll = @($log | Where-Object { $_.Method -eq 'GET' -and $_.Path -match '/operations/' }).Count
        other = 0
    }
    $counts.other = $log.Count - ($counts.Values | Measure-Object -Sum).Sum
    $run = [pscustomobject]@{
        Kind = $Kind; Round = $Round; Machines = $Items.Count; LoadAverage = $load
        LastVmPutS = ($rows | Measure-Object VmPutS -Maximum).Maximum
        JobEndS = if ($job.EndTimeUtc) { ($job.EndTimeUtc - $t0).TotalSeconds } else { [double]::NaN }
        CmdletS = $watch.Elapsed.TotalSeconds
        UploadedBytes = ($rows | Measure-Object UploadedBytes -Sum).Sum
        NonZeroBytes = ($rows | Measure-Object NonZeroBytes -Sum).Sum
        DiskBytes = ($rows | Measure-Object DiskBytes -Sum).Sum
        ArmRequests = $log.Count
        Requests = ($counts.GetEnumerator() | ForEach-Object { "$($_.Key)=$($_.Value)" }) -join ' '
        OurCpuS = $cpu.us; AzuriteCpuS = $cpu.azurite; FakeCpuS = $cpu.fake
        UndoS = [double]::NaN
    }
    # Undo every failover (in parallel, as jobs), then the fake must be empty.
    $undo = [Diagnostics.Stopwatch]::StartNew()
    $undoJobs = foreach ($n in $Items) { Undo-AsrFailover -Name $n -Confirm:$false -AsJob }
    $undoJobs = @($undoJobs | Wait-AsrJob)
    $undo.Stop()
    $failed = @($undoJobs | Where-Object State -ne 'Succeeded')
    if ($failed) { throw "Undo-AsrFailover failed: $(($failed | ForEach-Object { "$($_.TargetName): $($_.Error)" }) -join '; ')" }
    Assert-FakeEmpty "undoing the $Kind run of round $Round"
    $run.UndoS = $undo.Elapsed.TotalSeconds
    [Console]::WriteLine(("BENCH {0} round={1} machines={2} lastVmPutS={3:F2} jobEndS={4:F2} uploadedMiB={5:F1} armRequests={6} ({7}) undoS={8:F2} load={9}" -f
        $Kind, $Round, $Items.Count, $run.LastVmPutS, $run.JobEndS, ($run.UploadedBytes / 1MB), $run.ArmRequests, $run.Requests, $run.UndoS, $load))
    , @($run, $rows)
}

$runs = [Collections.Generic.List[object]]::new()
$machineRows = [Collections.Generic.List[object]]::new()
for ($round = 1; $round -le $Rounds; $round++) {
    $order = if ($round % 2) { 'plan', 'single' } else { 'single', 'plan' }
    foreach ($kind in $order) {
        $items = if ($kind -eq 'plan') { $names } else { @($names[0]) }
        $result = Measure-Failover $kind $round $items
        $runs.Add($result[0]); foreach ($r in $result[1]) { $machineRows.Add($r) }
    }
}

$runs | Export-Csv -Path ([IO.Path]::Combine($WorkDir, 'runs.csv')) -NoTypeInformation
$machineRows | Export-Csv -Path ([IO.Path]::Combine($WorkDir, 'machines.csv')) -NoTypeInformation

# ---- the tables: medians [min–max] over the rounds
$md = [Text.StringBuilder]::new()
[void]$md.AppendLine("$Machines machine(s): OS disk $OsDiskMB MiB + data disk $DataDiskMB MiB, $([math]::Round(100 * $DataFraction))% of 1 MiB regions data; $Rounds round(s); fake ARM async, an operation done on poll $AsyncPolls (the SDK polls at once, then no sooner than 1 s apart); seconds from the cmdlet call, median [min–max]")
[void]$md.AppendLine()
[void]$md.AppendLine('| run | machines | last VM PUT accepted s | job end s | per machine: first disk PUT s | first grant s | last revoke s | VM PUT s | uploaded MiB (of non-zero / disk MiB) | ARM requests | undo s | CPU s: ours / Azurite / fake |')
[void]$md.AppendLine('|---|---|---|---|---|---|---|---|---|---|---|---|')
foreach ($kind in 'plan', 'single') {
    $r = @($runs | Where-Object Kind -eq $kind); $m = @($machineRows | Where-Object Kind -eq $kind)
    if (-not $r) { continue }
    $label = if ($kind -eq 'plan') { "Start-AsrRecoveryPlan (1 group)" } else { 'Start-AsrFailover' }
    [void]$md.AppendLine(("| {0} | {1} | {2} | {3} | {4} | {5} | {6} | {7} | {8:F1} (of {9:F1} / {10:F0}) | {11} | {12} | {13} / {14} / {15} |" -f $label, $r[0].Machines,
        (Format-Stat $r.LastVmPutS), (Format-Stat $r.JobEndS), (Format-Stat $m.FirstDiskPutS), (Format-Stat $m.FirstGrantS), (Format-Stat $m.LastRevokeS), (Format-Stat $m.VmPutS),
        ((Get-Median $r.UploadedBytes) / 1MB), ((Get-Median $r.NonZeroBytes) / 1MB), ((Get-Median $r.DiskBytes) / 1MB),
        (Format-Stat $r.ArmRequests 'F0'), (Format-Stat $r.UndoS),
        (Format-Stat $r.OurCpuS 'F1'), (Format-Stat $r.AzuriteCpuS 'F1'), (Format-Stat $r.FakeCpuS 'F1')))
}
[void]$md.AppendLine()
[void]$md.AppendLine('Per machine of the plan runs (median over the rounds, seconds from the cmdlet call):')
[void]$md.AppendLine()
[void]$md.AppendLine('| machine | first disk PUT | first grant | last revoke | VM PUT accepted | upload window (grant → revoke) |')
[void]$md.AppendLine('|---|---|---|---|---|---|')
foreach ($n in $names) {
    $m = @($machineRows | Where-Object { $_.Kind -eq 'plan' -and $_.Machine -eq $n })
    if (-not $m) { continue }
    [void]$md.AppendLine(("| {0} | {1:F2} | {2:F2} | {3:F2} | {4:F2} | {5:F2} |" -f $n, (Get-Median $m.FirstDiskPutS), (Get-Median $m.FirstGrantS),
        (Get-Median $m.LastRevokeS), (Get-Median $m.VmPutS), (Get-Median ($m | ForEach-Object { $_.LastRevokeS - $_.FirstGrantS }))))
}
$text = $md.ToString()
[IO.File]::WriteAllText([IO.Path]::Combine($WorkDir, 'results.md'), $text)
[Console]::WriteLine()
[Console]::WriteLine($text)
[Console]::WriteLine("raw rows: $WorkDir/runs.csv, $WorkDir/machines.csv")
