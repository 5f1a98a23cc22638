# Shared by the .Tests.ps1 files (dot-sourced in their BeforeAll), run under real Pester in pwsh.
. ([IO.Path]::Combine($PSScriptRoot, '..', '..', 'samples', 'AsrSampleDisks.ps1'))

function New-TestDirectory {
    $path = [IO.Path]::Combine([IO.Path]::GetTempPath(), 'asr-pester-' + [Guid]::NewGuid().ToString('N').Substring(0, 10))
    [void][IO.Directory]::CreateDirectory($path)
    $path
}

function Remove-TestDirectory([string]$Path) {
    <# Deletes the directory and the blob vaults New-TestVaultLocation made for it. #>
    if ($Path -and $global:AsrTestContainers -and $global:AsrTestContainers.ContainsKey($Path)) {
        foreach ($container in $global:AsrTestContainers[$Path]) { Invoke-TestBlobRequest DELETE $container 'restype=container' -Allow 404 | Out-Null }
        $global:AsrTestContainers.Remove($Path)
    }
    if ($Path -and [IO.Directory]::Exists($Path)) { [IO.Directory]::Delete($Path, $true) }
}

function Join-TestPath([string]$Base, [string]$Child) { [IO.Path]::Combine($Base, $Child) }

# ---- the vault backend under test ----
# A test file that declares `param([string]$Backend = 'Local')` runs once per backend (Invoke-AsrPester.ps1 makes a
# Pester container for each, with $Backend as its data); the helpers read $Backend from the calling test's scope.
# Tests make their vault at New-TestVaultLocation and look into it only through the helpers below, so they read
# the same on both. A blob vault is a container URL; the module opens it with the environment's
# AZURE_STORAGE_CONNECTION_STRING (child processes and agents inherit it). The helpers reach the container with
# plain HTTP and the account SAS in ASR_TEST_BLOB_SAS, so what they see is the service's view, not the module's.
# Invoke-AsrPester.ps1 sets those variables once its Azurite runs (TestAzurite.ps1, Set-TestBlobEnvironment).

function Get-TestBackend { if ($Backend -is [string] -and $Backend -eq 'Blob') { 'Blob' } else { 'Local' } }

function Test-BlobVaultLocation([string]$Location) { $Location -match '^https?://' }

function New-TestVaultLocation([string]$Dir, [switch]$Create) {
    <# Where a test's vault goes: $Dir/vault (Local) or a new container of the test Azurite (Blob).
       -Create makes it exist, empty: a directory or container that is not a vault. #>
    if ((Get-TestBackend) -ne 'Blob') {
        $location = Join-TestPath $Dir 'vault'
        if ($Create) { [void][IO.Directory]::CreateDirectory($location) }
        return $location
    }
    if (-not $env:ASR_TEST_BLOB_ENDPOINT -or -not $env:ASR_TEST_BLOB_SAS) {
        throw 'The Blob backend needs ASR_TEST_BLOB_ENDPOINT and ASR_TEST_BLOB_SAS (Invoke-AsrPester.ps1 sets them once its Azurite runs).'
    }
    $location = "$($env:ASR_TEST_BLOB_ENDPOINT.TrimEnd('/'))/vault-$([Guid]::NewGuid().ToString('N').Substring(0, 20))"
    if (-not $global:AsrTestContainers) { $global:AsrTestContainers = @{} }
    if (-not $global:AsrTestContainers.ContainsKey($Dir)) { $global:AsrTestContainers[$Dir] = [Collections.Generic.List[string]]::new() }
    $global:AsrTestContainers[$Dir].Add($location)
    if ($Create) { Invoke-TestBlobRequest PUT $location 'restype=container' | Out-Null }
    $location
}

function Invoke-TestBlobRequest([string]$Method, [string]$Url, [string]$Query, [hashtable]$Headers = @{}, [byte[]]$Body, [int[]]$Allow = @()) {
    <# One Blob service REST call with the runner's account SAS; throws on an error status not in -Allow. #>
    if (-not $global:AsrTestBlobHttp) { $global:AsrTestBlobHttp = [Net.Http.HttpClient]::new() }
    $uri = $Url + '?' + $(if ($Query) { "$Query&" }) + $env:ASR_TEST_BLOB_SAS
    $request = [Net.Http.HttpRequestMessage]::new([Net.Http.HttpMethod]::new($Method), $uri)
    try {
        if ($null -ne $Body) { $request.Content = [Net.Http.ByteArrayContent]::new($Body) }
        elseif ($Method -eq 'PUT') { $request.Content = [Net.Http.ByteArrayContent]::new([byte[]]::new(0)) }
        foreach ($k in $Headers.Keys) { [void]$request.Headers.TryAddWithoutValidation($k, [string]$Headers[$k]) }
        $response = $global:AsrTestBlobHttp.Send($request)
        $content = $response.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult()
        $status = [int]$response.StatusCode
        if (-not $response.IsSuccessStatusCode -and $Allow -notcontains $status) {
            throw "$Method $Url ($Query) failed: $status $([Text.Encoding]::UTF8.GetString($content))"
        }
        [pscustomobject]@{ StatusCode = $status; Content = $content; Headers = $response.Headers }
    } finally { $request.Dispose() }
}

function Get-BlobUrl([string]$Location, [string]$Key) {
    $Location.TrimEnd('/') + '/' + (($Key.Split('/') | ForEach-Object { [Uri]::EscapeDataString($_) }) -join '/')
}

function Get-LocalVaultPath([string]$Location, [string]$Key) { [IO.Path]::Combine($Location, $Key.Replace('/', [IO.Path]::DirectorySeparatorChar)) }

function Test-VaultLocation([string]$Location) {
    <# Whether the vault's directory or container exists (a vault or not). #>
    if (Test-BlobVaultLocation $Location) { return (Invoke-TestBlobRequest GET $Location 'restype=container' -Allow 404).StatusCode -eq 200 }
    [IO.Directory]::Exists($Location)
}

function Get-VaultObjectKeys([string]$Location, [string]$Prefix = '') {
    <# The keys of the vault's objects under $Prefix ('/'-separated, as the store names them), in ordinal order; none when the location does not exist. #>
    $keys = [Collections.Generic.List[string]]::new()
    if (Test-BlobVaultLocation $Location) {
        $marker = ''
        do {
            $query = "restype=container&comp=list&prefix=$([Uri]::EscapeDataString($Prefix))" + $(if ($marker) { "&marker=$([Uri]::EscapeDataString($marker))" })
            $r = Invoke-TestBlobRequest GET $Location $query -Allow 404
            if ($r.StatusCode -eq 404) { break }
            $xml = [xml]([Text.Encoding]::UTF8.GetString($r.Content).TrimStart([char]0xFEFF))
            foreach ($name in $xml.SelectNodes('/EnumerationResults/Blobs/Blob/Name')) { $keys.Add($name.InnerText) }
            $next = $xml.SelectSingleNode('/EnumerationResults/NextMarker')
            $marker = if ($next) { $next.InnerText } else { '' }
        } while ($marker)
    } elseif ([IO.Directory]::Exists($Location)) {
        foreach ($f in [IO.Directory]::EnumerateFiles($Location, '*', [IO.SearchOption]::AllDirectories)) {
            $key = [IO.Path]::GetRelativePath($Location, $f).Replace([IO.Path]::DirectorySeparatorChar, '/')
            if ($key.StartsWith($Prefix, [StringComparison]::Ordinal)) { $keys.Add($key) }
        }
    }
    $keys.Sort([StringComparer]::Ordinal)
    $keys
}

function Read-VaultObject([string]$Location, [string]$Key) {
    <# An object's bytes, or $null when it does not exist. #>
    if (Test-BlobVaultLocation $Location) {
        $r = Invoke-TestBlobRequest GET (Get-BlobUrl $Location $Key) -Allow 404
        if ($r.StatusCode -eq 404) { return $null }
        return , $r.Content
    }
    $path = Get-LocalVaultPath $Location $Key
    # An object may go away while it is read (a writer's temporary file renamed, a pin released): then it is gone.
    try { , [IO.File]::ReadAllBytes($path) }
    catch [IO.FileNotFoundException], [IO.DirectoryNotFoundException] { $null }
}

function Write-VaultObject([string]$Location, [string]$Key, $Content) {
    <# Writes (or replaces) an object behind the module's back: a string is written as UTF-8. #>
    $bytes = if ($Content -is [string]) { [Text.UTF8Encoding]::new($false).GetBytes($Content) } else { [byte[]]$Content }
    if (Test-BlobVaultLocation $Location) {
        Invoke-TestBlobRequest PUT (Get-BlobUrl $Location $Key) -Headers @{ 'x-ms-blob-type' = 'BlockBlob' } -Body $bytes | Out-Null
        return
    }
    $path = Get-LocalVaultPath $Location $Key
    [void][IO.Directory]::CreateDirectory([IO.Path]::GetDirectoryName($path))
    [IO.File]::WriteAllBytes($path, $bytes)
}

function Remove-VaultObject([string]$Location, [string]$Key) {
    if (Test-BlobVaultLocation $Location) { Invoke-TestBlobRequest DELETE (Get-BlobUrl $Location $Key) -Allow 404 | Out-Null; return }
    [IO.File]::Delete((Get-LocalVaultPath $Location $Key))
}

function Lock-VaultObject([string]$Location, [string]$Key) {
    <# Holds a vault lock as another process's operation would (a file opened without sharing, or a lease on
       the lock blob) until Unlock-VaultObject. #>
    if (Test-BlobVaultLocation $Location) {
        $url = Get-BlobUrl $Location $Key
        # The store creates lock blobs empty when missing; an existing one is kept (409).
        Invoke-TestBlobRequest PUT $url -Headers @{ 'x-ms-blob-type' = 'BlockBlob'; 'If-None-Match' = '*' } -Allow 409 | Out-Null
        $r = Invoke-TestBlobRequest PUT $url 'comp=lease' -Headers @{ 'x-ms-lease-action' = 'acquire'; 'x-ms-lease-duration' = '-1' }
        return [pscustomobject]@{ Url = $url; LeaseId = @($r.Headers.GetValues('x-ms-lease-id'))[0]; Stream = $null }
    }
    [pscustomobject]@{ Url = $null; LeaseId = $null; Stream = [IO.File]::Open((Get-LocalVaultPath $Location $Key), 'OpenOrCreate', 'ReadWrite', 'None') }
}

function Unlock-VaultObject($Lock) {
    if ($Lock.Stream) { $Lock.Stream.Dispose(); return }
    Invoke-TestBlobRequest PUT $Lock.Url 'comp=lease' -Headers @{ 'x-ms-lease-action' = 'release'; 'x-ms-lease-id' = $Lock.LeaseId } | Out-Null
}

function Wait-VaultLockReleased([string]$Location, [string]$Key, [int]$TimeoutSeconds = 90) {
    <# Waits until nobody holds the vault lock $Key. A killed process's lock is free at once on a local vault
       (the kernel drops its file lock) but only once its lease runs out on a blob vault (60 s at most). #>
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while ($true) {
        if (Test-BlobVaultLocation $Location) {
            $r = Invoke-TestBlobRequest HEAD (Get-BlobUrl $Location $Key) -Allow 404
            $free = $r.StatusCode -eq 404 -or @($r.Headers.GetValues('x-ms-lease-state'))[0] -ne 'leased'
        } else {
            try { [IO.File]::Open((Get-LocalVaultPath $Location $Key), 'Open', 'ReadWrite', 'None').Dispose(); $free = $true }
            catch [IO.FileNotFoundException], [IO.DirectoryNotFoundException] { $free = $true }
            catch [IO.IOException] { $free = $false }
        }
        if ($free) { return }
        if ([DateTime]::UtcNow -gt $deadline) { throw "The vault lock $Key of $Location was still held after $TimeoutSeconds s." }
        [Threading.Thread]::Sleep(250)
    }
}

function Get-VaultSnapshot([string]$VaultPath) {
    <# Every object of the vault with its hash: equal snapshots mean nothing changed. Lock objects are left
       out: taking a lock (creating its file or blob) changes no vault data. #>
    $lines = foreach ($key in Get-VaultObjectKeys $VaultPath) {
        if ($key.EndsWith('.lock')) { continue }
        "$key $([Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([byte[]](Read-VaultObject $VaultPath $key))))"
    }
    (@($lines) | Sort-AsrLines) -join "`n"
}

function Sort-AsrLines { $list = [Collections.Generic.List[string]]::new(); foreach ($l in $input) { $list.Add($l) }; $list.Sort([StringComparer]::Ordinal); $list }

function Get-DirectoryBytes([string]$Path) {
    $total = 0L
    foreach ($f in [IO.Directory]::EnumerateFiles($Path, '*', [IO.SearchOption]::AllDirectories)) { $total += [IO.FileInfo]::new($f).Length }
    $total
}

function Get-PwshCommand {
    <# How to start another pwsh like this one: the pinned dotnet tool runs as `dotnet <PSHOME>/pwsh.dll`. #>
    $exe = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($exe) -eq 'dotnet') { return @($exe, [IO.Path]::Combine($PSHOME, 'pwsh.dll')) }
    @($exe)
}

function Start-PwshProcess([string]$Command, [hashtable]$Environment = @{}, [switch]$NoRedirect, [string]$WorkingDirectory) {
    <# Another real pwsh process running $Command (-NoProfile -NonInteractive), with extra (or, for $null values,
       removed) environment variables. It inherits PSModulePath, so `Import-Module AsrModule` works in it.
       Returns the process with its output being collected (Out, Err tasks). #>
    $pwsh = @(Get-PwshCommand)
    $psi = [Diagnostics.ProcessStartInfo]::new($pwsh[0])
    foreach ($a in @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $Command)) { $psi.ArgumentList.Add($a) }
    $psi.UseShellExecute = $false
    if ($WorkingDirectory) { $psi.WorkingDirectory = $WorkingDirectory }
    $psi.RedirectStandardOutput = -not $NoRedirect; $psi.RedirectStandardError = -not $NoRedirect
    foreach ($name in $Environment.Keys) {
        if ($null -eq $Environment[$name]) { [void]$psi.Environment.Remove($name) } else { $psi.Environment[$name] = [string]$Environment[$name] }
    }
    $p = [Diagnostics.Process]::Start($psi)
    if ($NoRedirect) { return [pscustomobject]@{ Process = $p; Out = $null; Err = $null } }
    [pscustomobject]@{ Process = $p; Out = $p.StandardOutput.ReadToEndAsync(); Err = $p.StandardError.ReadToEndAsync() }
}

function Wait-PwshProcess($Child, [int]$TimeoutSeconds = 240) {
    <# Waits for a Start-PwshProcess child; returns its exit code, output, and its "RESULT name=value" lines as a hashtable. #>
    if (-not $Child.Process.WaitForExit($TimeoutSeconds * 1000)) { $Child.Process.Kill($true); throw "The pwsh child did not finish within $TimeoutSeconds s: $($Child.Out.Result)" }
    $Child.Process.WaitForExit()
    $out = if ($Child.Out) { $Child.Out.Result } else { '' }
    $result = @{}
    foreach ($l in ($out -split "`n")) {
        if ($l.StartsWith('RESULT ')) { $kv = $l.Substring(7).TrimEnd(); $eq = $kv.IndexOf('='); $result[$kv.Substring(0, $eq)] = $kv.Substring($eq + 1) }
    }
    [pscustomobject]@{ ExitCode = $Child.Process.ExitCode; Output = $out; Error = if ($Child.Err) { $Child.Err.Result } else { '' }; Result = $result }
}

function Invoke-PwshProcess([string]$Command, [hashtable]$Environment = @{}, [int]$TimeoutSeconds = 240) {
    <# Runs $Command in another pwsh process and waits for it (see Wait-PwshProcess). #>
    Wait-PwshProcess (Start-PwshProcess $Command $Environment) $TimeoutSeconds
}

function Get-MissingCommandReason([string[]]$Command, [switch]$NeedsRoot) {
    <# Why a test that needs these programs (or root) cannot run here; $null when it can. Under CI=true nothing is
       missing on purpose (.ci/run installs every tool), so the tests run and fail instead of skipping. #>
    if ($env:CI -eq 'true') { return $null }
    $missing = @($Command | Where-Object { -not (Get-Command $_ -CommandType Application -ErrorAction Ignore) })
    if ($missing) { return "needs $($missing -join ', ') (not installed; .ci/run installs it)" }
    if ($NeedsRoot -and [Environment]::UserName -ne 'root') { return 'needs root (loop devices, mounts)' }
    $null
}

function Invoke-Chromium([string]$Html, [string]$Screenshot, [int]$Width = 1280, [int]$Height = 2400) {
    <# Opens a local HTML file in headless Chromium (Debian's chromium, no network needed) and returns the DOM it built;
       with -Screenshot also saves a PNG of the page. --no-sandbox: the tests run as root. #>
    $common = @('--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--no-first-run', "--window-size=$Width,$Height", "--user-data-dir=$([IO.Path]::Combine([IO.Path]::GetTempPath(), 'asr-chromium-' + [Guid]::NewGuid().ToString('N').Substring(0, 8)))")
    $url = [Uri]::new([IO.Path]::GetFullPath($Html), [UriKind]::Absolute).AbsoluteUri
    if ($Screenshot) {
        & chromium @common "--screenshot=$Screenshot" $url 2>$null | Out-Null
        if ($LASTEXITCODE -ne 0) { throw "chromium --screenshot failed ($LASTEXITCODE)" }
    }
    $dom = & chromium @common '--dump-dom' $url 2>$null
    if ($LASTEXITCODE -ne 0) { throw "chromium --dump-dom failed ($LASTEXITCODE)" }
    $dom -join "`n"
}

function Get-PngSize([string]$Path) {
    <# Width and height from a PNG's IHDR chunk. #>
    $b = [IO.File]::ReadAllBytes($Path)
    if ([Convert]::ToHexString($b, 0, 8) -ne '89504E470D0A1A0A') { throw "$Path is not a PNG" }
    $int = { param($o) ([int]$b[$o] -shl 24) -bor ([int]$b[$o + 1] -shl 16) -bor ([int]$b[$o + 2] -shl 8) -bor [int]$b[$o + 3] }
    [pscustomobject]@{ Width = & $int 16; Height = & $int 20 }
}

function Get-ExportedHashes($Point, [string]$Destination) {
    <# Exports a point and returns @{ diskName = sha256 }. #>
    $job = $Point | Export-AsrRecoveryPoint -Destination $Destination -ErrorAction Stop
    $hashes = @{}
    foreach ($f in $job.Result.Files) { $hashes[[IO.Path]::GetFileName($f)] = Get-AsrSampleHash $f }
    $hashes
}

function Initialize-TestVault([string]$Dir, [string[]]$Machines = @(), [long]$SizeBytes = 1MB) {
    <# A connected vault (at New-TestVaultLocation $Dir) with policy 'p' and each machine protected (one sample disk each in $Dir). #>
    $vaultPath = New-TestVaultLocation $Dir
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

function Wait-Until([scriptblock]$Condition, [int]$TimeoutSeconds, [string]$What, [Alias('Log')][string]$LogPath) {
    <# Polls $Condition until it is true; after $TimeoutSeconds throws, with the log at -LogPath (default: the caller's
       $log, e.g. an agent's) in the message. #>
    if (-not $LogPath) { $LogPath = Get-Variable -Name log -ValueOnly -ErrorAction Ignore }
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not (& $Condition)) {
        if ([DateTime]::UtcNow -gt $deadline) { throw "Timed out after $TimeoutSeconds s waiting until $What. $(if ($LogPath -and [IO.File]::Exists($LogPath)) { 'Log: ' + [IO.File]::ReadAllText($LogPath) })" }
        [Threading.Thread]::Sleep(100)
    }
}
