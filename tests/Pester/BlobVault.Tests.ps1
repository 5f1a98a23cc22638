# Vaults in Azure Blob Storage (issue #6), end to end through the cmdlets, against a real Azurite started by
# this file (blob service only, on a free port, its data in a temp folder; stopped with SIGTERM at the end).
# Every credential kind opens the same vault; errors never carry a secret; no secret is ever stored in the
# container, in job or event records or in an agent's log; agents (separate processes) get the credential
# through their environment; and several processes share one container safely.
#
# Without azurite-blob on PATH the tests are reported as skipped with the reason, except under CI=true, where
# they run and fail: CI installs Azurite (npm install -g azurite).

Describe 'Blob vaults in Azurite' -Tag Azurite {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'TestAzurite.ps1'))
        $skipReason = Get-AzuriteSkipReason
        if ($skipReason) { return }
        Import-Module AsrModule
        $Account = $TestAzuriteAccount
        $AccountKey = $TestAzuriteAccountKey
        $SamplesScript = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..', '..', 'samples', 'AsrSampleDisks.ps1'))

        # ---- helpers (this file's own: TestHelpers.ps1 is shared) ----

        function New-ContainerName([string]$Prefix = 'vault') { $Prefix + '-' + [Guid]::NewGuid().ToString('N').Substring(0, 16) }

        function New-ContainerSas([string]$Container, [string]$SigningKey = $AccountKey, [string]$Permissions = 'racwdl') {
            <# A service SAS for a container, signed here by HMAC-SHA256 over the documented string-to-sign of
               version 2020-12-06 and later (permissions, start, expiry, canonical resource, identifier, IP,
               protocol, version, resource, snapshot time, encryption scope, rscc, rscd, rsce, rscl, rsct). #>
            $version = '2022-11-02'
            $expiry = [DateTime]::UtcNow.AddHours(3).ToString('yyyy-MM-ddTHH:mm:ssZ')
            $toSign = @($Permissions, '', $expiry, "/blob/$Account/$Container", '', '', '', $version, 'c', '', '', '', '', '', '', '') -join "`n"
            $hmac = [Security.Cryptography.HMACSHA256]::new([Convert]::FromBase64String($SigningKey))
            try { $signature = [Convert]::ToBase64String($hmac.ComputeHash([Text.Encoding]::UTF8.GetBytes($toSign))) } finally { $hmac.Dispose() }
            [pscustomobject]@{
                Token     = "sv=$version&sr=c&sp=$Permissions&se=$([Uri]::EscapeDataString($expiry))&sig=$([Uri]::EscapeDataString($signature))"
                Signature = $signature
            }
        }

        function Get-ContainerBlobs([string]$ContainerUrl, [string]$Sas) {
            <# Every blob of a container through the REST API (List Blobs, then Get Blob), with the given SAS:
               name, bytes, and the metadata and listing text (which could carry a secret too). #>
            $http = [Net.Http.HttpClient]::new()
            try {
                $marker = ''; $names = [Collections.Generic.List[string]]::new(); $listings = [Text.StringBuilder]::new()
                do {
                    $xmlText = $http.GetStringAsync("$ContainerUrl`?restype=container&comp=list&include=metadata&$Sas$(if ($marker) { '&marker=' + [Uri]::EscapeDataString($marker) })").GetAwaiter().GetResult()
                    [void]$listings.Append($xmlText)
                    $xml = [xml]$xmlText
                    foreach ($b in $xml.EnumerationResults.Blobs.Blob) { $names.Add($b.Name) }
                    $marker = [string]$xml.EnumerationResults.NextMarker
                } while ($marker)
                foreach ($name in $names) {
                    $path = ($name.Split('/') | ForEach-Object { [Uri]::EscapeDataString($_) }) -join '/'
                    $response = $http.GetAsync("$ContainerUrl/$path`?$Sas").GetAwaiter().GetResult()
                    if (-not $response.IsSuccessStatusCode) { throw "GET $name returned $([int]$response.StatusCode)" }
                    $headers = (@($response.Headers) + @($response.Content.Headers) | ForEach-Object { "$($_.Key): $($_.Value -join ',')" }) -join "`n"
                    [pscustomobject]@{ Name = $name; Bytes = $response.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult(); Headers = $headers }
                }
                [pscustomobject]@{ Name = '(listing)'; Bytes = [Text.Encoding]::UTF8.GetBytes($listings.ToString()); Headers = '' }
            } finally { $http.Dispose() }
        }

        function Get-SecretForms([string[]]$Keys, [string[]]$Signatures, [string[]]$Whole) {
            <# The forms a secret could be stored in: as given, URL-encoded, and (keys, signatures) as raw bytes. #>
            $forms = [Collections.Generic.List[object]]::new()
            foreach ($k in @($Keys) + @($Signatures)) {
                if (-not $k) { continue }
                $forms.Add(@{ Name = 'a key or signature'; Value = $k })
                $forms.Add(@{ Name = 'a key or signature (URL-encoded)'; Value = [Uri]::EscapeDataString($k) })
                $forms.Add(@{ Name = 'a key or signature (raw bytes)'; Value = [Text.Encoding]::Latin1.GetString([Convert]::FromBase64String($k)) })
            }
            foreach ($w in $Whole) { if ($w) { $forms.Add(@{ Name = 'a connection string or SAS'; Value = $w }) } }
            , $forms
        }

        function Assert-NoSecret([string]$Text, $Forms, [string]$What) {
            foreach ($f in $Forms) {
                if ($Text.Contains($f.Value, [StringComparison]::Ordinal)) { throw "$What contains $($f.Name)." }
            }
        }

        function ConvertTo-TestText($InputObject, [int]$Depth = 4) {
            <# Everything an object shows, recursively (property names and values), as one text. #>
            $sb = [Text.StringBuilder]::new()
            Add-TestText $sb $InputObject $Depth
            $sb.ToString()
        }
        function Add-TestText([Text.StringBuilder]$Sb, $Value, [int]$Depth) {
            if ($null -eq $Value) { return }
            [void]$Sb.AppendLine([string]$Value)
            if ($Depth -le 0 -or $Value -is [string] -or $Value -is [ValueType] -or $Value -is [Type] -or $Value -is [byte[]]) { return }
            if ($Value -is [Collections.IDictionary]) { foreach ($k in $Value.Keys) { [void]$Sb.AppendLine([string]$k); Add-TestText $Sb $Value[$k] ($Depth - 1) }; return }
            if ($Value -is [Collections.IEnumerable]) { foreach ($e in $Value) { Add-TestText $Sb $e ($Depth - 1) }; return }
            foreach ($p in $Value.PSObject.Properties) {
                $v = try { $p.Value } catch { $null }
                [void]$Sb.AppendLine($p.Name)
                Add-TestText $Sb $v ($Depth - 1)
            }
        }

        function Get-ErrorText($ErrorRecord) {
            <# What an error shows anywhere: its message, details, target, category, and every exception of its chain. #>
            $sb = [Text.StringBuilder]::new()
            [void]$sb.AppendLine($ErrorRecord.ToString()).AppendLine([string]$ErrorRecord.ErrorDetails).AppendLine($ErrorRecord.CategoryInfo.ToString())
            [void]$sb.AppendLine((ConvertTo-TestText $ErrorRecord.TargetObject 2))
            $pending = [Collections.Generic.Queue[Exception]]::new(); $pending.Enqueue($ErrorRecord.Exception)
            while ($pending.Count -gt 0) {
                $e = $pending.Dequeue()
                [void]$sb.AppendLine($e.GetType().FullName).AppendLine($e.Message).AppendLine($e.ToString())
                foreach ($k in $e.Data.Keys) { [void]$sb.AppendLine("$k=$($e.Data[$k])") }
                if ($e -is [AggregateException]) { foreach ($i in $e.InnerExceptions) { $pending.Enqueue($i) } }
                elseif ($e.InnerException) { $pending.Enqueue($e.InnerException) }
            }
            $sb.ToString()
        }

        function Get-ErrorOf([scriptblock]$Command) {
            <# The terminating error of $Command (which must fail), with how long it took. #>
            $watch = [Diagnostics.Stopwatch]::StartNew()
            $record = $null
            try { $null = & $Command } catch { $record = $_ }
            if (-not $record) { throw "Expected an error from: $Command" }
            [pscustomobject]@{ Record = $record; Seconds = $watch.Elapsed.TotalSeconds; Id = $record.FullyQualifiedErrorId.Split(',')[0]; Category = [string]$record.CategoryInfo.Category }
        }

        function Get-ExportHash($Point, [string]$Destination, $Vault) {
            <# Exports a one-disk point and returns the SHA-256 of the exported disk. #>
            $parameters = @{ Destination = $Destination; ErrorAction = 'Stop' }
            if ($Vault) { $parameters.Vault = $Vault }
            $job = $Point | Export-AsrRecoveryPoint @parameters
            $job.State | Should -Be 'Succeeded'
            Get-AsrSampleHash $job.Result.Files[0]
        }

        # The child scripts' common start: sample disks, the module, and errors as "Id|Category".
        $ChildPrologue = @"
`$ErrorActionPreference = 'Stop'
. '$SamplesScript'
Import-Module AsrModule
function Get-Outcome([scriptblock]`$Command) { try { `$null = & `$Command; 'OK' } catch { `$_.FullyQualifiedErrorId.Split(',')[0] + '|' + `$_.CategoryInfo.Category } }
"@

        function Get-ProcessesWith([string]$Text) {
            <# Process ids whose command line contains $Text. #>
            foreach ($d in [IO.Directory]::GetDirectories('/proc')) {
                $name = [IO.Path]::GetFileName($d)
                if ($name -notmatch '^\d+$') { continue }
                try { $cmd = [IO.File]::ReadAllText("$d/cmdline").Replace([char]0, ' ') } catch { continue }
                if ($cmd.Contains($Text)) { [int]$name }
            }
        }

        # No ambient storage credential from the machine running the tests: each test sets what it needs.
        $AmbientNames = 'AZURE_STORAGE_CONNECTION_STRING', 'AZURE_STORAGE_SAS_TOKEN', 'AZURE_STORAGE_KEY', 'AZURE_STORAGE_ACCOUNT', 'ASR_VAULT_CREDENTIAL', 'ASR_VAULT_MANAGED_IDENTITY_CLIENT_ID'
        $SavedAmbient = @{}
        foreach ($n in $AmbientNames) { $SavedAmbient[$n] = [Environment]::GetEnvironmentVariable($n); [Environment]::SetEnvironmentVariable($n, $null) }

        $dir = New-TestDirectory
        $Azurite = Start-TestAzurite
    }
    BeforeEach { if ($skipReason) { Set-ItResult -Skipped -Because $skipReason } }
    AfterAll {
        if ($skipReason) { return }
        Disconnect-AsrVault
        Stop-TestAzurite $Azurite
        foreach ($n in $AmbientNames) { [Environment]::SetEnvironmentVariable($n, $SavedAmbient[$n]) }
        if ($dir -and [IO.Directory]::Exists($dir)) { [IO.Directory]::Delete($dir, $true) }
    }

    Context 'One vault opened with every credential kind' {
        BeforeAll {
            if ($skipReason) { return }
            $container = New-ContainerName
            $containerUrl = "$($Azurite.Endpoint)/$container"
            $sas = New-ContainerSas $container
            $disk = [IO.Path]::Combine($dir, 'web.img')
            New-AsrSampleDisk -Path $disk -SizeBytes 4MB -Seed 11 | Out-Null
            $created = New-AsrVault -ConnectionString $Azurite.ConnectionString -Container $container -EncryptionKey 'blob vault key'
            $created | Connect-AsrVault
            New-AsrPolicy -Name p | Out-Null
            $enabled = Enable-AsrReplication -Name web -Disk $disk -Policy p
            $secrets = Get-SecretForms -Keys $AccountKey -Signatures $sas.Signature -Whole $Azurite.ConnectionString, $sas.Token
        }
        AfterAll { if (-not $skipReason) { Disconnect-AsrVault } }

        It '-ConnectionString -Container creates the container and an encrypted vault; the vault object shows no secret' {
            $created.Backend | Should -Be 'AzureBlob'
            $created.Authentication | Should -Be 'ConnectionString'
            $created.Location | Should -Be $containerUrl
            $enabled.State | Should -Be 'Succeeded'
            # The container exists and holds the vault header (seen through the REST API, not the module).
            (Get-ContainerBlobs $containerUrl $sas.Token).Name | Should -Contain 'asrvault.json'
            Assert-NoSecret (ConvertTo-TestText $created) $secrets 'The vault object'
            Assert-NoSecret (ConvertTo-TestText (Get-AsrVault)) $secrets 'Get-AsrVault'
        }

        It '-ContainerUri -AccountKey opens the same vault and reads its point' {
            $v = Connect-AsrVault -ContainerUri $containerUrl -AccountKey $AccountKey -EncryptionKey 'blob vault key' -PassThru
            $v.VaultId | Should -Be $created.VaultId
            $v.Authentication | Should -Be 'AccountKey'
            $v.Location | Should -Be $containerUrl
            Get-ExportHash (Get-AsrRecoveryPoint web -Latest) ([IO.Path]::Combine($dir, 'by-key')) | Should -Be (Get-AsrSampleHash $disk)
            Assert-NoSecret (ConvertTo-TestText $v) $secrets 'The vault object'
        }

        It '-ContainerUri -SasToken (a container SAS signed here) opens the same vault, with or without the leading ?' {
            foreach ($token in $sas.Token, "?$($sas.Token)") {
                $v = Connect-AsrVault -ContainerUri $containerUrl -SasToken $token -EncryptionKey 'blob vault key' -PassThru
                $v.VaultId | Should -Be $created.VaultId
                $v.Authentication | Should -Be 'SasToken'
                Get-ExportHash (Get-AsrRecoveryPoint web -Latest) ([IO.Path]::Combine($dir, "by-sas-$($token.Length)")) | Should -Be (Get-AsrSampleHash $disk)
                Assert-NoSecret (ConvertTo-TestText $v) $secrets 'The vault object'
            }
        }

        It 'a SAS in the URL given to -Path opens the same vault; Location drops the query' {
            $v = Connect-AsrVault -Path "$containerUrl`?$($sas.Token)" -EncryptionKey 'blob vault key' -PassThru
            $v.VaultId | Should -Be $created.VaultId
            $v.Authentication | Should -Be 'SasToken'
            $v.Location | Should -Be $containerUrl
            (Get-AsrVault).Location | Should -Be $containerUrl
            Assert-NoSecret (ConvertTo-TestText (Get-AsrVault)) $secrets 'Get-AsrVault'
            (Get-AsrProtectedItem web).VaultLocation | Should -Be $containerUrl
        }

        It 'a plain URL uses AZURE_STORAGE_CONNECTION_STRING when it names that account, else AZURE_STORAGE_KEY' {
            try {
                $env:AZURE_STORAGE_CONNECTION_STRING = $Azurite.ConnectionString
                foreach ($v in (Connect-AsrVault -Path $containerUrl -EncryptionKey 'blob vault key' -PassThru),
                               (Connect-AsrVault -ContainerUri $containerUrl -EncryptionKey 'blob vault key' -PassThru)) {
                    $v.VaultId | Should -Be $created.VaultId
                    $v.Authentication | Should -Be 'ConnectionString'
                }
                (Get-AsrProtectedItem web).LastPointSequence | Should -BeGreaterOrEqual 1
                # A connection string of another endpoint is not used for this URL: with nothing else, the
                # default credential, which is never sent over http.
                $env:AZURE_STORAGE_CONNECTION_STRING = $Azurite.ConnectionString.Replace(":$($Azurite.Port)/", ":$($Azurite.Port + 1)/")
                $other = Get-ErrorOf { Connect-AsrVault -Path $containerUrl -EncryptionKey 'blob vault key' -ErrorAction Stop }
                $other.Record.Exception.Message | Should -Match 'only sent over https'
                # ... while AZURE_STORAGE_KEY (the account is the URL's) is.
                $env:AZURE_STORAGE_KEY = $AccountKey
                (Connect-AsrVault -Path $containerUrl -EncryptionKey 'blob vault key' -PassThru).Authentication | Should -Be 'AccountKey'
            } finally {
                $env:AZURE_STORAGE_CONNECTION_STRING = $null
                $env:AZURE_STORAGE_KEY = $null
            }
        }

        It 'a point replicated with one credential and exported with another equals the disk' {
            Write-AsrSampleChange -Path $disk -Fraction 0.2 -Seed 12 | Out-Null
            $expected = Get-AsrSampleHash $disk
            $bySas = Connect-AsrVault -ContainerUri $containerUrl -SasToken $sas.Token -EncryptionKey 'blob vault key' -PassThru
            $byKey = Connect-AsrVault -ContainerUri $containerUrl -AccountKey $AccountKey -EncryptionKey 'blob vault key' -PassThru
            $byConnectionString = Connect-AsrVault -ConnectionString $Azurite.ConnectionString -Container $container -EncryptionKey 'blob vault key' -PassThru
            $cycle = Get-AsrProtectedItem web -Vault $bySas | Invoke-AsrReplication -Vault $bySas
            $cycle.State | Should -Be 'Succeeded'
            $sequence = $cycle.Result.RecoveryPointSequence
            $sequence | Should -BeGreaterThan 1
            foreach ($v in $byKey, $byConnectionString) {
                $point = Get-AsrRecoveryPoint web -Latest -Vault $v
                $point.Sequence | Should -Be $sequence
                Get-ExportHash $point ([IO.Path]::Combine($dir, "cross-$($v.Authentication)")) $v | Should -Be $expected
            }
            # ... and replicated with the key, exported through the SAS.
            Write-AsrSampleChange -Path $disk -Fraction 0.1 -Seed 13 | Out-Null
            (Get-AsrProtectedItem web -Vault $byKey | Invoke-AsrReplication -Vault $byKey).State | Should -Be 'Succeeded'
            Get-ExportHash (Get-AsrRecoveryPoint web -Latest -Vault $bySas) ([IO.Path]::Combine($dir, 'cross-back')) $bySas | Should -Be (Get-AsrSampleHash $disk)
            @(Get-AsrRecoveryPoint web -Vault $bySas | Test-AsrRecoveryPoint -Vault $bySas | Where-Object { -not $_.Verified }).Count | Should -Be 0
        }
    }

    Context 'A bearer token over https (a child process that trusts the self-signed certificate through SSL_CERT_FILE)' {
        BeforeAll {
            if ($skipReason) { return }
            $secure = Start-TestAzurite -HttpsWithOAuth
            $container = New-ContainerName
            $containerUrl = "$($secure.Endpoint)/$container"
            # A JWT Azurite accepts (--oauth basic checks issuer, audience and lifetime, not the signature).
            function ConvertTo-Base64Url([string]$Json) { [Convert]::ToBase64String([Text.Encoding]::UTF8.GetBytes($Json)).TrimEnd('=').Replace('+', '-').Replace('/', '_') }
            $now = [DateTimeOffset]::UtcNow
            $claims = '{"aud":"https://storage.azure.com","iss":"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/","iat":' + $now.AddMinutes(-5).ToUnixTimeSeconds() +
                ',"nbf":' + $now.AddMinutes(-5).ToUnixTimeSeconds() + ',"exp":' + $now.AddHours(2).ToUnixTimeSeconds() + ',"oid":"11111111-2222-3333-4444-555555555555"}'
            $token = (ConvertTo-Base64Url '{"alg":"RS256","typ":"JWT"}') + '.' + (ConvertTo-Base64Url $claims) + '.c2lnbmF0dXJl'
            $agentHost = 'tok-' + [Guid]::NewGuid().ToString('N').Substring(0, 8)
            $work = New-TestDirectory
            $agentLog = [IO.Path]::Combine($work, 'agent.log')
            $script = $ChildPrologue + @"

`$uri = '$containerUrl'
`$v = New-AsrVault -ContainerUri `$uri -AccessToken `$env:ASR_TEST_TOKEN -EncryptionKey 'token key'
'RESULT Authentication=' + `$v.Authentication
'RESULT Location=' + `$v.Location
`$v | Connect-AsrVault
New-AsrPolicy -Name p | Out-Null
`$disk = '$work/tok.img'
New-AsrSampleDisk -Path `$disk -SizeBytes 4MB -Seed 31 | Out-Null
'RESULT Enable=' + (Enable-AsrReplication -Name tok -Disk `$disk -Policy p).State
Write-AsrSampleChange -Path `$disk -Fraction 0.25 -Seed 32 | Out-Null
'RESULT Cycle=' + (Get-AsrProtectedItem tok | Invoke-AsrReplication).State
'RESULT Source=' + (Get-AsrSampleHash `$disk)
# The same point through the account's (https) connection string, and through the token in a new connection.
Disconnect-AsrVault
Connect-AsrVault -ConnectionString `$env:ASR_TEST_CS -Container '$container' -EncryptionKey 'token key'
'RESULT ConnectionStringAuthentication=' + (Get-AsrVault).Authentication
`$job = Get-AsrRecoveryPoint tok -Latest | Export-AsrRecoveryPoint -Destination '$work/by-cs'
'RESULT ExportedByConnectionString=' + (Get-AsrSampleHash `$job.Result.Files[0])
Connect-AsrVault -ContainerUri `$uri -AccessToken ('Bearer ' + `$env:ASR_TEST_TOKEN) -EncryptionKey 'token key'
'RESULT DefaultAuthentication=' + (Get-AsrVault).Authentication
`$job = Get-AsrRecoveryPoint tok -Latest | Export-AsrRecoveryPoint -Destination '$work/by-token'
'RESULT ExportedByToken=' + (Get-AsrSampleHash `$job.Result.Files[0])
'RESULT Verified=' + @(Get-AsrRecoveryPoint tok | Test-AsrRecoveryPoint | Where-Object { `$_.Verified }).Count + '/' + @(Get-AsrRecoveryPoint tok).Count
# An agent cannot be given a token it cannot renew.
'RESULT Agent=' + (Get-Outcome { Start-AsrAgent -HostName '$agentHost' -LogPath '$agentLog' -EncryptionKey 'token key' })
try { Start-AsrAgent -HostName '$agentHost' -LogPath '$agentLog' -EncryptionKey 'token key' } catch { 'RESULT AgentMessage=' + `$_.Exception.Message }
'RESULT AgentRecords=' + @(Get-AsrAgent -ErrorAction SilentlyContinue).Count
"@
            $certOnly = @{ ASR_TEST_TOKEN = $token; ASR_TEST_CS = $secure.ConnectionString; SSL_CERT_FILE = $secure.Cert; SSL_CERT_DIR = $null }
            # The same start without the certificate trusted.
            $untrusted = Start-PwshProcess ($ChildPrologue + "`n'RESULT Open=' + (Get-Outcome { New-AsrVault -ContainerUri '$($secure.Endpoint)/$(New-ContainerName)' -AccessToken `$env:ASR_TEST_TOKEN })`ntry { New-AsrVault -ContainerUri '$($secure.Endpoint)/$(New-ContainerName)' -AccessToken `$env:ASR_TEST_TOKEN } catch { 'RESULT Message=' + `$_.Exception.Message }") @{ ASR_TEST_TOKEN = $token; SSL_CERT_FILE = $null; SSL_CERT_DIR = $null }
            $run = Wait-PwshProcess (Start-PwshProcess $script $certOnly)
            $untrustedRun = Wait-PwshProcess $untrusted
            $r = $run.Result
        }
        AfterAll {
            if ($skipReason) { return }
            foreach ($p in @(Get-ProcessesWith "--host-name $agentHost")) { try { [Diagnostics.Process]::GetProcessById($p).Kill() } catch { } }
            Stop-TestAzurite $secure
            if ($work -and [IO.Directory]::Exists($work)) { [IO.Directory]::Delete($work, $true) }
        }

        It '-AccessToken creates and opens a vault over https; a point replicated with it equals the disk, also exported through a connection string' {
            $r.Authentication | Should -Be 'AccessToken' -Because "the child printed: $($run.Output) $($run.Error)"
            $r.Location | Should -Be $containerUrl
            $r.Enable | Should -Be 'Succeeded'
            $r.Cycle | Should -Be 'Succeeded'
            $r.Source | Should -Match '^[0-9A-F]{64}$'
            $r.ConnectionStringAuthentication | Should -Be 'ConnectionString'
            $r.ExportedByConnectionString | Should -Be $r.Source
            $r.DefaultAuthentication | Should -Be 'AccessToken'
            $r.ExportedByToken | Should -Be $r.Source
            $r.Verified | Should -Be '2/2'
            $run.Output + $run.Error | Should -Not -Match ([regex]::Escape($token.Split('.')[1]))
        }

        It 'Start-AsrAgent on a vault connected with -AccessToken fails with VaultCredentialNotForwardable and starts nothing' {
            $r.Agent | Should -Be 'VaultCredentialNotForwardable|InvalidOperation' -Because "the child printed: $($run.Output) $($run.Error)"
            $r.AgentMessage | Should -Match '-AccessToken'
            $r.AgentRecords | Should -Be '0'
            [IO.File]::Exists($agentLog) | Should -BeFalse
            @(Get-ProcessesWith "--host-name $agentHost").Count | Should -Be 0
        }

        It 'the certificate was trusted only through SSL_CERT_FILE: without it the same start is refused (UntrustedRoot)' {
            # A certificate the machine does not trust is configuration, not an outage: refused at once, as a security error.
            $untrustedRun.Result.Open | Should -Be 'VaultAccessDenied|SecurityError' -Because "the child printed: $($untrustedRun.Output) $($untrustedRun.Error)"
            $untrustedRun.Result.Message | Should -Match 'certificate'
        }
    }

    Context 'Refused credentials and malformed or missing containers: clear errors without secrets' {
        BeforeAll {
            if ($skipReason) { return }
            $container = New-ContainerName
            $containerUrl = "$($Azurite.Endpoint)/$container"
            New-AsrVault -ConnectionString $Azurite.ConnectionString -Container $container | Out-Null
            $wrongKey = [Convert]::ToBase64String([Security.Cryptography.RandomNumberGenerator]::GetBytes(64))
            $wrongConnectionString = $Azurite.ConnectionString.Replace($AccountKey, $wrongKey)
            $wrongSas = New-ContainerSas $container $wrongKey
            $goodSas = New-ContainerSas $container
            $secrets = Get-SecretForms -Keys $AccountKey, $wrongKey -Signatures $wrongSas.Signature, $goodSas.Signature -Whole $Azurite.ConnectionString, $wrongConnectionString, $wrongSas.Token
        }

        It 'a wrong key, connection string or SAS signature is VaultAccessDenied (SecurityError), with no secret in the error: <_>' -ForEach @(
            'AccountKey', 'ConnectionString', 'SasToken', 'SasInPath', 'NewAsrVaultWithWrongKey'
        ) {
            $kind = $_
            $failure = switch ($kind) {
                'AccountKey' { Get-ErrorOf { Connect-AsrVault -ContainerUri $containerUrl -AccountKey $wrongKey -ErrorAction Stop } }
                'ConnectionString' { Get-ErrorOf { Connect-AsrVault -ConnectionString $wrongConnectionString -Container $container -ErrorAction Stop } }
                'SasToken' { Get-ErrorOf { Connect-AsrVault -ContainerUri $containerUrl -SasToken $wrongSas.Token -ErrorAction Stop } }
                'SasInPath' { Get-ErrorOf { Connect-AsrVault -Path "$containerUrl`?$($wrongSas.Token)" -ErrorAction Stop } }
                'NewAsrVaultWithWrongKey' { Get-ErrorOf { New-AsrVault -ContainerUri "$($Azurite.Endpoint)/$(New-ContainerName)" -AccountKey $wrongKey -ErrorAction Stop } }
            }
            $failure.Id | Should -Be 'VaultAccessDenied' -Because $failure.Record.Exception.Message
            $failure.Category | Should -Be 'SecurityError'
            $failure.Seconds | Should -BeLessThan 30
            $failure.Record.TargetObject | Should -Not -BeNullOrEmpty
            Assert-NoSecret (Get-ErrorText $failure.Record) $secrets "The error ($kind)"
        }

        It 'a missing container is VaultNotFound (ObjectNotFound) with every credential' {
            $missing = New-ContainerName 'missing'
            $missingSas = New-ContainerSas $missing
            foreach ($attempt in { Connect-AsrVault -ConnectionString $Azurite.ConnectionString -Container $missing -ErrorAction Stop },
                                 { Connect-AsrVault -ContainerUri "$($Azurite.Endpoint)/$missing" -AccountKey $AccountKey -ErrorAction Stop },
                                 { Connect-AsrVault -ContainerUri "$($Azurite.Endpoint)/$missing" -SasToken $missingSas.Token -ErrorAction Stop }) {
                $failure = Get-ErrorOf $attempt
                $failure.Id | Should -Be 'VaultNotFound' -Because $failure.Record.Exception.Message
                $failure.Category | Should -Be 'ObjectNotFound'
                $failure.Record.Exception.Message | Should -Match $missing
                Assert-NoSecret (Get-ErrorText $failure.Record) (Get-SecretForms -Keys $AccountKey -Signatures $missingSas.Signature -Whole $Azurite.ConnectionString) 'The error'
            }
            # Nothing was created by trying.
            (Get-ErrorOf { Connect-AsrVault -ConnectionString $Azurite.ConnectionString -Container $missing -ErrorAction Stop }).Id | Should -Be 'VaultNotFound'
        }

        It 'a malformed container name or URL is InvalidArgument, checked before any request' {
            foreach ($attempt in { Connect-AsrVault -ConnectionString $Azurite.ConnectionString -Container 'Bad_Name' -ErrorAction Stop },
                                 { New-AsrVault -ConnectionString $Azurite.ConnectionString -Container 'ab' -ErrorAction Stop },
                                 { Connect-AsrVault -ContainerUri "$($Azurite.Endpoint)/Upper-Case" -AccountKey $AccountKey -ErrorAction Stop },
                                 { Connect-AsrVault -ContainerUri "$($Azurite.Endpoint)/double--hyphen" -SasToken $goodSas.Token -ErrorAction Stop },
                                 { Connect-AsrVault -ContainerUri "$containerUrl/a-blob-below" -AccountKey $AccountKey -ErrorAction Stop },
                                 { Connect-AsrVault -Path "$($Azurite.Endpoint)/Bad_Name`?$($goodSas.Token)" -ErrorAction Stop }) {
                $failure = Get-ErrorOf $attempt
                $failure.Id | Should -Be 'VaultNotFound' -Because $failure.Record.Exception.Message
                $failure.Category | Should -Be 'InvalidArgument'
                Assert-NoSecret (Get-ErrorText $failure.Record) $secrets 'The error'
            }
        }

        It 'a managed identity, a service principal or the default credential over http is refused at once: a token is only sent over https' {
            $principal = [pscredential]::new('00000000-0000-0000-0000-000000000001', [Net.NetworkCredential]::new('', 'client-secret-value').SecurePassword)
            foreach ($attempt in { Connect-AsrVault -ContainerUri $containerUrl -ManagedIdentity -ErrorAction Stop },
                                 { Connect-AsrVault -ContainerUri $containerUrl -ManagedIdentityClientId '00000000-0000-0000-0000-000000000002' -ErrorAction Stop },
                                 { Connect-AsrVault -ContainerUri $containerUrl -ErrorAction Stop },
                                 { Connect-AsrVault -Path $containerUrl -ErrorAction Stop },
                                 { New-AsrVault -ContainerUri "$($Azurite.Endpoint)/$(New-ContainerName)" -ManagedIdentity -ErrorAction Stop },
                                 { Connect-AsrVault -ContainerUri $containerUrl -TenantId '00000000-0000-0000-0000-000000000003' -Credential $principal -ErrorAction Stop }) {
                $failure = Get-ErrorOf $attempt
                $failure.Seconds | Should -BeLessThan 10
                $failure.Category | Should -Be 'InvalidArgument' -Because $failure.Record.Exception.Message
                $failure.Record.Exception.Message | Should -Match 'only sent over https'
                $failure.Record.Exception.Message | Should -Match ([regex]::Escape($Azurite.Endpoint))
                (Get-ErrorText $failure.Record) | Should -Not -Match 'client-secret-value'
            }
        }
    }

    Context 'Agents on a blob vault, and no secret stored anywhere' {
        BeforeAll {
            if ($skipReason) { return }
            $container = New-ContainerName
            $containerUrl = "$($Azurite.Endpoint)/$container"
            $sas = New-ContainerSas $container
            $secrets = Get-SecretForms -Keys $AccountKey -Signatures $sas.Signature -Whole $Azurite.ConnectionString, $sas.Token
            $byConnectionString = New-AsrVault -ConnectionString $Azurite.ConnectionString -Container $container
            $bySas = Connect-AsrVault -ContainerUri $containerUrl -SasToken $sas.Token -PassThru
            $byConnectionString | Connect-AsrVault
            New-AsrPolicy -Name fast -CrashConsistentFrequencyMinutes 0.5 -AppConsistentFrequencyHours 0 -RpoThresholdMinutes 1 | Out-Null
            $suffix = [Guid]::NewGuid().ToString('N').Substring(0, 6)
            $hostCs = "cs-$suffix"; $hostSas = "sas-$suffix"
            $logCs = [IO.Path]::Combine($dir, "agent-$hostCs.log"); $logSas = [IO.Path]::Combine($dir, "agent-$hostSas.log")
            $diskCs = [IO.Path]::Combine($dir, 'acs.img'); $diskSas = [IO.Path]::Combine($dir, 'asas.img'); $diskGone = [IO.Path]::Combine($dir, 'gone.img')
            New-AsrSampleDisk -Path $diskCs -SizeBytes 8MB -Seed 41 | Out-Null
            New-AsrSampleDisk -Path $diskSas -SizeBytes 8MB -Seed 42 | Out-Null
            New-AsrSampleDisk -Path $diskGone -SizeBytes 1MB -Seed 43 | Out-Null
            # Enabled by the connection string, the SAS, and the connection string (a disk that then disappears: the agent's cycle fails).
            Enable-AsrReplication -Name acs -Disk $diskCs -Policy fast -AgentHost $hostCs | Out-Null
            Enable-AsrReplication -Name asas -Disk $diskSas -Policy fast -AgentHost $hostSas -Vault $bySas | Out-Null
            Enable-AsrReplication -Name gone -Disk $diskGone -Policy fast -AgentHost $hostCs | Out-Null
            [IO.File]::Delete($diskGone)
            # A manual cycle through the SAS, and a failed job (an export to a path under a file).
            Write-AsrSampleChange -Path $diskSas -Fraction 0.05 -Seed 44 | Out-Null
            $manual = Get-AsrProtectedItem asas -Vault $bySas | Invoke-AsrReplication -Vault $bySas
            $blocker = [IO.Path]::Combine($dir, 'not-a-directory'); [IO.File]::WriteAllText($blocker, 'x')
            $failedJob = Get-AsrRecoveryPoint acs -Latest | Export-AsrRecoveryPoint -Destination ([IO.Path]::Combine($blocker, 'export')) -ErrorAction SilentlyContinue -ErrorVariable failedErrors -WarningAction SilentlyContinue
            # What the agents must replicate.
            Write-AsrSampleChange -Path $diskCs -Fraction 0.1 -Seed 45 | Out-Null
            Write-AsrSampleChange -Path $diskSas -Fraction 0.1 -Seed 46 | Out-Null
            $expectedCs = Get-AsrSampleHash $diskCs; $expectedSas = Get-AsrSampleHash $diskSas
            $beforeCs = (Get-AsrProtectedItem acs).LastPointSequence; $beforeSas = (Get-AsrProtectedItem asas).LastPointSequence
            $agentCs = Start-AsrAgent -HostName $hostCs -LogPath $logCs -TickInterval '00:00:00.250' -Vault $byConnectionString
            $agentSas = Start-AsrAgent -HostName $hostSas -LogPath $logSas -TickInterval '00:00:00.250' -Vault $bySas
            $commandLines = foreach ($a in $agentCs, $agentSas) { [IO.File]::ReadAllText("/proc/$($a.ProcessId)/cmdline").Replace([char]0, ' ') }
            $environments = foreach ($a in $agentCs, $agentSas) { , [IO.File]::ReadAllText("/proc/$($a.ProcessId)/environ").Split([char]0) }
        }
        AfterAll {
            if ($skipReason) { return }
            foreach ($h in $hostCs, $hostSas) { if ($h) { try { Stop-AsrAgent -HostName $h -Force -TimeoutSeconds 30 -ErrorAction SilentlyContinue | Out-Null } catch { } } }
            foreach ($h in $hostCs, $hostSas) { if ($h) { foreach ($p in @(Get-ProcessesWith "--host-name $h")) { try { [Diagnostics.Process]::GetProcessById($p).Kill() } catch { } } } }
            Disconnect-AsrVault
        }

        It 'the manual cycle through the SAS succeeded and the export job failed (recorded)' {
            $manual.State | Should -Be 'Succeeded'
            $failedJob.State | Should -Be 'Failed'
            $failedErrors[0].FullyQualifiedErrorId | Should -Match 'JobFailed'
            (Get-AsrJob -Id $failedJob.Id).State | Should -Be 'Failed'
        }

        It 'an agent started on a vault connected by connection string takes a point (in its own process) that equals the disk' {
            $agentCs.State | Should -Be 'Running'
            (Get-AsrAgent -HostName $hostCs).State | Should -Be 'Running'
            $agentCs.ProcessId | Should -Not -Be ([Environment]::ProcessId)
            Wait-Until { (Get-AsrProtectedItem acs).LastPointSequence -gt $beforeCs } 90 'the agent publishes a point of acs' $logCs
            $point = Get-AsrRecoveryPoint acs -Latest
            $job = Get-AsrJob -Id $point.JobId
            $job.StartedBy | Should -Be "agent:$hostCs"
            $job.OwnerProcessId | Should -Be $agentCs.ProcessId
            Get-ExportHash $point ([IO.Path]::Combine($dir, 'agent-cs')) | Should -Be $expectedCs
        }

        It 'an agent started on a vault connected by SAS takes a point that equals the disk' {
            (Get-AsrAgent -HostName $hostSas -Vault $bySas).State | Should -Be 'Running'
            $agentSas.ProcessId | Should -Not -Be $agentCs.ProcessId
            Wait-Until { (Get-AsrProtectedItem asas).LastPointSequence -gt $beforeSas } 90 'the agent publishes a point of asas' $logSas
            $point = Get-AsrRecoveryPoint asas -Latest -Vault $bySas
            $job = Get-AsrJob -Id $point.JobId -Vault $bySas
            $job.StartedBy | Should -Be "agent:$hostSas"
            $job.OwnerProcessId | Should -Be $agentSas.ProcessId
            Get-ExportHash $point ([IO.Path]::Combine($dir, 'agent-sas')) $bySas | Should -Be $expectedSas
        }

        It 'the credential reached the agents through their environment, not their command line' {
            foreach ($c in $commandLines) {
                $c | Should -Match '--vault'
                $c | Should -Match ([regex]::Escape($containerUrl))
                Assert-NoSecret $c $secrets 'An agent''s command line'
            }
            $environments[0] | Should -Contain "AZURE_STORAGE_CONNECTION_STRING=$($Azurite.ConnectionString)"
            @($environments[0] | Where-Object { $_ -like 'AZURE_STORAGE_SAS_TOKEN=*' }).Count | Should -Be 0
            $environments[1] | Should -Contain "AZURE_STORAGE_SAS_TOKEN=$($sas.Token)"
            @($environments[1] | Where-Object { $_ -like 'AZURE_STORAGE_CONNECTION_STRING=*' }).Count | Should -Be 0
        }

        It 'the agent records a cycle that failed (a disk that disappeared)' {
            Wait-Until { @(Get-AsrEvent -ProtectedItem gone -EventType CycleFailed -ErrorAction SilentlyContinue).Count -ge 1 } 90 'the agent reports the failed cycle of gone' $logCs
        }

        It 'Stop-AsrAgent stops both agents and records it' {
            foreach ($a in @(@{ Host = $hostCs; Pid = $agentCs.ProcessId }, @{ Host = $hostSas; Pid = $agentSas.ProcessId })) {
                $stopped = Stop-AsrAgent -HostName $a.Host -TimeoutSeconds 60 -PassThru
                $stopped.State | Should -Be 'Stopped'
                Wait-Until { @(Get-ProcessesWith "--host-name $($a.Host)").Count -eq 0 } 30 "the agent process of $($a.Host) exits"
                (Get-AsrEvent -EventType AgentStopped).AgentHost | Should -Contain $a.Host
            }
        }

        It 'no blob of the container holds the account key, the SAS signature or the connection string' {
            $blobs = @(Get-ContainerBlobs $containerUrl $sas.Token)
            $names = $blobs.Name
            # The scan covered what the scenario wrote: header, policy, items, points, jobs, events, agents.
            $blobs.Count | Should -BeGreaterThan 20
            $names | Should -Contain 'asrvault.json'
            foreach ($prefix in 'jobs/', 'events/', 'agents/', 'items/') { @($names | Where-Object { $_.StartsWith($prefix) }).Count | Should -BeGreaterThan 0 -Because "blobs under $prefix were listed ($($names -join ', '))" }
            # The vault is not encrypted: its records are readable, so a secret in them would be found.
            @($blobs | Where-Object { [Text.Encoding]::Latin1.GetString($_.Bytes).Contains('"asas"') }).Count | Should -BeGreaterThan 0
            foreach ($b in $blobs) {
                Assert-NoSecret ([Text.Encoding]::Latin1.GetString($b.Bytes)) $secrets "Blob '$($b.Name)'"
                Assert-NoSecret $b.Headers $secrets "The headers of blob '$($b.Name)'"
            }
        }

        It 'Get-AsrJob, Get-AsrEvent, Get-AsrAgent and the agents'' logs hold none of them either' {
            $jobs = @(Get-AsrJob)
            $jobs.Count | Should -BeGreaterOrEqual 6
            @($jobs | Where-Object State -eq 'Failed').Count | Should -BeGreaterOrEqual 2
            $events = @(Get-AsrEvent)
            $events.Count | Should -BeGreaterThan 0
            foreach ($pair in @(@{ What = 'Get-AsrJob'; Text = (ConvertTo-TestText $jobs 5) }, @{ What = 'Get-AsrEvent'; Text = (ConvertTo-TestText $events 4) },
                               @{ What = 'Get-AsrAgent'; Text = (ConvertTo-TestText @(Get-AsrAgent) 4) }, @{ What = 'Get-AsrProtectedItem'; Text = (ConvertTo-TestText @(Get-AsrProtectedItem) 4) })) {
                $pair.Text.Length | Should -BeGreaterThan 100
                Assert-NoSecret $pair.Text $secrets $pair.What
            }
            foreach ($log in $logCs, $logSas) {
                $text = [IO.File]::ReadAllText($log)
                $text | Should -Match 'gone|acs|asas'
                Assert-NoSecret $text $secrets "The agent log $log"
            }
        }
    }

    Context 'Several processes on one blob vault at once' {
        BeforeAll {
            if ($skipReason) { return }
            $container = New-ContainerName
            $containerUrl = "$($Azurite.Endpoint)/$container"
            New-AsrVault -ConnectionString $Azurite.ConnectionString -Container $container | Connect-AsrVault
            New-AsrPolicy -Name p | Out-Null
            $busyDisk = [IO.Path]::Combine($dir, 'busy.img')
            New-AsrSampleDisk -Path $busyDisk -SizeBytes 256MB -Seed 51 | Out-Null
            Enable-AsrReplication -Name busy -Disk $busyDisk -Policy p | Out-Null
            $rounds = 4

            function Invoke-Race([string]$Body) {
                <# Two child processes (a and b) open the vault by URL with the ambient connection string, then run
                   $Body for each round $i at the same instant: each waits at a barrier of files until the other is
                   there too. Returns their results. #>
                $sync = New-TestDirectory
                $children = foreach ($me in 'a', 'b') {
                    $other = if ($me -eq 'a') { 'b' } else { 'a' }
                    $script = $ChildPrologue + @"

`$me = '$me'
Connect-AsrVault -Path '$containerUrl'
function Wait-Barrier([int]`$i) {
    [IO.File]::WriteAllText('$sync/ready-$me-' + `$i, '')
    `$deadline = [DateTime]::UtcNow.AddSeconds(60)
    while (-not [IO.File]::Exists('$sync/ready-$other-' + `$i)) { if ([DateTime]::UtcNow -gt `$deadline) { throw 'the other process never came' }; [Threading.Thread]::Sleep(1) }
}
for (`$i = 1; `$i -le $rounds; `$i++) {
$Body
}
"@
                    Start-PwshProcess $script @{ AZURE_STORAGE_CONNECTION_STRING = $Azurite.ConnectionString }
                }
                $results = foreach ($c in $children) { Wait-PwshProcess $c }
                [IO.Directory]::Delete($sync, $true)
                $results
            }
        }
        AfterAll { if (-not $skipReason) { Disconnect-AsrVault } }

        It 'two processes replicate the same item at once: one succeeds, the other is ProtectedItemBusy (ResourceBusy); every point verifies and the latest equals the disk' {
            $pointsBefore = @(Get-AsrRecoveryPoint busy).Count
            # Once both children are done with the previous round, child a rewrites the whole disk (so the cycle lasts
            # seconds) while b waits; then both replicate at once.
            $runs = Invoke-Race @'
    Wait-Barrier (100 + $i)
    if ($me -eq 'a') { New-AsrSampleDisk -Path '__DISK__' -SizeBytes 256MB -Seed (60 + $i) | Out-Null; "RESULT hash$i=" + (Get-AsrSampleHash '__DISK__') }
    Wait-Barrier $i
    "RESULT round$i=" + (Get-Outcome { Get-AsrProtectedItem busy | Invoke-AsrReplication })
'@.Replace('__DISK__', $busyDisk)
            foreach ($run in $runs) { $run.Result.Count | Should -BeGreaterOrEqual $rounds -Because "a child printed: $($run.Output) $($run.Error)" }
            for ($i = 1; $i -le $rounds; $i++) {
                $outcomes = @($runs[0].Result["round$i"], $runs[1].Result["round$i"])
                @($outcomes | Where-Object { $_ -eq 'OK' }).Count | Should -Be 1 -Because "round $i ended $($outcomes -join ' / ')"
                @($outcomes | Where-Object { $_ -eq 'ProtectedItemBusy|ResourceBusy' }).Count | Should -Be 1 -Because "round $i ended $($outcomes -join ' / ')"
            }
            $points = @(Get-AsrRecoveryPoint busy)
            $points.Count | Should -Be ($pointsBefore + $rounds)
            $verified = @($points | Test-AsrRecoveryPoint)
            $verified.Count | Should -Be $points.Count
            @($verified | Where-Object { -not $_.Verified }).Count | Should -Be 0
            Get-ExportHash (Get-AsrRecoveryPoint busy -Latest) ([IO.Path]::Combine($dir, 'busy-latest')) | Should -Be $runs[0].Result["hash$rounds"]
            $runs[0].Result["hash$rounds"] | Should -Be (Get-AsrSampleHash $busyDisk)
        }

        It 'two processes create a policy of the same name at once: one wins, the other gets PolicyAlreadyExists' {
            $runs = Invoke-Race @'
    Wait-Barrier $i
    "RESULT round$i=" + (Get-Outcome { New-AsrPolicy -Name "race-$i" -RpoThresholdMinutes (10 + [int]($me -eq 'b')) })
'@
            for ($i = 1; $i -le $rounds; $i++) {
                $outcomes = @($runs[0].Result["round$i"], $runs[1].Result["round$i"])
                @($outcomes | Where-Object { $_ -eq 'OK' }).Count | Should -Be 1 -Because "round $i ended $($outcomes -join ' / '); $($runs[0].Output) $($runs[0].Error)"
                @($outcomes | Where-Object { $_ -eq 'PolicyAlreadyExists|ResourceExists' }).Count | Should -Be 1 -Because "round $i ended $($outcomes -join ' / ')"
                # The policy is the winner's.
                $winner = if ($runs[0].Result["round$i"] -eq 'OK') { 10 } else { 11 }
                (Get-AsrPolicy -Name "race-$i").RpoThresholdMinutes | Should -Be $winner
            }
        }

        It 'two processes enable replication of the same name at once: one wins, the other gets ProtectedItemAlreadyExists' {
            foreach ($me in 'a', 'b') { for ($i = 1; $i -le $rounds; $i++) { New-AsrSampleDisk -Path ([IO.Path]::Combine($dir, "race-$me-$i.img")) -SizeBytes 1MB -Seed $i | Out-Null } }
            $runs = Invoke-Race @'
    Wait-Barrier $i
    "RESULT round$i=" + (Get-Outcome { Enable-AsrReplication -Name "racer-$i" -Disk ('__DIR__/race-' + $me + '-' + $i + '.img') -Policy p })
'@.Replace('__DIR__', $dir)
            for ($i = 1; $i -le $rounds; $i++) {
                $outcomes = @($runs[0].Result["round$i"], $runs[1].Result["round$i"])
                @($outcomes | Where-Object { $_ -eq 'OK' }).Count | Should -Be 1 -Because "round $i ended $($outcomes -join ' / '); $($runs[0].Output) $($runs[0].Error)"
                @($outcomes | Where-Object { $_ -eq 'ProtectedItemAlreadyExists|ResourceExists' }).Count | Should -Be 1 -Because "round $i ended $($outcomes -join ' / ')"
                $items = @(Get-AsrProtectedItem | Where-Object Name -eq "racer-$i")
                $items.Count | Should -Be 1
                $winner = if ($runs[0].Result["round$i"] -eq 'OK') { 'a' } else { 'b' }
                $items[0].Disks[0].SourcePath | Should -Be ([IO.Path]::Combine($dir, "race-$winner-$i.img"))
                @(Get-AsrRecoveryPoint "racer-$i").Count | Should -Be 1
            }
        }
    }
}
