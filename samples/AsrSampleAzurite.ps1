# Helpers to run a private Azurite (the Azure Storage emulator, blob service only) for demos and benches.
# Plain pwsh and .NET calls (no other module needed).

# Azurite's single account and its well-known development key (public, not a secret).
$script:AsrSampleAzuriteAccount = 'devstoreaccount1'
$script:AsrSampleAzuriteKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

function Start-AsrSampleAzurite {
    <#
    Starts azurite-blob on a free 127.0.0.1 port with its data in DataPath, waits until it accepts
    connections and returns { Process; Port; DataPath; BlobEndpoint; ConnectionString; StdOut; StdErr (tasks) }.
    Stop it with Stop-AsrSampleAzurite (also on failure: put it in a finally block).
    #>
    param([Parameter(Mandatory)][string]$DataPath, [int]$TimeoutSeconds = 30)
    $command = @(Get-Command azurite-blob -CommandType Application -ErrorAction SilentlyContinue)
    if ($command.Count -eq 0) {
        throw "azurite-blob was not found on PATH. Install the Azure Storage emulator with 'npm install -g azurite' (needs Node.js), or run the scenario with -Backend Local."
    }
    $exe = $command[0].Source
    [void][IO.Directory]::CreateDirectory($DataPath)
    $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
    $listener.Start()
    $port = $listener.LocalEndpoint.Port
    $listener.Stop()

    $psi = [Diagnostics.ProcessStartInfo]::new($exe)
    $psi.UseShellExecute = $false
    $psi.RedirectStandardOutput = $true
    $psi.RedirectStandardError = $true
    foreach ($a in '--blobHost', '127.0.0.1', '--blobPort', "$port", '--location', $DataPath, '--skipApiVersionCheck', '--loose', '--silent', '--disableTelemetry') {
        $psi.ArgumentList.Add($a)
    }
    $process = [Diagnostics.Process]::Start($psi)
    # Drained by tasks (no script block runs on another thread); read when something goes wrong.
    $stdout = $process.StandardOutput.ReadToEndAsync()
    $stderr = $process.StandardError.ReadToEndAsync()
    $endpoint = "http://127.0.0.1:$port/$script:AsrSampleAzuriteAccount"
    $azurite = [pscustomobject]@{
        Process          = $process
        Port             = $port
        DataPath         = $DataPath
        BlobEndpoint     = $endpoint
        ConnectionString = "DefaultEndpointsProtocol=http;AccountName=$script:AsrSampleAzuriteAccount;AccountKey=$script:AsrSampleAzuriteKey;BlobEndpoint=$endpoint;"
        StdOut           = $stdout
        StdErr           = $stderr
    }
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        if ($process.HasExited) {
            [void]$process.WaitForExit(2000)
            throw "azurite-blob ($exe) exited with code $($process.ExitCode) on port ${port}: $($stdout.Result) $($stderr.Result)"
        }
        $probe = [Net.Sockets.TcpClient]::new()
        try { $probe.Connect([Net.IPAddress]::Loopback, $port); return $azurite }
        catch [Net.Sockets.SocketException] { }
        finally { $probe.Dispose() }
        if ([DateTime]::UtcNow -gt $deadline) {
            Stop-AsrSampleAzurite $azurite
            throw "azurite-blob did not listen on port $port within $TimeoutSeconds s."
        }
        [Threading.Thread]::Sleep(100)
    }
}

function Stop-AsrSampleAzurite {
    <# Stops an Azurite from Start-AsrSampleAzurite with SIGTERM (it saves its metadata), SIGKILL after 15 s. #>
    param([Parameter(Mandatory)]$Azurite)
    $process = $Azurite.Process
    if (-not $process) { return }
    try {
        if (-not $process.HasExited) {
            if ([OperatingSystem]::IsWindows()) { $process.Kill($true) }
            else {
                $kill = [Diagnostics.Process]::Start('/bin/sh', [string[]]@('-c', 'kill -TERM "$1"', 'sh', "$($process.Id)"))
                [void]$kill.WaitForExit(5000)
                $kill.Dispose()
            }
            if (-not $process.WaitForExit(15000)) { $process.Kill($true) }
        }
        $process.WaitForExit()
    }
    finally { $process.Dispose() }
}

function Get-AsrSampleVaultBytes {
    <# Bytes of every object in a vault (either backend): what the vault stores. #>
    param([Parameter(Mandatory)]$Vault)
    $total = 0L
    foreach ($o in $Vault.Store.ListAsync('', [Threading.CancellationToken]::None).GetAwaiter().GetResult()) { $total += $o.Length }
    $total
}
