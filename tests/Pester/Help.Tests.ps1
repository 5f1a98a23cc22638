# Every exported cmdlet has real help (generated at build time from docs/help/*.md by tools/HelpGen):
# a synopsis, at least one example with code, and a description for every parameter.
# Runs once (no vault backend); Get-Help -Full in real pwsh.

Describe 'Cmdlet help' {
    BeforeAll {
        Import-Module AsrModule
        $cmdlets = @((Get-Module AsrModule).ExportedCmdlets.Keys)
        $common = @('Verbose', 'Debug', 'ErrorAction', 'WarningAction', 'InformationAction', 'ProgressAction',
            'ErrorVariable', 'WarningVariable', 'InformationVariable', 'OutVariable', 'OutBuffer', 'PipelineVariable',
            'WhatIf', 'Confirm')
        $help = @{}
        foreach ($name in $cmdlets) { $help[$name] = Get-Help -Name $name -Full }

        function Get-HelpText($Paragraphs) {
            # maml:para elements come back as objects with a Text property.
            (@($Paragraphs) | Where-Object { $null -ne $_ } | ForEach-Object { "$($_.Text)" }) -join [Environment]::NewLine
        }
    }

    It 'the module exports cmdlets' {
        $cmdlets.Count | Should -BeGreaterThan 0
    }

    It 'every exported cmdlet has a synopsis and a description (not the generated syntax)' {
        $failures = [System.Collections.Generic.List[string]]::new()
        foreach ($name in $cmdlets) {
            $synopsis = "$($help[$name].Synopsis)".Trim()
            # Without MAML help, Get-Help makes the synopsis from the syntax: "Verb-Noun [-Param] <type> ...".
            if ($synopsis -eq '' -or $synopsis.StartsWith($name, [StringComparison]::OrdinalIgnoreCase)) {
                $failures.Add("${name}: synopsis is missing (got '$synopsis')")
            }
            if ((Get-HelpText $help[$name].description).Trim() -eq '') { $failures.Add("${name}: description is missing") }
        }
        ($failures -join [Environment]::NewLine) | Should -BeNullOrEmpty
    }

    It 'every exported cmdlet has at least one example with code' {
        $failures = [System.Collections.Generic.List[string]]::new()
        foreach ($name in $cmdlets) {
            $examples = @((Get-Help -Name $name).examples.example | Where-Object { $null -ne $_ })
            if ($examples.Count -eq 0) { $failures.Add("${name}: no example"); continue }
            for ($i = 0; $i -lt $examples.Count; $i++) {
                if ("$($examples[$i].code)".Trim() -eq '') { $failures.Add("${name}: example $($i + 1) has no code") }
            }
        }
        ($failures -join [Environment]::NewLine) | Should -BeNullOrEmpty
    }

    It 'every parameter of every exported cmdlet has a description' {
        $failures = [System.Collections.Generic.List[string]]::new()
        $checked = 0
        foreach ($name in $cmdlets) {
            $documented = @($help[$name].parameters.parameter | Where-Object { $null -ne $_ })
            foreach ($parameter in (Get-Command -Name $name).Parameters.Keys) {
                if ($common -contains $parameter) { continue }
                $checked++
                $entry = @($documented | Where-Object { $_.name -eq $parameter })
                if ($entry.Count -eq 0) { $failures.Add("${name}: -$parameter is not in the help"); continue }
                if ((Get-HelpText $entry[0].description).Trim() -eq '') { $failures.Add("${name}: -$parameter has no description") }
            }
        }
        ($failures -join [Environment]::NewLine) | Should -BeNullOrEmpty
        $checked | Should -BeGreaterThan 0
    }
}
