# Shared by the .Tests.ps1 files. Core cmdlets and .NET only (they run in the hosted engine and in pwsh).
. ([IO.Path]::Combine($PSScriptRoot, '..', '..', 'samples', 'AsrSampleDisks.ps1'))

function New-TestDirectory {
    $path = [IO.Path]::Combine([IO.Path]::GetTempPath(), 'asr-pester-' + [Guid]::NewGuid().ToString('N').Substring(0, 10))
    [void][IO.Directory]::CreateDirectory($path)
    $path
}

function Remove-TestDirectory([string]$Path) {
    if ($Path -and [IO.Directory]::Exists($Path)) { [IO.Directory]::Delete($Path, $true) }
}

function Join-TestPath([string]$Base, [string]$Child) { [IO.Path]::Combine($Base, $Child) }

function Get-VaultSnapshot([string]$VaultPath) {
    <# Every file of the vault with its size and hash: equal snapshots mean nothing changed. #>
    $lines = foreach ($f in [IO.Directory]::EnumerateFiles($VaultPath, '*', [IO.SearchOption]::AllDirectories)) {
        if ($f.EndsWith('.lock')) { continue }
        "$($f.Substring($VaultPath.Length)) $(Get-AsrSampleHash $f)"
    }
    (@($lines) | Sort-AsrLines) -join "`n"
}

function Sort-AsrLines { $list = [Collections.Generic.List[string]]::new(); foreach ($l in $input) { $list.Add($l) }; $list.Sort([StringComparer]::Ordinal); $list }

function Get-DirectoryBytes([string]$Path) {
    $total = 0L
    foreach ($f in [IO.Directory]::EnumerateFiles($Path, '*', [IO.SearchOption]::AllDirectories)) { $total += [IO.FileInfo]::new($f).Length }
    $total
}

function Start-AsrHostProcess([string]$Command) {
    <# Another real PowerShell process (the hosted engine in AsrHost) running $Command. #>
    $psi = [Diagnostics.ProcessStartInfo]::new('dotnet')
    $psi.ArgumentList.Add($env:ASRHOST_DLL)
    $psi.ArgumentList.Add('-Command')
    $psi.ArgumentList.Add($Command)
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    $psi.UseShellExecute = $false
    $psi.Environment['ASRMODULE_OUT'] = $env:ASRMODULE_OUT
    [Diagnostics.Process]::Start($psi)
}

function Invoke-AsrHostProcess([string]$Command) {
    $p = Start-AsrHostProcess $Command
    $out = $p.StandardOutput.ReadToEndAsync()
    $err = $p.StandardError.ReadToEndAsync()
    if (-not $p.WaitForExit(120000)) { $p.Kill($true); throw "AsrHost timed out running: $Command" }
    [pscustomobject]@{ ExitCode = $p.ExitCode; Output = $out.Result; Error = $err.Result }
}

function Get-ExportedHashes($Point, [string]$Destination) {
    <# Exports a point and returns @{ diskName = sha256 }. #>
    $job = $Point | Export-AsrRecoveryPoint -Destination $Destination -ErrorAction Stop
    $hashes = @{}
    foreach ($f in $job.Result.Files) { $hashes[[IO.Path]::GetFileName($f)] = Get-AsrSampleHash $f }
    $hashes
}

function Initialize-TestVault([string]$Dir, [string[]]$Machines = @(), [long]$SizeBytes = 1MB) {
    <# A connected vault in $Dir with policy 'p' and each machine protected (one sample disk each). #>
    $vaultPath = Join-TestPath $Dir 'vault'
    New-AsrVault -Path $vaultPath | Connect-AsrVault
    New-AsrPolicy -Name p | Out-Null
    $seed = 0
    foreach ($m in $Machines) {
        $disk = Join-TestPath $Dir "$m.img"
        New-AsrSampleDisk -Path $disk -SizeBytes $SizeBytes -Seed (++$seed) | Out-Null
        Enable-AsrReplication -Name $m -Disk $disk -Policy p | Out-Null
    }
    $vaultPath
}

function Invoke-Native([string]$File, [string[]]$Arguments) {
    <# Runs a program (losetup, mount, mkfs...) and returns its trimmed output; throws with its stderr when it fails. #>
    $psi = [Diagnostics.ProcessStartInfo]::new($File)
    foreach ($a in $Arguments) { $psi.ArgumentList.Add($a) }
    $psi.RedirectStandardOutput = $true; $psi.RedirectStandardError = $true
    $p = [Diagnostics.Process]::Start($psi)
    $out = $p.StandardOutput.ReadToEnd(); $err = $p.StandardError.ReadToEnd(); $p.WaitForExit()
    if ($p.ExitCode -ne 0) { throw "$File $Arguments failed ($($p.ExitCode)): $err $out" }
    $out.Trim()
}
