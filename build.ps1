<#
.SYNOPSIS
    Builds, tests and packages AsrModule (out/AsrModule) from pwsh.
.DESCRIPTION
    Everything also works with the .NET SDK alone: `dotnet build` packages out/AsrModule, and
    `dotnet test AsrModule.sln` runs the xunit tests and the tests/Pester scripts under the
    PowerShell 7.6 engine hosted in-process. With Pester 5 installed, -Task Pester runs the same
    scripts under real Pester in this pwsh.
.EXAMPLE
    ./build.ps1                      # build (Release) and run every test
.EXAMPLE
    ./build.ps1 -Task Package        # just out/AsrModule
.EXAMPLE
    ./build.ps1 -Task Pester         # tests/Pester under Invoke-Pester
#>
[CmdletBinding()]
param(
    [ValidateSet('All', 'Package', 'Test', 'Pester')]
    [string]$Task = 'All',
    [ValidateSet('Debug', 'Release')]
    [string]$Configuration = 'Release'
)
$ErrorActionPreference = 'Stop'
$root = $PSScriptRoot

function Invoke-Dotnet {
    & dotnet @args
    if ($LASTEXITCODE -ne 0) { throw "dotnet $args failed with exit code $LASTEXITCODE" }
}

if ($Task -in 'All', 'Package', 'Pester') {
    # Building AsrHost builds the module and packages out/AsrModule (manifest, formats, help).
    Invoke-Dotnet build (Join-Path $root 'tools/AsrHost/AsrHost.csproj') -c $Configuration
    Write-Host "Module packaged at $(Join-Path $root 'out/AsrModule')"
}
if ($Task -in 'All', 'Test') {
    Invoke-Dotnet test (Join-Path $root 'AsrModule.sln') -c $Configuration
}
if ($Task -eq 'Pester') {
    $env:PSModulePath = (Join-Path $root 'out') + [IO.Path]::PathSeparator + $env:PSModulePath
    $env:ASRMODULE_OUT = Join-Path $root 'out'
    $env:ASRHOST_DLL = Join-Path $root "tools/AsrHost/bin/$Configuration/net10.0/AsrHost.dll"
    Import-Module Pester -MinimumVersion 5.0
    Invoke-Pester -Path (Join-Path $root 'tests/Pester') -Output Detailed
}
