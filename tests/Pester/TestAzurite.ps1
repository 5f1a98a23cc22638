# A real Azure Blob endpoint for the tests: azurite-blob (npm package azurite) on a free 127.0.0.1 port, its
# data in a temp folder, stopped with SIGTERM. Used by the Pester run (one Azurite for every file of the Blob
# backend, see Invoke-AsrPester.ps1) and by the files that start their own (BlobVault, Isolation).

# Azurite's well-known development account and key (public): the "secret" whose every form must stay out of records.
$TestAzuriteAccount = 'devstoreaccount1'
$TestAzuriteAccountKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

function Get-AzuriteExecutable {
    <# The path of azurite-blob on PATH, or nothing. #>
    foreach ($d in ([string]$env:PATH).Split([IO.Path]::PathSeparator)) {
        if ($d -and [IO.File]::Exists([IO.Path]::Combine($d, 'azurite-blob'))) { return [IO.Path]::Combine($d, 'azurite-blob') }
    }
}

function Get-AzuriteSkipReason {
    <# Why Azurite tests cannot run here ($null when they can). Under CI=true they never skip: CI installs Azurite,
       and a missing one must fail the tests. #>
    if ((Get-AzuriteExecutable) -or $env:CI -eq 'true') { return $null }
    'azurite-blob is not installed (npm install -g azurite; under CI=true the tests fail instead)'
}

function Get-FreePort {
    $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
    $listener.Start()
    try { $listener.LocalEndpoint.Port } finally { $listener.Stop() }
}

function New-SelfSignedPem([string]$Directory) {
    <# A certificate for 127.0.0.1 / localhost, as PEM files Azurite serves https with. #>
    $rsa = [Security.Cryptography.RSA]::Create(2048)
    $request = [Security.Cryptography.X509Certificates.CertificateRequest]::new('CN=127.0.0.1', $rsa,
        [Security.Cryptography.HashAlgorithmName]::SHA256, [Security.Cryptography.RSASignaturePadding]::Pkcs1)
    $san = [Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder]::new()
    $san.AddIpAddress([Net.IPAddress]::Loopback)
    $san.AddDnsName('localhost')
    $request.CertificateExtensions.Add($san.Build())
    $certificate = $request.CreateSelfSigned([DateTimeOffset]::UtcNow.AddDays(-1), [DateTimeOffset]::UtcNow.AddDays(2))
    $cert = [IO.Path]::Combine($Directory, 'azurite-cert.pem'); $key = [IO.Path]::Combine($Directory, 'azurite-key.pem')
    [IO.File]::WriteAllText($cert, $certificate.ExportCertificatePem())
    [IO.File]::WriteAllText($key, $rsa.ExportPkcs8PrivateKeyPem())
    $certificate.Dispose(); $rsa.Dispose()
    @{ Cert = $cert; Key = $key }
}

function Start-TestAzurite([switch]$HttpsWithOAuth, [switch]$DebugLog) {
    <# azurite-blob on a free port with its data in a temp folder. With -HttpsWithOAuth it serves https with a
       self-signed certificate and accepts bearer tokens (--oauth basic checks issuer, audience and lifetime). With
       -DebugLog it writes its debug log (one 'RequestMethod=' line per request it serves) to .DebugLog: what tests
       count requests from (Measure-TestAzuriteRequests). #>
    $executable = Get-AzuriteExecutable
    if (-not $executable) { throw 'azurite-blob is not installed (npm install -g azurite); CI=true requires it.' }
    $port = Get-FreePort
    $data = [IO.Path]::Combine([IO.Path]::GetTempPath(), 'asr-azurite-' + [Guid]::NewGuid().ToString('N').Substring(0, 10))
    [void][IO.Directory]::CreateDirectory($data)
    $arguments = @('--blobHost', '127.0.0.1', '--blobPort', "$port", '--location', $data, '--skipApiVersionCheck', '--loose', '--silent', '--disableTelemetry')
    $scheme = 'http'; $pem = $null
    if ($HttpsWithOAuth) {
        $pem = New-SelfSignedPem $data
        $arguments += @('--cert', $pem.Cert, '--key', $pem.Key, '--oauth', 'basic')
        $scheme = 'https'
    }
    $debug = if ($DebugLog) { [IO.Path]::Combine($data, 'debug.log') }
    if ($debug) { $arguments += @('--debug', $debug) }
    $log = [IO.Path]::Combine($data, 'azurite.log')
    # sh execs Azurite (same process id, so SIGTERM reaches it) with its output in a file.
    $psi = [Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in @('-c', 'exec "$0" "$@" >"$AZURITE_TEST_LOG" 2>&1 </dev/null', $executable) + $arguments) { $psi.ArgumentList.Add($a) }
    $psi.Environment['AZURITE_TEST_LOG'] = $log
    $psi.UseShellExecute = $false
    $process = [Diagnostics.Process]::Start($psi)
    $deadline = [DateTime]::UtcNow.AddSeconds(30)
    while ($true) {
        if ($process.HasExited) { throw "azurite-blob exited ($($process.ExitCode)): $([IO.File]::ReadAllText($log))" }
        $probe = [Net.Sockets.TcpClient]::new()
        try { $probe.Connect([Net.IPAddress]::Loopback, $port); break }
        catch { if ([DateTime]::UtcNow -gt $deadline) { $process.Kill(); throw "azurite-blob did not listen on $port within 30 s: $([IO.File]::ReadAllText($log))" } }
        finally { $probe.Dispose() }
        [Threading.Thread]::Sleep(100)
    }
    $endpoint = "${scheme}://127.0.0.1:$port/$TestAzuriteAccount"
    [pscustomobject]@{
        Process = $process; Port = $port; Data = $data; Endpoint = $endpoint; Cert = if ($pem) { $pem.Cert }; DebugLog = $debug
        ConnectionString = "DefaultEndpointsProtocol=$scheme;AccountName=$TestAzuriteAccount;AccountKey=$TestAzuriteAccountKey;BlobEndpoint=$endpoint;"
    }
}

function Measure-TestAzuriteRequests($Server, [DateTimeOffset]$From, [DateTimeOffset]$To) {
    <# The requests Azurite served between two instants, from its debug log (Start-TestAzurite -DebugLog): each as
       Method and the Url path after the account (with its query). #>
    # Azurite's lines start with the UTC time, ISO 8601 with milliseconds: compared as text.
    $first = $From.UtcDateTime.ToString('yyyy-MM-ddTHH:mm:ss.fff', [Globalization.CultureInfo]::InvariantCulture)
    $last = $To.UtcDateTime.ToString('yyyy-MM-ddTHH:mm:ss.fff', [Globalization.CultureInfo]::InvariantCulture)
    $stream = [IO.FileStream]::new($Server.DebugLog, 'Open', 'Read', 'ReadWrite')
    $reader = [IO.StreamReader]::new($stream)
    try {
        while ($null -ne ($line = $reader.ReadLine())) {
            if ($line.Length -lt 23 -or -not $line.Contains('RequestMethod=')) { continue }
            $t = $line.Substring(0, 23)
            if ([string]::CompareOrdinal($t, $first) -lt 0 -or [string]::CompareOrdinal($t, $last) -gt 0) { continue }
            if ($line -match "RequestMethod=(\S+) RequestURL=\S+?/$TestAzuriteAccount(/\S*|\?\S*)") { [pscustomobject]@{ Method = $Matches[1]; Url = [Uri]::UnescapeDataString($Matches[2]) } }
        }
    }
    finally { $reader.Dispose() }
}

function Stop-TestAzurite($Server) {
    <# SIGTERM (Azurite saves its metadata), SIGKILL after 15 s; its data folder is deleted. #>
    if (-not $Server) { return }
    if (-not $Server.Process.HasExited) {
        ([Diagnostics.Process]::Start('kill', @('-TERM', "$($Server.Process.Id)"))).WaitForExit()
        if (-not $Server.Process.WaitForExit(15000)) { $Server.Process.Kill() }
    }
    if ([IO.Directory]::Exists($Server.Data)) { [IO.Directory]::Delete($Server.Data, $true) }
}

function New-TestAccountSas([string]$Permissions = 'rwdlacup', [string]$SigningKey = $TestAzuriteAccountKey) {
    <# An account SAS for the blob service (every resource type), signed here by HMAC-SHA256 over the documented
       string-to-sign of version 2020-12-06 and later: account, permissions, services, resource types, start,
       expiry, IP, protocol, version, encryption scope. #>
    $version = '2022-11-02'
    $expiry = [DateTime]::UtcNow.AddDays(2).ToString('yyyy-MM-ddTHH:mm:ssZ')
    $toSign = @($TestAzuriteAccount, $Permissions, 'b', 'sco', '', $expiry, '', '', $version, '', '') -join "`n"
    $hmac = [Security.Cryptography.HMACSHA256]::new([Convert]::FromBase64String($SigningKey))
    try { $signature = [Convert]::ToBase64String($hmac.ComputeHash([Text.Encoding]::UTF8.GetBytes($toSign))) } finally { $hmac.Dispose() }
    "sv=$version&ss=b&srt=sco&sp=$Permissions&se=$([Uri]::EscapeDataString($expiry))&sig=$([Uri]::EscapeDataString($signature))"
}

function Set-TestBlobEnvironment($Server) {
    <# Makes $Server the Blob backend of this process and its children: AZURE_STORAGE_CONNECTION_STRING is what the
       module (and the child processes and agents the tests start, which inherit it) opens container URLs of that
       account with; it applies only to that account, so local vaults are unaffected. The test helpers read
       ASR_TEST_BLOB_ENDPOINT to make container URLs and ASR_TEST_BLOB_SAS to look into containers directly. #>
    $env:AZURE_STORAGE_CONNECTION_STRING = $Server.ConnectionString
    $env:ASR_TEST_BLOB_ENDPOINT = $Server.Endpoint
    $env:ASR_TEST_BLOB_SAS = New-TestAccountSas
}

function Suspend-TestAzurite($Server) {
    <# Stops Azurite (SIGTERM: it saves its metadata) and keeps its data and port, for Resume-TestAzurite: a storage outage. #>
    ([Diagnostics.Process]::Start('kill', @('-TERM', "$($Server.Process.Id)"))).WaitForExit()
    if (-not $Server.Process.WaitForExit(15000)) { $Server.Process.Kill() }
}

function Resume-TestAzurite($Server) {
    <# Starts Azurite again on the port and data of $Server (after Suspend-TestAzurite) and waits until it listens. #>
    $Server.Process = [Diagnostics.Process]::Start($Server.Process.StartInfo)
    $deadline = [DateTime]::UtcNow.AddSeconds(30)
    while ($true) {
        $probe = [Net.Sockets.TcpClient]::new()
        try { $probe.Connect([Net.IPAddress]::Loopback, $Server.Port); break }
        catch { if ([DateTime]::UtcNow -gt $deadline) { throw "azurite-blob did not listen again on $($Server.Port) within 30 s" } }
        finally { $probe.Dispose() }
        [Threading.Thread]::Sleep(100)
    }
}
