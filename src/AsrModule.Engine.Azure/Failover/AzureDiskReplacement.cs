using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// A change of point before commit: the failed-over VM is made again from another point. The new point's disks are
/// uploaded (tagged with the new operation) while the VM runs on; then the VM is deleted (its NIC with it; its disks
/// stay) and created again under the same name and resource id from the new disks, and the old disks are deleted.
/// Azure swaps a VM's OS disk only while the VM is deallocated, which the control plane does not do, so the VM is
/// recreated: same name, subnet and size, a new NIC and dynamic private IP. Should the new VM not be created, the old
/// one is created again from its own disks before the exception leaves (and the new disks are deleted).
/// </summary>
internal sealed class AzureDiskReplacement(AzureTargetResourceGroup group, AzureRecovery recovery, AzureOperationCleanup cleanup)
{
    public async Task<RecoveredMachineRecord> ReplaceDisksAsync(AsrVault vault, AsrProtectedItem item, RecoveredMachineRecord current, AsrRecoveryPoint point,
        Guid operationId, JobContext context)
    {
        if (current.OperationId == Guid.Empty || current.OperationId == operationId)
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                $"The recovered machine of '{item.Name}' has no operation id of its own: what it made cannot be found by its tag.", item.Name);
        var plan = recovery.Plan(vault, item, point, RecoveryPurpose.Failover, operationId, context);
        var ct = context.CancellationToken;
        string oldOperation = AzureTargetTags.OperationValue(current.OperationId);
        // The VM is found again from the target (its name and tag), not from the record.
        var old = await group.ControlPlane.GetVirtualMachineAsync(group.VirtualMachineId(plan.VmName), ct).ConfigureAwait(false);
        if (old is null || !old.Tags.TryGetValue(AzureTargetTags.Operation, out var tagged) || !string.Equals(tagged, oldOperation, StringComparison.OrdinalIgnoreCase))
            throw new AsrException(AzureControlPlaneErrorIds.AzureResourceNotFound, AsrErrorKind.ObjectNotFound,
                $"The failed-over VM '{plan.VmName}' of '{item.Name}' (operation {oldOperation}) is not in resource group '{group.Name}'" +
                (old is null ? "" : " (a VM of that name carries another operation)") + ": its disks cannot be replaced. Cancel the failover (Undo-AsrFailover) and fail over again.",
                item.Name);
        await cleanup.RemoveEarlierAttemptAsync(plan.Operation, context).ConfigureAwait(false);

        IReadOnlyList<AzureRecoveredDisk> disks;
        try
        {
            disks = await recovery.MakeDisksAsync(plan, vault, item, point, context.Phase(0, 90)).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            var incomplete = await cleanup.CleanUpAfterFailureAsync(plan.Operation, plan.VmName, ex, context.Logger).ConfigureAwait(false);
            if (incomplete is not null) throw incomplete;
            throw;
        }

        // From here the VM is down: no cancellation until it runs again (on the new disks, or the old ones).
        context.Report(92, $"Recreating VM '{plan.VmName}' from the disks of point {point.Sequence}");
        string vmId;
        try
        {
            await group.ControlPlane.DeleteAsync(old.Id, CancellationToken.None).ConfigureAwait(false);
            vmId = await group.ControlPlane.CreateVirtualMachineAsync(plan.VmSpec(disks), CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            context.Logger.LogWarning("Recreating '{Vm}' on the new disks failed ({Error}); restoring it on its own disks.", plan.VmName, ex.Message);
            // First what the new operation made (a VM that failed to provision holds the name), then the old VM again.
            var incomplete = await cleanup.CleanUpAfterFailureAsync(plan.Operation, plan.VmName, ex, context.Logger).ConfigureAwait(false);
            await RestoreOldVmAsync(plan, current, old, oldOperation, ex, context.Logger).ConfigureAwait(false);
            if (incomplete is not null) throw incomplete;
            throw;
        }

        context.Report(97, $"Deleting the disks of the previous point of '{item.Name}'");
        var record = plan.RecordOf(point, vmId, disks);
        try
        {
            var (_, left) = await cleanup.RemoveOperationAsync(oldOperation, CancellationToken.None).ConfigureAwait(false);
            if (left.Count > 0) record.Properties["previousOperationLeft"] = string.Join(", ", left);
        }
        catch (Exception ex)
        {
            context.Logger.LogWarning(ex, "The disks of operation {Operation} could not all be deleted; delete what carries that tag.", oldOperation);
            record.Properties["previousOperationLeft"] = $"{AzureTargetTags.Operation}={oldOperation}";
        }
        context.Report(100, $"'{item.Name}' now runs in Azure VM '{plan.VmName}' from point {point.Sequence}");
        return record;
    }

    /// <summary>
    /// Creates the old VM again on its own disks (its subnet and zone from the record when they are valid, else the
    /// plan's); throws, with <paramref name="failure"/> inside, when it cannot be.
    /// </summary>
    private async Task RestoreOldVmAsync(AzureRecoveryPlan plan, RecoveredMachineRecord current, AzureVmInfo old, string oldOperation, Exception failure,
        ILogger logger)
    {
        try
        {
            string subnet = current.Properties.TryGetValue("subnet", out var s) && AzureResourceNames.IsSubnetId(s) ? s : plan.Placement.SubnetId;
            await group.ControlPlane.CreateVirtualMachineAsync(new AzureVmSpec(old.Name, group.Region, old.Size ?? plan.Placement.VmSize, old.OsDiskId!, plan.Placement.OsType, subnet)
            {
                DataDisks = old.DataDisks,
                Zone = current.Properties.TryGetValue("zone", out var z) && AzureResourceNames.ZonePattern().IsMatch(z) ? z : plan.Placement.Zone,
                BootDiagnostics = old.BootDiagnostics,
                Tags = old.Tags,
            }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Could not create '{Vm}' again on its own disks (operation {Operation}); they are kept.", plan.VmName, oldOperation);
            throw new AsrException(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.InvalidOperation,
                $"Replacing the disks of '{plan.VmName}' failed ({failure.Message}), and the VM could not be created again on its own disks ({e.Message}). " +
                $"Its disks are kept (tag {AzureTargetTags.Operation}={oldOperation}): create the VM from them, or cancel the failover and fail over again.",
                plan.VmName, failure);
        }
    }
}
