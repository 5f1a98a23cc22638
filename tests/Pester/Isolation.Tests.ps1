# The module loads into its own AssemblyLoadContext (module/AsrModule.psm1, src/AsrModule.Loader): a session
# that already holds other versions of assemblies the module ships (Az.Accounts pins its own Azure.Core and
# Microsoft.Extensions.*) must still be able to import and use it. Runs in a separate pwsh process so the
# older assemblies are the first ones loaded, as in a runbook that imported Az.Accounts first.
#
# The isolated session uses a local vault and, in addition, a blob vault in Azurite: the local vault keeps the
# load-order check meaningful where Azurite is not installed, and the blob vault is where a clash would
# actually bite — the Azure SDK's code runs (pipeline, retries, shared-key signing, leases) while the
# session's Azure.Core 1.38 is loaded. Without azurite-blob the blob checks are reported as skipped with the
# reason, except under CI=true, where they fail.

Describe 'The module coexists with other versions of its dependencies loaded first' -Tag Host {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        . ([IO.Path]::Combine($PSScriptRoot, 'TestAzurite.ps1'))
        # Restored by tests/Pester/AsrModule.Tests.Pester.csproj (dotnet build).
        $conflicting = [IO.Path]::Combine($PSScriptRoot, 'bin', 'conflicting')
        $dir = New-TestDirectory

        # An Azurite (blob service) for the isolated session's blob vault, stopped in AfterAll.
        $azurite = $null; $azuriteError = $null; $connectionString = ''
        $blobSkipReason = Get-AzuriteSkipReason
        if (-not $blobSkipReason) {
            try {
                $azurite = Start-TestAzurite
                $connectionString = $azurite.ConnectionString
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
        $run = Invoke-PwshProcess $command
        $result = $run.Result
    }
    AfterAll {
        Stop-TestAzurite $azurite
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

    It 'uses a blob vault in Azurite from the same session: created by connection string, protected, exported equal by hash' {
        if ($blobSkipReason) { Set-ItResult -Skipped -Because $blobSkipReason }
        $azuriteError | Should -BeNullOrEmpty
        $result.BlobError | Should -BeNullOrEmpty
        $result.BlobEnable | Should -Be 'Succeeded' -Because "the process printed: $($run.Output) $($run.Error)"
        $result.BlobCycle | Should -Be 'Succeeded'
        $result.BlobBackend | Should -Be 'AzureBlob/ConnectionString'
        $result.BlobSource | Should -Match '^[0-9A-F]{64}$'
        $result.BlobExported | Should -Be $result.BlobSource
    }

    It "runs the blob store and the module's Azure SDK in its own load context, beside the session's Azure.Core 1.38" {
        if ($blobSkipReason) { Set-ItResult -Skipped -Because $blobSkipReason }
        $azuriteError | Should -BeNullOrEmpty
        $result.BlobStoreContext | Should -Be 'AsrModule' -Because "the process printed: $($run.Output) $($run.Error)"
        $result.AzureCore | Should -Match '(^|;)1\.38\.\d+\.\d+@Default(;|$)'
        $result.AzureCore | Should -Match '(^|;)1\.(39|[4-9]\d)\.\d+\.\d+@AsrModule(;|$)'
        $result.AzureInModuleContext | Should -Match 'Azure\.Core'
        $result.AzureInModuleContext | Should -Match 'Azure\.Storage\.Blobs'
    }
}
