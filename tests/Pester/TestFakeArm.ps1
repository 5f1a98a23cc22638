# The FAKE Azure Resource Manager (tests/FakeArm, see its README.md) for the Pester tests of the failover to Azure
# (issue #11): started as a child process on a free port of 127.0.0.1 with its upload disks' page blobs in a real
# Azurite (TestAzurite.ps1), stopped by killing it. It is NOT Azure: it answers the few ARM requests the module makes.
#
# The module trusts the fake's self-signed certificate only in a pwsh STARTED with SSL_CERT_FILE=<cert.pem> (setting
# it in a running process has no effect), so tests run their scenario in a child pwsh: Get-TestFakeArmEnvironment
# gives the variables for Start-PwshProcess/Invoke-PwshProcess -Environment, and Get-TestFakeArmFromEnvironment finds
# the fake again inside the child. The control API (/_fake/) and the helpers' own ARM and blob calls here trust the
# certificate by skipping its check (Invoke-RestMethod -SkipCertificateCheck): they are test plumbing, never the
# module's path.
#
# Needs (dot-sourced first): TestAzurite.ps1 (the Azurite account and New-TestAccountSas).

$TestFakeArmSubscriptionId = '00000000-0000-0000-0000-0000000000aa'
$TestFakeArmResourceGroup = 'asr-rg'
$TestFakeArmRegion = 'westeurope'

function Get-FakeArmAssembly {
    <# The built tests/FakeArm/bin/<Release|Debug>/net10.0/FakeArm.dll (dotnet build AsrModule.sln -c Release), or nothing. #>
    $root = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..', 'FakeArm', 'bin'))
    foreach ($configuration in 'Release', 'Debug') {
        $dll = [IO.Path]::Combine($root, $configuration, 'net10.0', 'FakeArm.dll')
        if ([IO.File]::Exists($dll)) { return $dll }
    }
}

function Get-DotnetExecutable {
    <# The dotnet host: this process's own when pwsh runs as `dotnet pwsh`, else DOTNET_HOST_PATH, else dotnet on PATH. #>
    $exe = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { return $exe }
    if ($env:DOTNET_HOST_PATH -and [IO.File]::Exists($env:DOTNET_HOST_PATH)) { return $env:DOTNET_HOST_PATH }
    $command = Get-Command dotnet -CommandType Application -ErrorAction Ignore | Select-Object -First 1
    if ($command) { $command.Source }
}

function Get-FakeArmSkipReason {
    <# Why tests on the fake ARM cannot run here ($null when they can): they need dotnet, the built FakeArm.dll and
       azurite-blob. Under CI=true nothing is missing on purpose, so they run and fail instead of skipping. #>
    if ($env:CI -eq 'true') { return $null }
    if (-not (Get-DotnetExecutable)) { return 'needs dotnet (the fake ARM is a .NET program)' }
    if (-not (Get-FakeArmAssembly)) { return 'the fake ARM is not built (tests/FakeArm/bin/*/net10.0/FakeArm.dll): run dotnet build AsrModule.sln -c Release' }
    Get-AzuriteSkipReason
}

function Start-TestFakeArm {
    <# Starts the fake on a free port (its certificate in a temp folder) and waits for its LISTENING line.
       Returns Endpoint (https://127.0.0.1:<port>/), CertFile, Process, SubscriptionId, ResourceGroup, Region,
       AzuriteConnectionString, Container, Directory, Log. Stop it with Stop-TestFakeArm. #>
    param(
        [Parameter(Mandatory)][string]$AzuriteConnectionString,
        [string]$Container = 'disks',
        [ValidateSet('sync', 'async')][string]$Mode = 'sync',
        [int]$TimeoutSeconds = 60
    )
    $dll = Get-FakeArmAssembly
    if (-not $dll) { throw 'The fake ARM is not built (tests/FakeArm/bin/*/net10.0/FakeArm.dll): run dotnet build AsrModule.sln -c Release.' }
    $dotnet = Get-DotnetExecutable
    if (-not $dotnet) { throw 'dotnet was not found (the fake ARM is a .NET program).' }
    $directory = [IO.Path]::Combine([IO.Path]::GetTempPath(), 'asr-fakearm-' + [Guid]::NewGuid().ToString('N').Substring(0, 10))
    [void][IO.Directory]::CreateDirectory($directory)
    $log = [IO.Path]::Combine($directory, 'fakearm.log')
    # sh execs the fake (same process id, so killing it stops the fake) with its output in a file: nothing to drain.
    $psi = [Diagnostics.ProcessStartInfo]::new('/bin/sh')
    foreach ($a in @('-c', 'exec "$0" "$@" >"$FAKEARM_TEST_LOG" 2>&1 </dev/null', $dotnet, $dll, '--port', '0', '--cert-dir', $directory,
            '--azurite-connection-string', $AzuriteConnectionString, '--container', $Container, '--mode', $Mode)) { $psi.ArgumentList.Add($a) }
    $psi.Environment['FAKEARM_TEST_LOG'] = $log
    $psi.UseShellExecute = $false
    $process = [Diagnostics.Process]::Start($psi)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    $endpoint = $null
    while (-not $endpoint) {
        $text = if ([IO.File]::Exists($log)) { [IO.File]::ReadAllText($log) } else { '' }
        $match = [regex]::Match($text, 'LISTENING (https://127\.0\.0\.1:\d+)')
        if ($match.Success) { $endpoint = $match.Groups[1].Value + '/'; break }
        if ($process.HasExited) {
            [IO.Directory]::Delete($directory, $true)
            throw "The fake ARM exited ($($process.ExitCode)) before listening: $text"
        }
        if ([DateTime]::UtcNow -gt $deadline) {
            $process.Kill($true); $process.WaitForExit()
            [IO.Directory]::Delete($directory, $true)
            throw "The fake ARM did not listen within $TimeoutSeconds s: $text"
        }
        [Threading.Thread]::Sleep(100)
    }
    [pscustomobject]@{
        Endpoint = $endpoint; CertFile = [IO.Path]::Combine($directory, 'cert.pem'); Process = $process
        SubscriptionId = $TestFakeArmSubscriptionId; ResourceGroup = $TestFakeArmResourceGroup; Region = $TestFakeArmRegion
        AzuriteConnectionString = $AzuriteConnectionString; Container = $Container; Directory = $directory; Log = $log
    }
}

function Stop-TestFakeArm($FakeArm) {
    <# Kills the fake (as its README says) and deletes its certificate folder. #>
    if (-not $FakeArm) { return }
    if ($FakeArm.Process -and -not $FakeArm.Process.HasExited) {
        $FakeArm.Process.Kill($true)
        [void]$FakeArm.Process.WaitForExit(10000)
    }
    if ($FakeArm.Directory -and [IO.Directory]::Exists($FakeArm.Directory)) { [IO.Directory]::Delete($FakeArm.Directory, $true) }
}

function Get-TestFakeArmEnvironment($FakeArm, [hashtable]$Extra = @{}) {
    <# The environment of a child pwsh that talks to the fake: SSL_CERT_FILE (the module then trusts the fake's
       certificate, and only it: SSL_CERT_DIR is removed) and where the fake and its Azurite are. #>
    $environment = @{
        SSL_CERT_FILE = $FakeArm.CertFile; SSL_CERT_DIR = $null
        ASR_TEST_FAKEARM_ENDPOINT = $FakeArm.Endpoint; ASR_TEST_FAKEARM_CERT = $FakeArm.CertFile
        ASR_TEST_FAKEARM_AZURITE = $FakeArm.AzuriteConnectionString; ASR_TEST_FAKEARM_CONTAINER = $FakeArm.Container
        # No ambient Azure credential of the machine running the tests reaches the module.
        AZURE_CLIENT_ID = $null; AZURE_TENANT_ID = $null; AZURE_CLIENT_SECRET = $null; AZURE_FEDERATED_TOKEN_FILE = $null
        IDENTITY_ENDPOINT = $null; MSI_ENDPOINT = $null
    }
    foreach ($k in $Extra.Keys) { $environment[$k] = $Extra[$k] }
    $environment
}

function Get-TestFakeArmFromEnvironment {
    <# In a child started with Get-TestFakeArmEnvironment: the fake as Start-TestFakeArm described it (no Process). #>
    if (-not $env:ASR_TEST_FAKEARM_ENDPOINT) { throw 'ASR_TEST_FAKEARM_ENDPOINT is not set: start the child with Get-TestFakeArmEnvironment.' }
    [pscustomobject]@{
        Endpoint = $env:ASR_TEST_FAKEARM_ENDPOINT; CertFile = $env:ASR_TEST_FAKEARM_CERT; Process = $null
        SubscriptionId = $TestFakeArmSubscriptionId; ResourceGroup = $TestFakeArmResourceGroup; Region = $TestFakeArmRegion
        AzuriteConnectionString = $env:ASR_TEST_FAKEARM_AZURITE; Container = $env:ASR_TEST_FAKEARM_CONTAINER; Directory = $null; Log = $null
    }
}

function Invoke-FakeArmControl {
    <# One call of the fake's control API (/_fake/...): GET /_fake/state, POST /_fake/faults -Body @{...} ...
       Returns the parsed JSON answer (nothing for 204). #>
    param(
        [Parameter(Mandatory)]$FakeArm,
        [ValidateSet('GET', 'POST', 'DELETE')][string]$Method = 'GET',
        [Parameter(Mandatory)][string]$Path,
        [hashtable]$Body
    )
    $uri = $FakeArm.Endpoint.TrimEnd('/') + '/' + $Path.TrimStart('/')
    $parameters = @{ Uri = $uri; Method = $Method; SkipCertificateCheck = $true; TimeoutSec = 30 }
    if ($Method -eq 'POST') { $parameters.ContentType = 'application/json'; $parameters.Body = if ($Body) { ConvertTo-Json $Body -Depth 10 -Compress } else { '{}' } }
    Invoke-RestMethod @parameters
}

function Get-FakeArmState($FakeArm) {
    <# GET /_fake/state: disks, virtualMachines, subnets, operations. #>
    Invoke-FakeArmControl -FakeArm $FakeArm -Method GET -Path '/_fake/state'
}

function Get-FakeArmRequests($FakeArm) {
    <# GET /_fake/requests: the ARM requests received, in order (sequence, received, method, path, query, body, status). #>
    # Invoke-RestMethod returns a JSON array as one object: enumerate it.
    $answer = Invoke-FakeArmControl -FakeArm $FakeArm -Method GET -Path '/_fake/requests'
    foreach ($request in $answer) { $request }
}

function Add-FakeArmFault {
    <# POST /_fake/faults: the next -Count requests matching answer -Status at once (429 with -RetryAfter ...), or with
       -Lro are accepted and their operation ends Failed with -Code. #>
    param([Parameter(Mandatory)]$FakeArm, [string]$Method, [Parameter(Mandatory)][string]$Path, [int]$Count = 1, [int]$Status = 429,
        [string]$Code, [string]$Message, [int]$RetryAfter = -1, [switch]$Lro)
    $body = @{ path = $Path; count = $Count; status = $Status }
    if ($Method) { $body.method = $Method }
    if ($Code) { $body.code = $Code }
    if ($Message) { $body.message = $Message }
    if ($RetryAfter -ge 0) { $body.retryAfter = $RetryAfter }
    if ($Lro) { $body.lro = $true }
    Invoke-FakeArmControl -FakeArm $FakeArm -Method POST -Path '/_fake/faults' -Body $body
}

function New-TestSubnetId([Parameter(Mandatory)][string]$Name, [string]$SubscriptionId = $TestFakeArmSubscriptionId, [string]$VirtualNetwork = 'vnet1') {
    <# A subnet's resource id (in resource group net-rg). The fake knows it only once registered (Register-TestSubnet). #>
    "/subscriptions/$SubscriptionId/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/$VirtualNetwork/subnets/$Name"
}

function Register-TestSubnet([Parameter(Mandatory)]$FakeArm, [Parameter(Mandatory)][string[]]$SubnetId) {
    <# POST /_fake/subnets: makes the subnets exist (a VM in any other is refused with InvalidResourceReference). #>
    foreach ($id in $SubnetId) { Invoke-FakeArmControl -FakeArm $FakeArm -Method POST -Path '/_fake/subnets' -Body @{ id = $id } | Out-Null }
}

function Get-FakeArmResource {
    <# The disks and VMs the fake holds, as one list of { Kind (Disk|VirtualMachine), Id, Name, Tags (hashtable), Json },
       optionally only those whose tag -TagName has one of -TagValue (tag names case-insensitive, values exact). #>
    param([Parameter(Mandatory)]$FakeArm, [string]$TagName, [string[]]$TagValue, $State)
    if (-not $State) { $State = Get-FakeArmState $FakeArm }
    $all = @(foreach ($d in @($State.disks)) { if ($d) { @{ Kind = 'Disk'; Json = $d } } }) +
        @(foreach ($v in @($State.virtualMachines)) { if ($v) { @{ Kind = 'VirtualMachine'; Json = $v } } })
    foreach ($r in $all) {
        $tags = @{}
        if ($r.Json.tags) { foreach ($p in $r.Json.tags.PSObject.Properties) { $tags[$p.Name] = [string]$p.Value } }
        if ($TagName) {
            $key = @($tags.Keys | Where-Object { $_ -eq $TagName })[0]
            if (-not $key -or $TagValue -cnotcontains $tags[$key]) { continue }
        }
        [pscustomobject]@{ Kind = $r.Kind; Id = [string]$r.Json.id; Name = [string]$r.Json.name; Tags = $tags; Json = $r.Json }
    }
}

function Get-FakeArmOperationTagValue([Guid]$OperationId) {
    <# The values an operation's asr-operation tag may have (the module writes the GUID without dashes). #>
    @($OperationId.ToString('N'), $OperationId.ToString('D'))
}

function Get-FakeArmTag([hashtable]$Tags, [string]$Name) {
    <# A tag's value by name, case-insensitively. #>
    foreach ($k in $Tags.Keys) { if ($k -eq $Name) { return $Tags[$k] } }
}

function Get-FakeArmVmSubnet($Vm) {
    <# The subnet ids of a VM's network interface configurations (from the fake's JSON). #>
    foreach ($c in @($Vm.properties.networkProfile.networkInterfaceConfigurations)) {
        foreach ($ip in @($c.properties.ipConfigurations)) { if ($ip.properties.subnet.id) { [string]$ip.properties.subnet.id } }
    }
}

function New-FakeArmDisk {
    <# Creates an upload disk through the fake's ARM API, behind the module's back (a resource of another operation):
       PUT disks/<Name> with the given tags. Returns the disk's JSON. #>
    param([Parameter(Mandatory)]$FakeArm, [Parameter(Mandatory)][string]$Name, [hashtable]$Tags = @{}, [long]$UploadSizeBytes = (20MB + 512))
    $id = "/subscriptions/$($FakeArm.SubscriptionId)/resourceGroups/$($FakeArm.ResourceGroup)/providers/Microsoft.Compute/disks/$Name"
    $body = @{ location = $FakeArm.Region; sku = @{ name = 'StandardSSD_LRS' }; tags = $Tags
        properties = @{ creationData = @{ createOption = 'Upload'; uploadSizeBytes = $UploadSizeBytes } } }
    Invoke-RestMethod -Uri ($FakeArm.Endpoint.TrimEnd('/') + $id + '?api-version=2023-04-02') -Method PUT -SkipCertificateCheck -TimeoutSec 30 `
        -Headers @{ Authorization = 'Bearer fake-arm-helper-token' } -ContentType 'application/json' -Body (ConvertTo-Json $body -Depth 10 -Compress)
}

# ---- the page blobs behind the managed disks (in the fake's Azurite, read and written with the account key's SAS) ----

function Get-FakeArmAzuriteEndpoint($FakeArm) {
    <# The Azurite blob endpoint (…/devstoreaccount1) of the fake's connection string. #>
    foreach ($part in $FakeArm.AzuriteConnectionString.Split(';')) { if ($part -match '^\s*BlobEndpoint=(.+)$') { return $Matches[1].Trim().TrimEnd('/') } }
    throw 'The fake''s Azurite connection string has no BlobEndpoint.'
}

function Get-FakeArmDiskBlobUrl($FakeArm, $Disk) {
    <# The page blob of a managed disk ($Disk: the fake's disk JSON or a Get-FakeArmResource row): the fake names it
       <disk name>-<first 8 characters of its uniqueId> in its container once a write SAS was granted. #>
    $json = if ($Disk.Json) { $Disk.Json } else { $Disk }
    $blob = "$($json.name)-$(([string]$json.properties.uniqueId).Substring(0, 8))"
    "$(Get-FakeArmAzuriteEndpoint $FakeArm)/$($FakeArm.Container)/$([Uri]::EscapeDataString($blob))"
}

function Invoke-FakeArmBlobRequest([string]$Method, [string]$Url, [string]$Query, [hashtable]$Headers = @{}, [byte[]]$Body) {
    if (-not $script:FakeArmBlobHttp) { $script:FakeArmBlobHttp = [Net.Http.HttpClient]::new() }
    if (-not $script:FakeArmBlobSas) { $script:FakeArmBlobSas = New-TestAccountSas }
    $uri = $Url + '?' + $(if ($Query) { "$Query&" }) + $script:FakeArmBlobSas
    $request = [Net.Http.HttpRequestMessage]::new([Net.Http.HttpMethod]::new($Method), $uri)
    try {
        if ($null -ne $Body) { $request.Content = [Net.Http.ByteArrayContent]::new($Body) }
        foreach ($k in $Headers.Keys) { [void]$request.Headers.TryAddWithoutValidation($k, [string]$Headers[$k]) }
        $response = $script:FakeArmBlobHttp.Send($request)
        $content = $response.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult()
        if (-not $response.IsSuccessStatusCode) { throw "$Method $Url ($Query) failed: $([int]$response.StatusCode) $([Text.Encoding]::UTF8.GetString($content))" }
        , $content
    } finally { $request.Dispose() }
}

function Get-FakeArmDiskHash {
    <# SHA-256 (hex) of the first -Length bytes of a managed disk's page blob: the payload a recovery point's disk of
       that size became (the rest up to the MiB boundary is zero padding, then the VHD footer). #>
    param([Parameter(Mandatory)]$FakeArm, [Parameter(Mandatory)]$Disk, [Parameter(Mandatory)][long]$Length)
    $bytes = Invoke-FakeArmBlobRequest GET (Get-FakeArmDiskBlobUrl $FakeArm $Disk) -Headers @{ 'x-ms-range' = "bytes=0-$($Length - 1)" }
    if ($bytes.Length -ne $Length) { throw "Read $($bytes.Length) bytes of the disk blob, expected $Length." }
    [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([byte[]]$bytes))
}

function Get-FakeArmDiskFooter {
    <# The last 512 bytes of a managed disk's page blob (the fixed-VHD footer: 'conectix' ...). #>
    param([Parameter(Mandatory)]$FakeArm, [Parameter(Mandatory)]$Disk)
    $json = if ($Disk.Json) { $Disk.Json } else { $Disk }
    $size = [long]$json.properties.creationData.uploadSizeBytes
    , (Invoke-FakeArmBlobRequest GET (Get-FakeArmDiskBlobUrl $FakeArm $Disk) -Headers @{ 'x-ms-range' = "bytes=$($size - 512)-$($size - 1)" })
}

function Write-FakeArmDiskBlock {
    <# What the VM in Azure writes: Put Page of random 4 KiB blocks into the managed disk's page blob at the given
       offsets (multiples of 4096, within the disk). Returns the bytes written. #>
    param([Parameter(Mandatory)]$FakeArm, [Parameter(Mandatory)]$Disk, [Parameter(Mandatory)][long[]]$Offset, [int]$Seed = 7)
    $rng = [Random]::new($Seed)
    $url = Get-FakeArmDiskBlobUrl $FakeArm $Disk
    foreach ($o in $Offset) {
        $block = [byte[]]::new(4096); $rng.NextBytes($block)
        Invoke-FakeArmBlobRequest PUT $url 'comp=page' -Headers @{ 'x-ms-page-write' = 'update'; 'x-ms-range' = "bytes=$o-$($o + 4095)" } -Body $block | Out-Null
    }
    4096L * $Offset.Count
}
