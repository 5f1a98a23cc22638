<#
.SYNOPSIS
    The one entry point: builds, tests, packages AsrModule and runs the DR scenario, in the pinned pwsh.
.DESCRIPTION
    Run it with the PowerShell pinned in .config/dotnet-tools.json (a fresh machine needs only the .NET SDK):

        dotnet tool restore && dotnet pwsh ./build.ps1 -Task Test

    Tasks (several may be given; each builds first):
      Build     dotnet build: the module in out/AsrModule (manifest, cmdlets in Dependencies/, help, agent),
                Pester restored to tests/Pester/bin/Modules/Pester.
      Unit      the xunit engine tests (tests/Unit).
      Pester    tests/Pester under real Pester (tests/Pester/Invoke-AsrPester.ps1: the backend matrix, tags).
      Test      Unit and Pester side by side (xunit in a second process; the package is made first, for
                Package.Tests.ps1), then one summary;
                the last line is "N passed, N failed", summed over both.
      Package   out/packages/AsrModule.<version>.nupkg, installable with Install-PSResource; its assemblies are
                precompiled for this platform (dotnet publish -p:PublishReadyToRun=true).
      Scenario  samples/dr-scenario.ps1 (-ScenarioBackend Local or Azurite).
      All       Build, Test, Package.
    Test results: out/test-results/unit.trx (xunit) and out/test-results/pester.xml (NUnit).
.EXAMPLE
    dotnet pwsh ./build.ps1 -Task Test                     # everything CI runs
.EXAMPLE
    dotnet pwsh ./build.ps1 -Task Pester -Backend Local -TestPath Lifecycle, Plans -ExcludeTag Slow
.EXAMPLE
    dotnet pwsh ./build.ps1 -Task Package                  # out/packages/AsrModule.0.1.0.nupkg
.EXAMPLE
    dotnet pwsh ./build.ps1 -Task Scenario -ScenarioBackend Azurite
#>
[CmdletBinding()]
param(
    # All, Build, Unit, Pester, Test, Package, Scenario.
    [string[]]$Task = 'All',
    [ValidateSet('Debug', 'Release')]
    [string]$Configuration = 'Release',
    # Pester: which vault backends the matrix files run on.
    [string[]]$Backend = @('Local', 'Blob'),
    # Pester: test file filters (Lifecycle, Plan*); tags to run or leave out (Slow, Qemu, LoopDevice, Agent, Azurite, Azure, Host).
    [string[]]$TestPath = @('*'),
    [string[]]$Tag,
    [string[]]$ExcludeTag,
    # Unit: an xunit --filter expression.
    [string]$UnitFilter,
    [ValidateSet('Local', 'Azurite')]
    [string]$ScenarioBackend = 'Local'
)
$ErrorActionPreference = 'Stop'
$root = $PSScriptRoot
$results = Join-Path $root 'out/test-results'
# `pwsh -File` passes "a,b" as one string: lists are split on commas.
function Split-List([string[]]$List) { @($List | ForEach-Object { $_ -split ',' } | ForEach-Object { $_.Trim() } | Where-Object { $_ }) }
$Task = Split-List $Task; $Backend = Split-List $Backend; $TestPath = Split-List $TestPath; $Tag = Split-List $Tag; $ExcludeTag = Split-List $ExcludeTag
$tasks = [Collections.Generic.HashSet[string]]::new([StringComparer]::OrdinalIgnoreCase)
foreach ($t in $Task) {
    if ($t -notin 'All', 'Build', 'Unit', 'Pester', 'Test', 'Package', 'Scenario') { throw "Unknown task '$t': All, Build, Unit, Pester, Test, Package or Scenario." }
    if ($t -eq 'All') { 'Build', 'Test', 'Package' | ForEach-Object { [void]$tasks.Add($_) } }
    elseif ($t -eq 'Test') { 'Unit', 'Pester' | ForEach-Object { [void]$tasks.Add($_) } }
    else { [void]$tasks.Add($t) }
}

function Invoke-Dotnet {
    & dotnet @args
    if ($LASTEXITCODE -ne 0) { throw "dotnet $args failed with exit code $LASTEXITCODE" }
}

function Get-PwshArguments {
    <# What starts another pwsh like this one, after the host: the pinned dotnet tool runs as `dotnet <PSHOME>/pwsh.dll`. #>
    if ([IO.Path]::GetFileNameWithoutExtension([Environment]::ProcessPath) -eq 'dotnet') { @([IO.Path]::Combine($PSHOME, 'pwsh.dll')) } else { @() }
}

function Get-TrxCounts([string]$Path) {
    <# passed/failed/skipped of an xunit run from its TRX file. #>
    if (-not (Test-Path $Path)) { return $null }
    $counters = ([xml](Get-Content -Raw $Path)).TestRun.ResultSummary.Counters
    [pscustomobject]@{ Passed = [int]$counters.passed; Failed = [int]$counters.failed + [int]$counters.error + [int]$counters.timeout + [int]$counters.aborted; Skipped = [int]$counters.notExecuted }
}

# ---- Build: always (the other tasks need out/AsrModule and Pester) ----
$started = [Diagnostics.Stopwatch]::StartNew()
Write-Host "== build ($Configuration)"
Invoke-Dotnet build (Join-Path $root 'AsrModule.sln') -c $Configuration -nologo -v q '-clp:NoSummary;ErrorsOnly'
Write-Host "   module packaged at $(Join-Path $root 'out/AsrModule') ($([int]$started.Elapsed.TotalSeconds) s)"

# Package before Pester: tests/Pester/Package.Tests.ps1 installs this nupkg.
if ($tasks.Contains('Package') -or $tasks.Contains('Pester')) {
    # The packaged module is precompiled for this platform (ReadyToRun; the IL stays, so other platforms JIT it).
    $rid = [Runtime.InteropServices.RuntimeInformation]::RuntimeIdentifier
    Write-Host "== ReadyToRun ($rid): out/AsrModule/Dependencies"
    Invoke-Dotnet publish (Join-Path $root 'src/AsrModule') -c $Configuration -r $rid --self-contained false '-p:PublishReadyToRun=true' -nologo -v q '-clp:NoSummary;ErrorsOnly'
    $packages = Join-Path $root 'out/packages'
    [void][IO.Directory]::CreateDirectory($packages)
    $version = (Import-PowerShellDataFile (Join-Path $root 'out/AsrModule/AsrModule.psd1')).ModuleVersion
    Remove-Item (Join-Path $packages "AsrModule.$version.nupkg") -ErrorAction Ignore
    Compress-PSResource -Path (Join-Path $root 'out/AsrModule') -DestinationPath $packages
    $nupkg = Join-Path $packages "AsrModule.$version.nupkg"
    if (-not (Test-Path $nupkg)) { throw "Compress-PSResource wrote no $nupkg" }
    Write-Host "== package: $nupkg ($([math]::Round((Get-Item $nupkg).Length / 1MB, 1)) MiB)"
}

$summary = [ordered]@{}
$failed = $false

if ($tasks.Contains('Unit') -or $tasks.Contains('Pester')) {
    [void][IO.Directory]::CreateDirectory($results)
    $unit = $null
    if ($tasks.Contains('Unit')) {
        # xunit runs in its own process beside Pester (most tests wait on I/O); its console goes to a log
        # that is printed when it ends, so the two outputs do not interleave.
        $unitLog = Join-Path $results 'unit.log'
        $trx = Join-Path $results 'unit.trx'
        Remove-Item $trx -ErrorAction Ignore
        $arguments = @('test', (Join-Path $root 'tests/Unit/AsrModule.Tests.Unit.csproj'), '-c', $Configuration, '--no-build', '--nologo',
            '--logger', 'trx;LogFileName=unit.trx', '--logger', 'console;verbosity=normal', '--results-directory', $results)
        if ($UnitFilter) { $arguments += @('--filter', $UnitFilter) }
        Write-Host "== xunit (tests/Unit) started in the background; output: $unitLog"
        $unit = Start-Process -FilePath 'dotnet' -ArgumentList $arguments -RedirectStandardOutput $unitLog -RedirectStandardError (Join-Path $results 'unit.err.log') -PassThru -NoNewWindow
    }
    try {
        if ($tasks.Contains('Pester')) {
            Write-Host "== Pester (tests/Pester), backends: $($Backend -join ', ')"
            # In its own pwsh: the tests get a fresh session (modules, globals) and none of this script's variables.
            $summaryFile = Join-Path $results 'pester-summary.json'
            Remove-Item $summaryFile -ErrorAction Ignore
            $pesterArgs = @('-NoProfile', '-File', (Join-Path $root 'tests/Pester/Invoke-AsrPester.ps1'), '-Backend', ($Backend -join ','),
                '-Path', ($TestPath -join ','), '-ResultPath', (Join-Path $results 'pester.xml'), '-SummaryPath', $summaryFile)
            if ($Tag) { $pesterArgs += @('-Tag', ($Tag -join ',')) }
            if ($ExcludeTag) { $pesterArgs += @('-ExcludeTag', ($ExcludeTag -join ',')) }
            # Started through ProcessStartInfo.ArgumentList: a native call from pwsh would glob an argument such as '*'.
            $psi = [Diagnostics.ProcessStartInfo]::new([Environment]::ProcessPath)
            foreach ($a in @(Get-PwshArguments) + $pesterArgs) { $psi.ArgumentList.Add($a) }
            $psi.UseShellExecute = $false
            $pesterProcess = [Diagnostics.Process]::Start($psi)
            $pesterProcess.WaitForExit()
            $summary.Pester = if (Test-Path $summaryFile) { Get-Content -Raw $summaryFile | ConvertFrom-Json }
                              else { [pscustomobject]@{ Passed = 0; Failed = 1; Skipped = 0 } }   # the runner itself failed
        }
    } finally {
        if ($unit) {
            $unit.WaitForExit()
            Write-Host "== xunit output"
            Get-Content (Join-Path $results 'unit.log') | Write-Host
            $counts = Get-TrxCounts $trx
            if (-not $counts -or $unit.ExitCode -ne 0 -and $counts.Failed -eq 0) {
                # No TRX, or a failing exit without a failed test (a crash, a build problem): one failure.
                $counts = [pscustomobject]@{ Passed = if ($counts) { $counts.Passed } else { 0 }; Failed = 1; Skipped = if ($counts) { $counts.Skipped } else { 0 } }
                Get-Content (Join-Path $results 'unit.err.log') -ErrorAction Ignore | Write-Host
            }
            $summary.Unit = $counts
        }
    }
}

if ($tasks.Contains('Scenario')) {
    Write-Host "== DR scenario (samples/dr-scenario.ps1 -Backend $ScenarioBackend)"
    $env:PSModulePath = (Join-Path $root 'out') + [IO.Path]::PathSeparator + $env:PSModulePath
    & (Join-Path $root 'samples/dr-scenario.ps1') -Backend $ScenarioBackend
    if (-not $?) { $failed = $true }
}

if ($summary.Count -gt 0) {
    $passed = 0; $failedCount = 0; $skipped = 0
    foreach ($k in $summary.Keys) {
        $c = $summary[$k]
        Write-Host ("{0,-7} {1} passed, {2} failed, {3} skipped" -f $k, $c.Passed, $c.Failed, $c.Skipped)
        $passed += $c.Passed; $failedCount += $c.Failed; $skipped += $c.Skipped
    }
    Write-Host "tests took $([math]::Floor($started.Elapsed.TotalMinutes)) min $($started.Elapsed.Seconds) s; results in $results; $skipped skipped"
    if ($failedCount -gt 0) { $failed = $true }
    # The last line, exactly "N passed, N failed": what CI reads.
    Write-Host "$passed passed, $failedCount failed"
}
if ($failed) { exit 1 }
