<#
.SYNOPSIS
    Runs tests/Pester under real Pester: the one PesterConfiguration that build.ps1 (and so CI) uses.
.DESCRIPTION
    The backend matrix is Pester data: a test file that declares a -Backend parameter runs once per vault
    backend as its own container (Local: a directory; Blob: a container in a real Azurite that this script
    starts on 127.0.0.1 and stops at the end); a file without one manages its own vaults and runs once.
    Without azurite-blob (and CI not set) the Blob containers are not run and the run says so; under
    CI=true a missing Azurite fails the run instead.

    Tags: Slow (a minute or more), Qemu (a real qemu-system guest), LoopDevice (loop devices and
    filesystems, needs root), Mount (a vault on a small tmpfs, remounted read-only; needs root), Agent (real agent processes), Azure (failover into Azure against the fake
    Resource Manager of tests/FakeArm and Azurite), Host (real pwsh host behaviour: Ctrl+C, jobs,
    completion, formatting), Scale (a sparse 1 TiB disk end to end). Tests whose tool is missing are reported as skipped with the reason.

    Results: NUnit XML (-ResultPath) and the Pester result object (-PassThru).
.EXAMPLE
    ./tests/Pester/Invoke-AsrPester.ps1 -Backend Local -Path Lifecycle
.EXAMPLE
    ./tests/Pester/Invoke-AsrPester.ps1 -ExcludeTag Slow, Qemu
#>
[CmdletBinding()]
param(
    # Local, Blob or both.
    [string[]]$Backend = @('Local', 'Blob'),
    # File name filters (wildcards, without .Tests.ps1): Lifecycle, Plan*
    [string[]]$Path = @('*'),
    [string[]]$Tag,
    [string[]]$ExcludeTag,
    [string]$ResultPath,
    # A JSON file with the counts build.ps1 sums: Passed, Failed (failed tests, blocks and files), Skipped.
    [string]$SummaryPath,
    [ValidateSet('None', 'Normal', 'Detailed', 'Diagnostic')]
    [string]$Output = 'Detailed',
    [switch]$PassThru
)
$ErrorActionPreference = 'Stop'
# `pwsh -File` passes "a,b" as one string: lists are split on commas.
function Split-List([string[]]$List) { @($List | ForEach-Object { $_ -split ',' } | ForEach-Object { $_.Trim() } | Where-Object { $_ }) }
$Backend = Split-List $Backend; $Path = Split-List $Path; $Tag = Split-List $Tag; $ExcludeTag = Split-List $ExcludeTag
foreach ($b in $Backend) { if ($b -notin 'Local', 'Blob') { throw "Unknown backend '$b': Local or Blob." } }
# Test code sees this script's variables through PowerShell's dynamic scoping: keep none that a test file may
# mean for itself ($Backend is a matrix file's own parameter; a file without one must not see ours).
$selectedBackends = $Backend; $fileFilters = $Path; $includeTags = $Tag; $excludeTags = $ExcludeTag
Remove-Variable -Name Backend, Path, Tag, ExcludeTag
$testsDir = $PSScriptRoot
$repoRoot = [IO.Path]::GetFullPath([IO.Path]::Combine($testsDir, '..', '..'))
. ([IO.Path]::Combine($testsDir, 'TestAzurite.ps1'))

# The module under test and Pester, both built by `dotnet build` (src/AsrModule packages out/AsrModule;
# tests/Pester/AsrModule.Tests.Pester.csproj restores Pester to tests/Pester/bin/Modules/Pester).
$moduleOut = [IO.Path]::Combine($repoRoot, 'out')
if (-not [IO.File]::Exists([IO.Path]::Combine($moduleOut, 'AsrModule', 'AsrModule.psd1'))) { throw "out/AsrModule is not built: run ./build.ps1 -Task Build first." }
$pesterManifest = [IO.Path]::Combine($testsDir, 'bin', 'Modules', 'Pester', 'Pester.psd1')
if (-not [IO.File]::Exists($pesterManifest)) { throw "Pester is not restored at ${pesterManifest}: run ./build.ps1 -Task Build first." }
# Test files and the child processes they start use `Import-Module AsrModule` by name.
if (-not ($env:PSModulePath -split [IO.Path]::PathSeparator -contains $moduleOut)) {
    $env:PSModulePath = $moduleOut + [IO.Path]::PathSeparator + $env:PSModulePath
}
Import-Module $pesterManifest -Force

$files = Get-ChildItem -LiteralPath $testsDir -Filter '*.Tests.ps1' | Sort-Object Name |
    Where-Object { $n = $_.Name -replace '\.Tests\.ps1$'; @($fileFilters | Where-Object { $n -like $_ }).Count -gt 0 }
if (-not $files) { throw "No test file matches $($fileFilters -join ', ')." }

$azurite = $null
$containers = [Collections.Generic.List[object]]::new()
$notRun = [Collections.Generic.List[string]]::new()
$matrixFiles = @($files | Where-Object { (Get-Command $_.FullName).Parameters.ContainsKey('Backend') })
if ($selectedBackends -contains 'Blob' -and $matrixFiles) {
    $reason = Get-AzuriteSkipReason
    if ($reason) { $notRun.Add("Blob backend not run: $reason") }
    else {
        $azurite = Start-TestAzurite
        Set-TestBlobEnvironment $azurite
    }
}
foreach ($file in $files) {
    if ($matrixFiles -contains $file) {
        foreach ($b in $selectedBackends) {
            if ($b -eq 'Blob' -and -not $azurite) { continue }
            $containers.Add((New-PesterContainer -Path $file.FullName -Data @{ Backend = $b }))
        }
    } else {
        $containers.Add((New-PesterContainer -Path $file.FullName))
    }
}

$configuration = New-PesterConfiguration
$configuration.Run.Container = $containers.ToArray()
$configuration.Run.PassThru = $true
$configuration.Output.Verbosity = $Output
$configuration.Output.RenderMode = if ($env:CI -eq 'true' -or [Console]::IsOutputRedirected) { 'Plaintext' } else { 'Auto' }
$configuration.Should.ErrorAction = 'Stop'
if ($includeTags) { $configuration.Filter.Tag = $includeTags }
if ($excludeTags) { $configuration.Filter.ExcludeTag = $excludeTags }
if ($ResultPath) {
    [void][IO.Directory]::CreateDirectory([IO.Path]::GetDirectoryName([IO.Path]::GetFullPath($ResultPath)))
    $configuration.TestResult.Enabled = $true
    $configuration.TestResult.OutputFormat = 'NUnitXml'
    $configuration.TestResult.OutputPath = $ResultPath
}

foreach ($line in $notRun) { Write-Warning $line }
try {
    $result = Invoke-Pester -Configuration $configuration
} finally {
    Stop-TestAzurite $azurite
}
foreach ($line in $notRun) { Write-Warning $line }
if ($SummaryPath) {
    # A failed BeforeAll/AfterAll or a file that did not load fails too, not only failed Its.
    [ordered]@{
        Passed  = $result.PassedCount
        Failed  = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
        Skipped = $result.SkippedCount + $result.NotRunCount
        NotRun  = @($notRun)
    } | ConvertTo-Json | Set-Content -LiteralPath $SummaryPath
}
if ($PassThru) { $result }
