using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// What must hold before a machine is recovered into the resource group: its disks fit an Azure VM, a drill has a
/// test subnet, and no VM of its name stands there unless this very operation made it (a VM is never taken over).
/// </summary>
internal sealed class AzureMachineChecks(AzureTargetResourceGroup group)
{
    /// <summary>The spec checks, without network; returns what applies to the machine.</summary>
    public AzureMachinePlacement CheckMachine(string itemName, IReadOnlyList<(string Name, long SizeBytes)> disks, RecoveryPurpose purpose)
    {
        var placement = group.Settings.PlacementOf(itemName);
        if (purpose == RecoveryPurpose.TestFailover && placement.TestSubnetId is null)
            throw AzureTargetSettings.Invalid(
                $"A drill of '{itemName}' in Azure needs a test subnet, in a network isolated from production: give -TestSubnetId to New-AsrAzureTarget " +
                "(or a TestSubnetId in the machine's settings).", itemName);
        if (disks.Count == 0)
            throw AzureTargetSettings.Invalid($"'{itemName}' has no disk to recover.", itemName);
        if (disks.Count > 65)
            throw AzureTargetSettings.Invalid($"'{itemName}' has {disks.Count} disks: an Azure VM takes one OS disk and at most 64 data disks.", itemName);
        foreach (var (name, size) in disks)
            if (size <= 0 || size > ManagedDiskSize.MaxPayloadBytes)
                throw AzureTargetSettings.Invalid(
                    $"Disk '{name}' of '{itemName}' is {size:N0} bytes: an Azure managed disk is uploaded from 1 byte up to 32 TiB ({ManagedDiskSize.MaxPayloadBytes:N0} bytes).",
                    $"{itemName}/{name}");
        return placement;
    }

    /// <summary>No VM of the name may stand unless it carries <paramref name="allowedOperation"/>: a VM is never taken over.</summary>
    public async Task CheckNameFreeAsync(string itemName, RecoveryPurpose purpose, string? allowedOperation, CancellationToken cancellationToken)
    {
        string vmName = AzureResourceNames.VirtualMachine(itemName, purpose);
        var vm = await group.ControlPlane.GetVirtualMachineAsync(group.VirtualMachineId(vmName), cancellationToken).ConfigureAwait(false);
        if (vm is null) return;
        string? operation = vm.Tags.TryGetValue(AzureTargetTags.Operation, out var o) ? o : null;
        if (allowedOperation is not null && string.Equals(operation, allowedOperation, StringComparison.OrdinalIgnoreCase)) return;
        throw new AsrException(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.ResourceExists,
            $"A VM named '{vmName}' already exists in resource group '{group.Name}'" +
            (operation is null ? "" : $" (made by operation {operation} of '{(vm.Tags.TryGetValue(AzureTargetTags.Item, out var i) ? i : "?")}')") +
            $": the {(purpose == RecoveryPurpose.TestFailover ? "drill" : "failover")} of '{itemName}' would take it over. " +
            "Remove it (Remove-AzVM, or clean up that drill or failover), or recover into another resource group.", vm.Id);
    }
}
