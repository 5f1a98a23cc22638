param([ValidateSet('Local', 'Blob')][string]$Backend = 'Local')   # the vault backend: Invoke-AsrPester.ps1 runs this file once per backend

Describe 'Policies [<Backend>]' {
    BeforeAll {
        . ([IO.Path]::Combine($PSScriptRoot, 'TestHelpers.ps1'))
        Import-Module AsrModule
    }
    BeforeEach {
        $dir = New-TestDirectory
        $vaultPath = New-TestVaultLocation $dir
        New-AsrVault -Path $vaultPath | Connect-AsrVault
    }
    AfterEach { Disconnect-AsrVault; Remove-TestDirectory $dir }

    It 'New-AsrPolicy stores every setting; Get-AsrPolicy reads it back by name and by wildcard' {
        New-AsrPolicy -Name gold -RecoveryPointRetentionHours 48 -CrashConsistentFrequencyMinutes 0.5 -AppConsistentFrequencyHours 12 -RpoThresholdMinutes 5 -CompressionLevel 3 | Out-Null
        New-AsrPolicy -Name silver | Out-Null
        $gold = Get-AsrPolicy gold
        $gold.RecoveryPointRetentionHours | Should -Be 48
        $gold.CrashConsistentFrequencyMinutes | Should -Be 0.5
        $gold.AppConsistentFrequencyHours | Should -Be 12
        $gold.RpoThresholdMinutes | Should -Be 5
        $gold.CompressionLevel | Should -Be 3
        @(Get-AsrPolicy -Name 's*').Name | Should -Be @('silver')
    }

    It 'rejects an app-consistent frequency of <Hours> hours (PolicySettingInvalid, InvalidArgument) and stores nothing' -ForEach @(@{ Hours = 13 }, @{ Hours = -1 }) {
        $err = { New-AsrPolicy -Name bad -AppConsistentFrequencyHours $Hours -ErrorAction Stop } | Should -Throw -ErrorId 'PolicySettingInvalid,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $err.Exception.Message | Should -Match '1 to 12'
        @(Get-AsrPolicy).Count | Should -Be 0
    }

    It 'refuses a duplicate name (PolicyAlreadyExists) and keeps the first policy' {
        New-AsrPolicy -Name p -RpoThresholdMinutes 7 | Out-Null
        { New-AsrPolicy -Name P -RpoThresholdMinutes 9 -ErrorAction Stop } | Should -Throw -ErrorId 'PolicyAlreadyExists,*'
        (Get-AsrPolicy p).RpoThresholdMinutes | Should -Be 7
    }

    It 'Get-AsrPolicy of an unknown name is PolicyNotFound (ObjectNotFound)' {
        $err = { Get-AsrPolicy nope -ErrorAction Stop } | Should -Throw -ErrorId 'PolicyNotFound,*' -PassThru
        $err.CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }

    It 'Remove-AsrPolicy refuses a policy in use (PolicyInUse) and removes an unused one' {
        $disk = Join-TestPath $dir 'd.img'
        New-AsrSampleDisk -Path $disk -SizeBytes 2MB | Out-Null
        New-AsrPolicy -Name used | Out-Null
        New-AsrPolicy -Name unused | Out-Null
        Enable-AsrReplication -Name m -Disk $disk -Policy used | Out-Null
        { Remove-AsrPolicy -Name used -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'PolicyInUse,*'
        Get-AsrPolicy unused | Remove-AsrPolicy -Confirm:$false
        @(Get-AsrPolicy).Name | Should -Be @('used')
    }

    It 'WhatIf creates no policy' {
        New-AsrPolicy -Name ghost -WhatIf
        @(Get-AsrPolicy).Count | Should -Be 0
    }
}
