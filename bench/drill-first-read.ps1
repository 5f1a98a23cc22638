<#
.SYNOPSIS
    Time from Start-AsrTestFailover to the first read by a real NBD client, per disk size.
.DESCRIPTION
    Run by bench/drill-first-read.sh in the pinned pwsh. For each image: protect it, then time
    (a) the drill job (ReadyAfterMilliseconds: until every disk is served) and (b) from the cmdlet
    call until qemu-io has read 1 MiB at the start and 1 MiB at the end of the disk over NBD.
#>
param([Parameter(Mandatory)][string]$WorkDir, [Parameter(Mandatory)][string]$Images)  # images: comma-separated
$ErrorActionPreference = 'Stop'
Import-Module AsrModule
New-AsrVault -Path ([IO.Path]::Combine($WorkDir, 'vault')) | Connect-AsrVault
New-AsrPolicy -Name p | Out-Null
$target = New-AsrLocalTarget ([IO.Path]::Combine($WorkDir, 'drills'))
function Invoke-QemuRead([string]$Uri, [long]$Offset) {
    $psi = [Diagnostics.ProcessStartInfo]::new('qemu-io')
    foreach ($a in '-f', 'raw', '-c', "read $Offset 1M", $Uri) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true
    $p = [Diagnostics.Process]::Start($psi); [void]$p.StandardOutput.ReadToEnd(); $p.WaitForExit()
    if ($p.ExitCode -ne 0) { throw "qemu-io read failed for $Uri" }
}
foreach ($image in $Images.Split(',')) {
    $name = [IO.Path]::GetFileNameWithoutExtension($image)
    $size = [IO.FileInfo]::new($image).Length
    $enable = [Diagnostics.Stopwatch]::StartNew()
    Enable-AsrReplication -Name $name -Disk $image -Policy p | Out-Null
    $enable.Stop()
    $watch = [Diagnostics.Stopwatch]::StartNew()
    $drill = Get-AsrProtectedItem $name | Start-AsrTestFailover -Target $target
    $uri = $drill.Result.Exports[[IO.Path]::GetFileName($image)]
    Invoke-QemuRead $uri 0
    $firstRead = $watch.ElapsedMilliseconds
    Invoke-QemuRead $uri ($size - 1MB)
    $lastRead = $watch.ElapsedMilliseconds
    Get-AsrProtectedItem $name | Start-AsrTestFailoverCleanup -Confirm:$false | Out-Null
    [Console]::WriteLine("BENCH disk=$name sizeGiB=$([math]::Round($size / 1GB, 2)) initialReplicationS=$([math]::Round($enable.Elapsed.TotalSeconds, 1)) drillReadyMs=$($drill.Result.ReadyAfterMilliseconds) firstReadMs=$firstRead lastMiBReadMs=$lastRead")
}
