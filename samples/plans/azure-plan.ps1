# samples/plans/azure-plan.ps1: a three-tier application recovered into Azure (issue #11).
# sql01 first; after a manual check (real failovers only), app01; then web01. After web01 the step
# 'Publish VM ids' reads each machine's Azure VM resource id from the context ($Context.VmMap[name].VirtualMachineId).
# It outputs them (they appear as the task's Output in Get-AsrJob) and, when ASR_PLAN_INVENTORY names a file,
# writes them there as JSON ({ "sql01": "/subscriptions/.../virtualMachines/..." }). A DNS update, a load-balancer
# backend pool or a monitoring registration can start from that file.
#
#   $t = New-AsrAzureTarget -SubscriptionId $sub -ResourceGroupName dr-rg -Location westeurope `
#           -SubnetId $recoverySubnet -TestSubnetId $drillSubnet -ManagedIdentity
#   Start-AsrRecoveryPlan -Path ./samples/plans/azure-plan.ps1 -FailoverType Test -Target $t      # drill: no pause
#   Start-AsrRecoveryPlan -Path ./samples/plans/azure-plan.ps1 -FailoverType TestCleanup
#   $job = Start-AsrRecoveryPlan -Path ./samples/plans/azure-plan.ps1 -FailoverType Unplanned -Target $t
#   $job | Resume-AsrJob -Comment 'sql01 answers in Azure' | Wait-AsrJob                          # after the pause
#
# samples/azure-drill-runbook.ps1 runs this plan as a scheduled drill; tests/Pester/AzureTarget.Tests.ps1 runs that
# runbook against a fake Azure Resource Manager.

AsrRecoveryPlan 'shop-azure' {
    AsrGroup 1 -Items sql01

    # Before the application tier connects to it, a person checks the recovered database. Drills do not pause.
    AsrPause 'Check that sql01 answers in Azure (its VM id is in the job''s VmMap) before app01 starts' -FailoverType Planned, Unplanned

    AsrGroup 2 -Items app01

    AsrGroup 3 -Items web01 {
        AsrStep 'Publish VM ids' -FailoverType Test, Planned, Unplanned -After {
            param($Context)
            $inventory = [ordered]@{}
            foreach ($name in 'sql01', 'app01', 'web01') {
                $vm = $Context.VmMap[$name]
                if ($vm.TargetKind -ne 'Azure' -or -not $vm.VirtualMachineId) {
                    throw "$name was not recovered into Azure (target kind '$($vm.TargetKind)', state $($vm.State))"
                }
                $inventory[$name] = $vm.VirtualMachineId
                "$($Context.FailoverType) ${name}: $($vm.VirtualMachineId) (recovery point $($vm.RecoveryPointSequence))"
            }
            if ($env:ASR_PLAN_INVENTORY) {
                [IO.File]::WriteAllText($env:ASR_PLAN_INVENTORY, ($inventory | ConvertTo-Json))
            }
        }
    }
}
