# The module as a PowerShell package (issue #13): out/packages/AsrModule.<version>.nupkg, written by
# `build.ps1 -Task Package` (Compress-PSResource), installed with PSResourceGet from a local folder repository and
# then used by name, as a user would. Runs once (no vault backend).
#
# Everything pwsh and PSResourceGet keep per user (the repository store, the CurrentUser module folder, caches) goes
# to a temporary home: the children run with HOME, XDG_* and TMPDIR there and PSModulePath unset, so they get pwsh's
# default module path (temp home, shared, $PSHOME) without out/, and the user's own registrations and modules are
# never touched. The home's XDG folders are made up front: PSResourceGet puts its store under LocalApplicationData,
# which .NET reports as '' (the current directory!) while that folder does not exist.

Describe 'The module as a PowerShell package' -Tag Package {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        $repoRoot = [IO.Path]::GetFullPath([IO.Path]::Combine($PSScriptRoot, '..', '..'))
        $moduleOut = [IO.Path]::Combine($repoRoot, 'out', 'AsrModule')
        $version = ([xml](Get-Content -Raw ([IO.Path]::Combine($repoRoot, 'Directory.Build.props')))).SelectSingleNode('//AsrModuleVersion').InnerText
        $nupkg = [IO.Path]::Combine($repoRoot, 'out', 'packages', "AsrModule.$version.nupkg")

        # The package build.ps1 makes; made (in another pwsh) when missing or older than the module it packs.
        $newestModuleFile = (Get-ChildItem -LiteralPath $moduleOut -Recurse -File | Measure-Object -Property LastWriteTimeUtc -Maximum).Maximum
        if (-not [IO.File]::Exists($nupkg) -or [IO.File]::GetLastWriteTimeUtc($nupkg) -lt $newestModuleFile) {
            $build = Invoke-PwshProcess "& '$([IO.Path]::Combine($repoRoot, 'build.ps1'))' -Task Package" -TimeoutSeconds 900
            if ($build.ExitCode -ne 0) { throw "build.ps1 -Task Package failed ($($build.ExitCode)):`n$($build.Output)`n$($build.Error)" }
        }

        # The package's entries, less NuGet's own parts (nuspec, [Content_Types].xml, _rels/, package/).
        Add-Type -AssemblyName System.IO.Compression.ZipFile
        $zip = [IO.Compression.ZipFile]::OpenRead($nupkg)
        try {
            $entries = @($zip.Entries | ForEach-Object { $_.FullName.Replace('\', '/') })
            $nuspecEntry = $zip.Entries | Where-Object FullName -EQ 'AsrModule.nuspec'
            $reader = [IO.StreamReader]::new($nuspecEntry.Open())
            try { $nuspec = ([xml]$reader.ReadToEnd()).package.metadata } finally { $reader.Dispose() }
        } finally { $zip.Dispose() }
        $moduleEntries = @($entries | Where-Object { $_ -notmatch '^(AsrModule\.nuspec|\[Content_Types\]\.xml|_rels/.*|package/.*)$' } | Sort-AsrLines)
        $builtFiles = @(Get-ChildItem -LiteralPath $moduleOut -Recurse -File | ForEach-Object { [IO.Path]::GetRelativePath($moduleOut, $_.FullName).Replace('\', '/') } | Sort-AsrLines)

        $dir = New-TestDirectory
        $userHome = Join-TestPath $dir 'home'
        $feed = Join-TestPath $dir 'feed'
        foreach ($d in "$userHome/.local/share", "$userHome/.config", "$userHome/.cache", "$dir/tmp", $feed) { [void][IO.Directory]::CreateDirectory($d) }
        Copy-Item -LiteralPath $nupkg -Destination $feed
        $repositoryName = 'AsrTest' + [Guid]::NewGuid().ToString('N').Substring(0, 10)
        $childEnvironment = @{
            HOME = $userHome; XDG_DATA_HOME = "$userHome/.local/share"; XDG_CONFIG_HOME = "$userHome/.config"
            XDG_CACHE_HOME = "$userHome/.cache"; TMPDIR = "$dir/tmp"; PSModulePath = $null; POWERSHELL_TELEMETRY_OPTOUT = '1'
        }
        # The children start in the temp directory, so nothing relative can land in the caller's.
        $prologue = "`$ErrorActionPreference = 'Stop'; Set-Location -LiteralPath '$dir'; [Environment]::CurrentDirectory = '$dir'`n"
        $outPrefix = [IO.Path]::Combine($repoRoot, 'out') + [IO.Path]::DirectorySeparatorChar
        # The user's own store, as this process sees it (pwsh's LocalApplicationData): the registration must not reach it.
        $realStore = [IO.Path]::Combine([Environment]::GetFolderPath('LocalApplicationData'), 'PSResourceGet', 'PSResourceRepository.xml')

        $install = Invoke-PwshProcess ($prologue + @"
Register-PSResourceRepository -Name '$repositoryName' -Uri '$feed' -Trusted
Install-PSResource -Name AsrModule -Repository '$repositoryName' -TrustRepository -Scope CurrentUser
`$installed = @(Get-InstalledPSResource -Name AsrModule)
'RESULT Count=' + `$installed.Count
'RESULT Version=' + `$installed[0].Version
'RESULT Location=' + `$installed[0].InstalledLocation
'RESULT PSModulePath=' + `$env:PSModulePath
"@) $childEnvironment

        $use = Invoke-PwshProcess ($prologue + @"
. '$([IO.Path]::Combine($repoRoot, 'samples', 'AsrSampleDisks.ps1'))'
Import-Module AsrModule
`$module = Get-Module AsrModule
'RESULT ModuleBase=' + `$module.ModuleBase
'RESULT Version=' + `$module.Version
'RESULT CmdletAssembly=' + (Get-Command Enable-AsrReplication).ImplementingType.Assembly.Location
'RESULT PSModulePath=' + `$env:PSModulePath
`$disk = '$dir/web01.img'
New-AsrSampleDisk -Path `$disk -SizeBytes 6MB -Seed 13 | Out-Null
New-AsrVault -Path '$dir/vault' | Connect-AsrVault
New-AsrPolicy -Name p | Out-Null
'RESULT Enable=' + (Enable-AsrReplication -Name web01 -Disk `$disk -Policy p).State
Write-AsrSampleChange -Path `$disk -Fraction 0.02 -Seed 14 | Out-Null
`$cycle = Get-AsrProtectedItem web01 | Invoke-AsrReplication
'RESULT Cycle=' + `$cycle.State + '/' + `$cycle.Result.Mode
`$export = Get-AsrRecoveryPoint web01 -Latest | Export-AsrRecoveryPoint -Destination '$dir/export'
'RESULT Export=' + `$export.State
'RESULT Exported=' + (Get-AsrSampleHash `$export.Result.Files[0])
'RESULT Source=' + (Get-AsrSampleHash `$disk)
# The report's charts need SkiaSharp's native library, which the package carries in Dependencies/.
`$report = Export-AsrHealthReport -Path '$dir/report.html'
'RESULT ReportCharts=' + ([regex]::Matches([IO.File]::ReadAllText(`$report.FullName), '<figure class="chart"[^>]*><svg')).Count
Disconnect-AsrVault
`$examples = @((Get-Help Enable-AsrReplication -Examples).examples.example | Where-Object { `$null -ne `$_ })
'RESULT Examples=' + `$examples.Count
'RESULT FirstExample=' + ("`$(`$examples[0].code)" -replace '\s+', ' ').Trim()
"@) $childEnvironment
    }

    AfterAll {
        if ($dir) {
            # Unregistered where it was registered (the temp home's store), then the home goes with the directory.
            $unregister = Invoke-PwshProcess ($prologue + "Unregister-PSResourceRepository -Name '$repositoryName'") $childEnvironment
            if ($unregister.ExitCode -ne 0) { Write-Warning "Unregister-PSResourceRepository failed: $($unregister.Error)" }
            Remove-TestDirectory $dir
        }
    }

    It 'the package holds exactly the built module: root, Dependencies/, help, agent/, format and type files' {
        $moduleEntries | Should -Be $builtFiles
        foreach ($f in 'AsrModule.psd1', 'AsrModule.psm1', 'AsrModule.Plans.psm1', 'AsrModule.Loader.dll', 'AsrModule.Format.ps1xml', 'AsrModule.Types.ps1xml',
            'Dependencies/AsrModule.dll', 'Dependencies/AsrModule.Engine.dll', 'Dependencies/en-US/AsrModule.dll-Help.xml', 'en-US/AsrModule.dll-Help.xml',
            'agent/AsrModule.Agent.dll', 'agent/AsrModule.Agent.runtimeconfig.json', 'agent/asr-agent.service') {
            $moduleEntries | Should -Contain $f
        }
    }

    It 'the package holds no build or test leftovers' {
        @($moduleEntries | Where-Object { $_ -match '(^|/)(obj|bin|tests?|TestResults)/|\.Tests\.ps1$|\.(nupkg|trx|log)$' }) | Should -BeNullOrEmpty
    }

    It 'the nuspec carries the manifest: id, version from Directory.Build.props, author, description, tags' {
        $nuspec.id | Should -Be 'AsrModule'
        $nuspec.version | Should -Be $version
        $nuspec.authors | Should -Not -BeNullOrEmpty
        $nuspec.description | Should -Not -BeNullOrEmpty
        $nuspec.tags -split ' ' | Should -Contain 'PSModule'
    }

    It 'Install-PSResource installs it from a local folder repository into the temporary home (CurrentUser)' {
        $install.ExitCode | Should -Be 0 -Because "$($install.Output)`n$($install.Error)"
        $install.Result.Count | Should -Be 1
        $install.Result.Version | Should -Be $version
        $install.Result.Location | Should -BeLike "$userHome/*"
        $install.Result.PSModulePath -split [IO.Path]::PathSeparator | Should -Not -Contain ([IO.Path]::Combine($repoRoot, 'out'))
        [IO.File]::Exists("$userHome/.local/share/powershell/Modules/AsrModule/$version/AsrModule.psd1") | Should -BeTrue
    }

    It 'the repository is registered in the temporary home only, never in the user''s own store' {
        Get-Content -Raw "$userHome/.local/share/PSResourceGet/PSResourceRepository.xml" | Should -Match $repositoryName
        if ([IO.File]::Exists($realStore)) { Get-Content -Raw $realStore | Should -Not -Match $repositoryName }
    }

    It 'a fresh pwsh imports it by name from the installed copy, not from out/' {
        $use.ExitCode | Should -Be 0 -Because "$($use.Output)`n$($use.Error)"
        $use.Result.ModuleBase | Should -Be "$userHome/.local/share/powershell/Modules/AsrModule/$version"
        $use.Result.ModuleBase | Should -Not -BeLike "$outPrefix*"
        $use.Result.CmdletAssembly | Should -Be "$($use.Result.ModuleBase)/Dependencies/AsrModule.dll"
        $use.Result.Version | Should -Be $version
        $use.Result.PSModulePath -split [IO.Path]::PathSeparator | Should -Not -Contain ([IO.Path]::Combine($repoRoot, 'out'))
    }

    It 'the installed module protects, replicates and exports a disk equal to the source (SHA-256)' {
        $use.Result.Enable | Should -Be 'Succeeded'
        $use.Result.Cycle | Should -Be 'Succeeded/Delta'
        $use.Result.Export | Should -Be 'Succeeded'
        $use.Result.Exported | Should -Match '^[0-9A-F]{64}$'
        $use.Result.Exported | Should -Be $use.Result.Source
    }

    It 'the installed module draws the health report''s charts (SkiaSharp''s native library from the package)' {
        [int]$use.Result.ReportCharts | Should -Be 3
    }

    It 'Get-Help -Examples works from the installed copy' {
        [int]$use.Result.Examples | Should -BeGreaterThan 0
        $use.Result.FirstExample | Should -Match 'Enable-AsrReplication'
    }
}
