# The module loads into its own AssemblyLoadContext (module/AsrModule.psm1, src/AsrModule.Loader): a session
# that already holds other versions of assemblies the module ships (Az.Accounts pins its own Azure.Core and
# Microsoft.Extensions.*) must still be able to import and use it. Runs in a separate AsrHost process so the
# older assemblies are the first ones loaded, as in a runbook that imported Az.Accounts first.
Describe 'The module coexists with other versions of its dependencies loaded first' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $conflicting = [IO.Path]::Combine([AppContext]::BaseDirectory, 'conflicting')
        $dir = New-TestDirectory
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
"@
        $run = Invoke-AsrHostProcess $command
        $result = @{}
        foreach ($l in ($run.Output -split "`n")) {
            if ($l.StartsWith('RESULT ')) { $kv = $l.Substring(7).TrimEnd(); $eq = $kv.IndexOf('='); $result[$kv.Substring(0, $eq)] = $kv.Substring($eq + 1) }
        }
    }
    AfterAll { Remove-TestDirectory $dir }

    It 'imports and protects a machine after older Azure.Core and Microsoft.Extensions.Logging.Abstractions were loaded' {
        $result.Count | Should -Be 6 -Because "the process printed: $($run.Output) $($run.Error)"
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
}
