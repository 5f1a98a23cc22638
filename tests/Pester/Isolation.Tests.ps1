# The module loads into its own AssemblyLoadContext (module/AsrModule.psm1, src/AsrModule.Loader): a session
# that already holds other versions of assemblies the module ships (Az.Accounts pins its own Azure.Core and
# Microsoft.Extensions.*) must still be able to import and use it. Runs in a separate AsrHost process so the
# older assemblies are the first ones loaded, as in a runbook that imported Az.Accounts first.
#
# The isolated session uses a local vault and, in addition, a blob vault in Azurite: the local vault keeps the
# load-order check meaningful where Azurite is not installed, and the blob vault is where a clash would
# actually bite — the Azure SDK's code runs (pipeline, retries, shared-key signing, leases) while the
# session's Azure.Core 1.38 is loaded. Without azurite-blob the blob checks are skipped (the reason is in
# their names), except under CI=true, where they fail.

$AzuriteExecutable = foreach ($d in ([string]$env:PATH).Split([IO.Path]::PathSeparator)) {
    if ($d -and [IO.File]::Exists([IO.Path]::Combine($d, 'azurite-blob'))) { [IO.Path]::Combine($d, 'azurite-blob'); break }
}
$SkipBlob = -not $AzuriteExecutable -and $env:CI -ne 'true'
$BlobSkipReason = if ($SkipBlob) { ' (skipped: azurite-blob is not installed; npm install -g azurite)' } else { '' }

Describe 'The module coexists with other versions of its dependencies loaded first' -Tag OwnVaults {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $conflicting = [IO.Path]::Combine([AppContext]::BaseDirectory, 'conflicting')
        # Found again here: under Pester 5 the file's top-level code runs only during discovery.
        $AzuriteExecutable = foreach ($d in ([string]$env:PATH).Split([IO.Path]::PathSeparator)) {
            if ($d -and [IO.File]::Exists([IO.Path]::Combine($d, 'azurite-blob'))) { [IO.Path]::Combine($d, 'azurite-blob'); break }
        }
        $SkipBlob = -not $AzuriteExecutable -and $env:CI -ne 'true'
        $dir = New-TestDirectory

        # An Azurite (blob service) for the isolated session's blob vault: SIGTERM stops it in AfterAll.
        $azurite = $null; $azuriteError = $null; $connectionString = ''
        if (-not $SkipBlob) {
            try {
                if (-not $AzuriteExecutable) { throw 'azurite-blob is not installed (npm install -g azurite); CI=true requires it.' }
                $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0); $listener.Start(); $port = $listener.LocalEndpoint.Port; $listener.Stop()
                $azuriteData = Join-TestPath $dir 'azurite'
                [void][IO.Directory]::CreateDirectory($azuriteData)
                $psi = [Diagnostics.ProcessStartInfo]::new('/bin/sh')
                foreach ($a in @('-c', 'exec "$0" "$@" >"$AZURITE_TEST_LOG" 2>&1 </dev/null', $AzuriteExecutable, '--blobHost', '127.0.0.1', '--blobPort', "$port",
                        '--location', $azuriteData, '--skipApiVersionCheck', '--loose', '--silent', '--disableTelemetry')) { $psi.ArgumentList.Add($a) }
                $psi.Environment['AZURITE_TEST_LOG'] = Join-TestPath $dir 'azurite.log'
                $azurite = [Diagnostics.Process]::Start($psi)
                $deadline = [DateTime]::UtcNow.AddSeconds(30)
                while ($true) {
                    if ($azurite.HasExited) { throw "azurite-blob exited: $([IO.File]::ReadAllText((Join-TestPath $dir 'azurite.log')))" }
                    $probe = [Net.Sockets.TcpClient]::new()
                    try { $probe.Connect([Net.IPAddress]::Loopback, $port); break } catch { if ([DateTime]::UtcNow -gt $deadline) { throw "azurite-blob did not listen on $port within 30 s." } } finally { $probe.Dispose() }
                    [Threading.Thread]::Sleep(100)
                }
                # Azurite's well-known development account and key (public).
                $connectionString = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:$port/devstoreaccount1;"
            } catch { $azuriteError = "$_" }
        }
        $container = 'isolation-' + [Guid]::NewGuid().ToString('N').Substring(0, 12)

        $command = @"
`$older = @()
foreach (`$name in 'Azure.Core', 'Microsoft.Extensions.Logging.Abstractions') {
    `$older += [System.Reflection.Assembly]::LoadFrom([IO.Path]::Combine('$conflicting', "`$name.dll"))
}
. '$([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))'
Import-Module AsrModule
`$disk = '$dir/m.img'
New-AsrSampleDisk -Path `$disk -SizeBytes 2MB -Seed 5 | Out-Null
New-AsrVault -Path '$dir/vault' -EncryptionKey 'isolation' | Connect-AsrVault
New-AsrPolicy -Name p | Out-Null
`$job = Enable-AsrReplication -Name m -Disk `$disk -Policy p
`$hashes = Get-ExportedHashes (Get-AsrRecoveryPoint m -Latest) '$dir/export'
`$engine = (Get-AsrProtectedItem m).GetType().Assembly
`$alc = [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$engine)
`$logging = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'Microsoft.Extensions.Logging.Abstractions' } | ForEach-Object { `$_.GetName().Version.ToString() + '@' + [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_).Name }
'RESULT JobState=' + `$job.State
'RESULT Exported=' + `$hashes['m.img']
'RESULT Source=' + (Get-AsrSampleHash `$disk)
'RESULT EngineContext=' + `$alc.Name
'RESULT OlderLoaded=' + ((`$older | ForEach-Object { `$_.GetName().Name + ':' + `$_.GetName().Version }) -join ';')
'RESULT Logging=' + (`$logging -join ';')

# No Azure type on any exported command's parameters or [OutputType] (element and generic argument types included):
# a session that loaded another Azure.Core could not bind or use them.
`$seen = [Collections.Generic.HashSet[type]]::new()
`$pending = [Collections.Generic.Stack[type]]::new()
`$outputNames = @()
`$commands = @(Get-Command -Module AsrModule)
foreach (`$c in `$commands) {
    foreach (`$p in `$c.Parameters.Values) { `$pending.Push(`$p.ParameterType) }
    foreach (`$o in `$c.OutputType) { if (`$o.Type) { `$pending.Push(`$o.Type) } else { `$outputNames += `$o.Name } }
}
while (`$pending.Count -gt 0) {
    `$t = `$pending.Pop()
    if (-not `$seen.Add(`$t)) { continue }
    if (`$t.HasElementType) { `$pending.Push(`$t.GetElementType()) }
    if (`$t.IsGenericType) { foreach (`$g in `$t.GetGenericArguments()) { `$pending.Push(`$g) } }
}
`$assemblies = [Collections.Generic.SortedSet[string]]::new([string[]]@(`$seen | ForEach-Object { `$_.Assembly.GetName().Name }))
'RESULT CommandCount=' + `$commands.Count
'RESULT TypeCount=' + `$seen.Count
'RESULT TypeAssemblies=' + (@(`$assemblies) -join ';')
'RESULT AzureTypes=' + ((@(`$seen | Where-Object { `$_.Assembly.GetName().Name -like 'Azure.*' -or `$_.FullName -like 'Azure.*' } | ForEach-Object { `$_.FullName }) + @(`$outputNames | Where-Object { `$_ -like 'Azure.*' })) -join ';')

# The same session uses a blob vault: the module's Azure SDK does real requests beside the session's Azure.Core 1.38.
if ('$connectionString') {
    try {
        `$blobDisk = '$dir/b.img'
        New-AsrSampleDisk -Path `$blobDisk -SizeBytes 3MB -Seed 6 | Out-Null
        `$blob = New-AsrVault -ConnectionString '$connectionString' -Container '$container' -EncryptionKey 'isolation blob'
        `$blob | Connect-AsrVault
        New-AsrPolicy -Name p | Out-Null
        'RESULT BlobEnable=' + (Enable-AsrReplication -Name b -Disk `$blobDisk -Policy p).State
        Write-AsrSampleChange -Path `$blobDisk -Fraction 0.2 -Seed 7 | Out-Null
        'RESULT BlobCycle=' + (Get-AsrProtectedItem b | Invoke-AsrReplication).State
        # Reopened in a new connection, as another session would.
        Connect-AsrVault -ConnectionString '$connectionString' -Container '$container' -EncryptionKey 'isolation blob'
        `$blobHashes = Get-ExportedHashes (Get-AsrRecoveryPoint b -Latest) '$dir/blob-export'
        'RESULT BlobBackend=' + (Get-AsrVault).Backend + '/' + (Get-AsrVault).Authentication
        'RESULT BlobExported=' + `$blobHashes['b.img']
        'RESULT BlobSource=' + (Get-AsrSampleHash `$blobDisk)
        'RESULT BlobStoreContext=' + [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext((Get-AsrVault).Store.GetType().Assembly).Name
        'RESULT AzureCore=' + ((@([AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'Azure.Core' }) | ForEach-Object { `$_.GetName().Version.ToString() + '@' + [System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_).Name }) -join ';')
        'RESULT AzureInModuleContext=' + ((@([System.Runtime.Loader.AssemblyLoadContext]::GetLoadContext((Get-AsrVault).Store.GetType().Assembly).Assemblies | Where-Object { `$_.GetName().Name -like 'Azure.*' }) | ForEach-Object { `$_.GetName().Name }) -join ';')
    } catch { 'RESULT BlobError=' + `$_.Exception.Message + ' [' + `$_.FullyQualifiedErrorId + ']' }
}
"@
        $run = Invoke-AsrHostProcess $command
        $result = @{}
        foreach ($l in ($run.Output -split "`n")) {
            if ($l.StartsWith('RESULT ')) { $kv = $l.Substring(7).TrimEnd(); $eq = $kv.IndexOf('='); $result[$kv.Substring(0, $eq)] = $kv.Substring($eq + 1) }
        }
    }
    AfterAll {
        if ($azurite -and -not $azurite.HasExited) {
            ([Diagnostics.Process]::Start('kill', @('-TERM', "$($azurite.Id)"))).WaitForExit()
            if (-not $azurite.WaitForExit(15000)) { $azurite.Kill() }
        }
        Remove-TestDirectory $dir
    }

    It 'imports and protects a machine after older Azure.Core and Microsoft.Extensions.Logging.Abstractions were loaded' {
        $result.Count | Should -BeGreaterOrEqual 10 -Because "the process printed: $($run.Output) $($run.Error)"
        $result.OlderLoaded | Should -Match 'Azure.Core:1\.38\.'
        $result.OlderLoaded | Should -Match 'Microsoft.Extensions.Logging.Abstractions:2\.2\.'
        $result.JobState | Should -Be 'Succeeded'
        $result.Exported | Should -Be $result.Source
    }

    It 'runs its engine in the module''s own load context, beside the session''s older copies' {
        $result.EngineContext | Should -Be 'AsrModule'
        $result.Logging | Should -Match '2\.2\.\d+\.\d+@Default'
        $result.Logging | Should -Match '11\.0\.\d+\.\d+@AsrModule'
    }

    It 'exposes no Azure type on any exported command''s parameters or [OutputType]' {
        [int]$result.CommandCount | Should -BeGreaterThan 30 -Because "the process printed: $($run.Output) $($run.Error)"
        [int]$result.TypeCount | Should -BeGreaterThan 20
        $result.TypeAssemblies | Should -Match 'AsrModule\.Engine'
        $result.TypeAssemblies | Should -Match 'System\.Management\.Automation'
        $result.ContainsKey('AzureTypes') | Should -BeTrue
        $result.AzureTypes | Should -BeNullOrEmpty
        $result.TypeAssemblies | Should -Not -Match '(^|;)Azure\.'
    }

    It "uses a blob vault in Azurite from the same session: created by connection string, protected, exported equal by hash$BlobSkipReason" -Skip:$SkipBlob {
        $azuriteError | Should -BeNullOrEmpty
        $result.BlobError | Should -BeNullOrEmpty
        $result.BlobEnable | Should -Be 'Succeeded' -Because "the process printed: $($run.Output) $($run.Error)"
        $result.BlobCycle | Should -Be 'Succeeded'
        $result.BlobBackend | Should -Be 'AzureBlob/ConnectionString'
        $result.BlobSource | Should -Match '^[0-9A-F]{64}$'
        $result.BlobExported | Should -Be $result.BlobSource
    }

    It "runs the blob store and the module's Azure SDK in its own load context, beside the session's Azure.Core 1.38$BlobSkipReason" -Skip:$SkipBlob {
        $azuriteError | Should -BeNullOrEmpty
        $result.BlobStoreContext | Should -Be 'AsrModule' -Because "the process printed: $($run.Output) $($run.Error)"
        $result.AzureCore | Should -Match '(^|;)1\.38\.\d+\.\d+@Default(;|$)'
        $result.AzureCore | Should -Match '(^|;)1\.(39|[4-9]\d)\.\d+\.\d+@AsrModule(;|$)'
        $result.AzureInModuleContext | Should -Match 'Azure\.Core'
        $result.AzureInModuleContext | Should -Match 'Azure\.Storage\.Blobs'
    }
}
