<#
.SYNOPSIS
    bench/drill-rto.sh's work: the RTO of a boot-verified drill of a 10-machine recovery plan.
.DESCRIPTION
    Builds -Machines bootable test machines (tests/Boot/build-test-machine.sh once, then copies with their own content
    via set-machine-content.sh), protects them in a local vault, and for -Rounds rounds runs each plan shape:
      grouped : groups of 1, 3 and the rest (a database, application servers, web servers), in order;
      flat    : every machine in one group (all drilled and booted at once).
    A run is `Start-AsrRecoveryPlan -FailoverType Test -Boot` (each machine: drill from its latest point, QEMU from the
    drill's NBD exports, ready on the console line 'ASR-TEST-MACHINE READY' and its web port, check: the page shows
    the machine's own content), then a TestCleanup run. RTO = from the Test run's start until its last machine was ready
    (the run's Result.Note; computed again here from the tasks). Writes runs.csv (one line per run), machines.csv
    (per machine: drill start, boot start, ready after), results.md (medians), and the health report of the vault
    (report.html, and report.png from headless Chromium when it is installed).
#>
param(
    [Parameter(Mandatory)][string]$BootScripts,
    [int]$Machines = 10,
    [int]$Rounds = 3,
    [string[]]$Shapes = @('grouped', 'flat'),
    [int]$MemoryMiB = 256,
    [int]$BootTimeoutSeconds = 300,
    [string]$WorkDir = '/tmp/asr-drill-rto'
)
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
if (Test-Path $WorkDir) { Remove-Item -Recurse -Force $WorkDir }
$null = New-Item -ItemType Directory -Path $WorkDir, "$WorkDir/disks", "$WorkDir/drills"
$log = { param($m) "$([DateTime]::UtcNow.ToString('HH:mm:ss')) $m" }

# The machines: one build, then copies with their own marker.
$names = 1..$Machines | ForEach-Object { 'vm{0:D2}' -f $_ }
& bash "$BootScripts/build-test-machine.sh" "$WorkDir/disks/base.img" base 2>&1 | Out-Null
if ($LASTEXITCODE -ne 0) { throw 'build-test-machine.sh failed' }
New-AsrVault -Path "$WorkDir/vault" | Connect-AsrVault
New-AsrPolicy -Name bench | Out-Null
foreach ($n in $names) {
    Copy-Item "$WorkDir/disks/base.img" "$WorkDir/disks/$n.img"
    & bash "$BootScripts/set-machine-content.sh" "$WorkDir/disks/$n.img" "content-of-$n" 2>&1 | Out-Null
    if ($LASTEXITCODE -ne 0) { throw "set-machine-content.sh failed for $n" }
    Enable-AsrReplication -Name $n -Disk "$WorkDir/disks/$n.img" -Policy bench | Out-Null
}
& $log "$Machines machines protected"

$check = '{ param($m) $page = (Invoke-WebRequest "http://127.0.0.1:$($m.HostPort(8080))/" -TimeoutSec 30).Content; if ($page -match "ASR-CONTENT: (content-of-vm\d+)" -and $Matches[1] -eq "content-of-$($m.ItemName)") { $Matches[1] } else { $false } }'
$boot = "AsrBootCheck -Items $($names -join ', ') -ReadyPattern 'ASR-TEST-MACHINE READY' -ReadyPort 8080 -MemoryMiB $MemoryMiB -BootTimeoutSeconds $BootTimeoutSeconds -Check $check"
$plans = @{
    grouped = "AsrRecoveryPlan 'grouped' {`n  AsrGroup 1 -Items $($names[0])`n  AsrGroup 2 -Items $($names[1..3] -join ', ')`n  AsrGroup 3 -Items $($names[4..($Machines - 1)] -join ', ')`n  $boot`n}"
    flat    = "AsrRecoveryPlan 'flat' {`n  AsrGroup 1 -Items $($names -join ', ')`n  $boot`n}"
}
foreach ($shape in $Shapes) { Set-Content "$WorkDir/$shape.ps1" $plans[$shape] }

$runs = [Collections.Generic.List[object]]::new()
$machineRows = [Collections.Generic.List[object]]::new()
$target = New-AsrLocalTarget "$WorkDir/drills"
foreach ($round in 1..$Rounds) {
    foreach ($shape in $Shapes) {
        $load = (Get-Content /proc/loadavg).Split(' ')[0]
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $job = Start-AsrRecoveryPlan -Path "$WorkDir/$shape.ps1" -FailoverType Test -Target $target -Boot -ErrorAction Continue
        $total = $sw.Elapsed.TotalSeconds
        $tasks = @($job.Tasks | Where-Object Kind -eq Machine)
        $ready = @($tasks | Where-Object { $_.Boot.Booted })
        $rto = if ($ready.Count -eq $tasks.Count) { ($tasks | ForEach-Object { ($_.Boot.StartedUtc.AddSeconds($_.Boot.ReadyAfterSeconds) - $job.StartTimeUtc).TotalSeconds } | Measure-Object -Maximum).Maximum } else { [double]::NaN }
        foreach ($t in $tasks) {
            $machineRows.Add([pscustomobject]@{ Round = $round; Shape = $shape; Item = $t.Item; Group = $t.GroupId
                DrillStartS = [Math]::Round(($t.StartTimeUtc - $job.StartTimeUtc).TotalSeconds, 2)
                BootStartS = [Math]::Round(($t.Boot.StartedUtc - $job.StartTimeUtc).TotalSeconds, 2)
                ReadyAfterS = $t.Boot.ReadyAfterSeconds; Check = $t.Boot.CheckResult; Accelerator = $t.Boot.Accelerator })
        }
        $runs.Add([pscustomobject]@{ Round = $round; Shape = $shape; State = "$($job.State)"; Ready = "$($ready.Count)/$($tasks.Count)"
            RtoSeconds = [Math]::Round($rto, 1); RunSeconds = [Math]::Round($total, 1); Load = $load; Note = $job.Result.Note })
        & $log "round $round $shape : $($job.State), $($ready.Count)/$($tasks.Count) ready, RTO $([Math]::Round($rto, 1)) s (run $([Math]::Round($total, 1)) s, load $load)"
        $cleanup = Start-AsrRecoveryPlan -Path "$WorkDir/$shape.ps1" -FailoverType TestCleanup -ErrorAction Continue
        if ($cleanup.State -ne 'Succeeded') { throw "cleanup of $shape ended $($cleanup.State)" }
    }
}
$runs | Export-Csv "$WorkDir/runs.csv" -NoTypeInformation
$machineRows | Export-Csv "$WorkDir/machines.csv" -NoTypeInformation

function Median([double[]]$v) { $s = @($v | Where-Object { -not [double]::IsNaN($_) } | Sort-Object); if (-not $s) { return [double]::NaN }; $m = [int][Math]::Floor($s.Count / 2); if ($s.Count % 2) { $s[$m] } else { ($s[$m - 1] + $s[$m]) / 2 } }
$accel = ($machineRows | Select-Object -First 1).Accelerator
$md = [Collections.Generic.List[string]]::new()
$md.Add("# Boot-verified drill RTO, $Machines machines ($accel, $([Environment]::ProcessorCount) cores, $MemoryMiB MiB each), $(Get-Date -AsUTC -Format 'yyyy-MM-dd HH:mm') UTC")
$md.Add('')
$md.Add('| plan | runs | all ready | RTO median (min-max) | run median | per machine: ready after boot start, median (max) | drill start to boot start, median |')
$md.Add('|---|---|---|---|---|---|---|')
foreach ($shape in $Shapes) {
    $r = @($runs | Where-Object Shape -eq $shape); $m = @($machineRows | Where-Object Shape -eq $shape)
    $rtos = @($r.RtoSeconds)
    $md.Add("| $shape | $($r.Count) | $(@($r | Where-Object { $_.Ready -eq "$Machines/$Machines" }).Count)/$($r.Count) | $('{0:0.0}' -f (Median $rtos)) s ($('{0:0.0}' -f ($rtos | Measure-Object -Minimum).Minimum)-$('{0:0.0}' -f ($rtos | Measure-Object -Maximum).Maximum)) | $('{0:0.0}' -f (Median @($r.RunSeconds))) s | $('{0:0.0}' -f (Median @($m.ReadyAfterS))) s ($('{0:0.0}' -f ($m.ReadyAfterS | Measure-Object -Maximum).Maximum)) | $('{0:0.00}' -f (Median @($m | ForEach-Object { $_.BootStartS - $_.DrillStartS }))) s |")
}
$md.Add('')
$md.Add('Runs:')
$md.Add('')
foreach ($r in $runs) { $md.Add("- round $($r.Round) $($r.Shape): $($r.State), $($r.Ready) ready, RTO $($r.RtoSeconds) s, run $($r.RunSeconds) s, load $($r.Load)") }
Set-Content "$WorkDir/results.md" $md
$md

Export-AsrHealthReport -Path "$WorkDir/report.html" -Days 1 | Out-Null
if (Get-Command chromium -ErrorAction Ignore) {
    & chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run --window-size=1280,2600 "--user-data-dir=$WorkDir/chromium" "--screenshot=$WorkDir/report.png" "file://$WorkDir/report.html" 2>$null | Out-Null
}
"report: $WorkDir/report.html"
