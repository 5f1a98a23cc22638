<#
.SYNOPSIS
    The long form of the reliability suite (issue #12): the kill -9 loop with many trials per operation, every
    corruption mutation of every object kind, the bad-input catalogue; prints the counts table.
.DESCRIPTION
    Runs tests/Pester/Reliability.Tests.ps1 and BadInputs.Tests.ps1 through tests/Pester/Invoke-AsrPester.ps1 (the
    one Pester configuration CI uses) with ASR_SOAK_TRIALS = -Trials: each operation of the kill loop (enable, cycle,
    export, unplanned failover, an Unplanned plan of 2 machines; a cycle on a blob vault too) is killed -Trials times
    at seeded random moments, and the corruption tests take all three mutations (flip, truncate, delete) of every
    object kind instead of one. CI runs the same tests with one trial (the short form). Every area writes its counts
    to a report file (ASR_RELIABILITY_REPORT, one JSON line per area), which this script sums into the table:
    trials, kills that landed mid-operation, points lost, points corrupt, items that could not go on, corruption
    cases with categorised outcomes, bad inputs with the expected categorised error and nothing written.

    Needs a built module (dotnet pwsh ./build.ps1 -Task Build); the Blob rows need azurite-blob on PATH, the ext4
    disk-full test root. Run in the pinned pwsh: dotnet pwsh ./bench/reliability-soak.ps1 -Trials 20
.EXAMPLE
    dotnet pwsh ./bench/reliability-soak.ps1 -Trials 20 -Seed 7
#>
[CmdletBinding()]
param(
    # Kill trials per operation (ASR_SOAK_TRIALS).
    [int]$Trials = 20,
    # The seed of every random choice (ASR_RELIABILITY_SEED); the same seed repeats the same kill moments and corruptions.
    [int]$Seed = 12,
    [string[]]$Backend = @('Local', 'Blob'),
    # Where the counts (JSON lines), the NUnit results and the table go.
    [string]$WorkDir = ([IO.Path]::Combine([IO.Path]::GetTempPath(), 'asr-reliability-soak'))
)
$ErrorActionPreference = 'Stop'
$root = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..'))
[void][IO.Directory]::CreateDirectory($WorkDir)
$report = [IO.Path]::Combine($WorkDir, 'counts.jsonl')
if ([IO.File]::Exists($report)) { [IO.File]::Delete($report) }
$env:ASR_SOAK_TRIALS = "$Trials"
$env:ASR_RELIABILITY_SEED = "$Seed"
$env:ASR_RELIABILITY_REPORT = $report
$watch = [Diagnostics.Stopwatch]::StartNew()
$result = & ([IO.Path]::Combine($root, 'tests', 'Pester', 'Invoke-AsrPester.ps1')) -Path Reliability, BadInputs -Backend $Backend `
    -ResultPath ([IO.Path]::Combine($WorkDir, 'pester.xml')) -Output Normal -PassThru
$rows = @(Get-Content -LiteralPath $report | Where-Object { $_ } | ForEach-Object { $_ | ConvertFrom-Json })

function Sum($Rows, [string]$Name) { ($Rows | Where-Object { $null -ne $_.$Name } | Measure-Object -Property $Name -Sum).Sum }
$kill = @($rows | Where-Object Area -like 'kill -9 *')
$table = @(
    $rows | Select-Object Area, Backend, Trials, Kills, Lost, Corrupt, Stuck, Cases, Categorised, NothingWritten, Bugs
    [pscustomobject]@{ Area = 'kill -9, all operations'; Backend = '*'; Trials = Sum $kill Trials; Kills = Sum $kill Kills; Lost = Sum $kill Lost; Corrupt = Sum $kill Corrupt; Stuck = Sum $kill Stuck }
)
$text = @"
Reliability soak: $Trials trial(s) per operation, seed $Seed, backends $($Backend -join ', '), $([int]$watch.Elapsed.TotalMinutes) min
Pester: $($result.PassedCount) passed, $($result.FailedCount) failed, $($result.SkippedCount) skipped/pending

$(($table | Format-Table -AutoSize | Out-String -Width 220).Trim())
"@
[IO.File]::WriteAllText([IO.Path]::Combine($WorkDir, 'results.md'), $text)
$text
if ($result.FailedCount -gt 0) { exit 1 }
