<#
.SYNOPSIS
    Requests per cycle on a blob vault as an item's points accumulate (issue #15: a cycle's cost must grow with what
    changed, not with what the item keeps). One step of bench/cycle-requests.sh: run in the pinned pwsh with the module
    under test first on PSModulePath.
.DESCRIPTION
    Starts its own Azurite (tests/Pester/TestAzurite.ps1, debug log on), creates an encrypted blob vault with a policy
    that keeps every point (-CrashConsistentFrequencySeconds 30, 24 h retention), protects one item of a 1 MiB disk, then
    runs -Cycles cycles with Invoke-AsrReplication, each after rewriting one 4 KiB block. Azurite's own log counts the
    requests each cycle made (between the instants before and after the cmdlet). Prints 'CYCLE n=<points before>
    requests=<n> gets=<n> lists=<n> puts=<n> deletes=<n> seconds=<s>' per cycle.
#>
param([int]$Cycles = 40, [string]$Work = (Join-Path ([IO.Path]::GetTempPath()) "asr-cycle-requests-$PID"))
$ErrorActionPreference = 'Stop'
. (Join-Path $PSScriptRoot '../tests/Pester/TestAzurite.ps1')
Import-Module AsrModule
$inv = [Globalization.CultureInfo]::InvariantCulture
[void][IO.Directory]::CreateDirectory($Work)
$server = Start-TestAzurite -DebugLog
try {
    $disk = Join-Path $Work 'disk.img'
    $bytes = [byte[]]::new(1MB); [Random]::new(7).NextBytes($bytes); [IO.File]::WriteAllBytes($disk, $bytes)
    New-AsrVault -ConnectionString $server.ConnectionString -Container 'cycles' -EncryptionKey 'bench-passphrase-0123456789' | Connect-AsrVault
    New-AsrPolicy -Name keepall -CrashConsistentFrequencySeconds 30 -AppConsistentFrequencyHours 0 -RecoveryPointRetentionHours 24 | Out-Null
    Enable-AsrReplication -Name item -Disk $disk -Policy keepall | Out-Null
    $block = [byte[]]::new(4096)
    for ($n = 1; $n -le $Cycles; $n++) {
        [Random]::new(1000 + $n).NextBytes($block)
        $fs = [IO.File]::OpenWrite($disk); try { $fs.Position = ($n % 256) * 4096; $fs.Write($block, 0, 4096) } finally { $fs.Dispose() }
        Start-Sleep -Milliseconds 20
        $from = [DateTimeOffset]::UtcNow
        $sw = [Diagnostics.Stopwatch]::StartNew()
        $job = Get-AsrProtectedItem item | Invoke-AsrReplication
        $seconds = $sw.Elapsed.TotalSeconds
        Start-Sleep -Milliseconds 300 # Azurite writes its log line as it answers
        $to = [DateTimeOffset]::UtcNow.AddMilliseconds(-280)
        if ("$($job.State)" -ne 'Succeeded') { throw "cycle $n ended $($job.State)" }
        $r = @(Measure-TestAzuriteRequests $server $from $to)
        $count = { param($m) @($r | Where-Object { $_.Method -eq $m }).Count }
        $lists = @($r | Where-Object { $_.Method -eq 'GET' -and $_.Url -match 'comp=list' }).Count
        [Console]::WriteLine("CYCLE n=$n requests=$($r.Count) gets=$((& $count 'GET') - $lists) lists=$lists puts=$(& $count 'PUT') deletes=$(& $count 'DELETE') heads=$(& $count 'HEAD') seconds=$($seconds.ToString('F3', $inv))")
    }
}
finally {
    Stop-TestAzurite $server
    [IO.Directory]::Delete($Work, $true)
}
