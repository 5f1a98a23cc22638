using System.Globalization;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// A machine recovered into the resource group from a point: plan it (<see cref="AzureRecoveryPlan"/>), make its disks
/// (<see cref="AzureDiskUploads"/>), create the VM, return the record. On any failure or cancellation everything
/// tagged with the operation is deleted before the exception leaves (<see cref="AzureOperationCleanup"/>).
/// </summary>
internal sealed class AzureRecovery(AzureTargetResourceGroup group, AzureMachineChecks checks, AzureDiskUploads uploads, AzureOperationCleanup cleanup)
{
    public async Task<RecoveredMachineRecord> RecoverAsync(AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point, RecoveryPurpose purpose,
        Guid operationId, JobContext context)
    {
        var plan = Plan(vault, item, point, purpose, operationId, context);
        var ct = context.CancellationToken;
        context.Report(0, $"Checking resource group '{group.Name}' for '{plan.VmName}'");
        await checks.CheckNameFreeAsync(item.Name, purpose, plan.Operation, ct).ConfigureAwait(false);
        await cleanup.RemoveEarlierAttemptAsync(plan.Operation, context).ConfigureAwait(false);
        try
        {
            var disks = await MakeDisksAsync(plan, vault, item, point, context.Phase(0, 95)).ConfigureAwait(false);
            context.Report(96, $"Creating VM '{plan.VmName}' ({plan.Placement.VmSize}) in '{group.Name}'");
            string vmId = await group.ControlPlane.CreateVirtualMachineAsync(plan.VmSpec(disks), ct).ConfigureAwait(false);
            context.Report(100, $"'{item.Name}' recovered to Azure VM '{plan.VmName}' from point {point.Sequence}");
            return plan.RecordOf(point, vmId, disks);
        }
        catch (Exception ex)
        {
            context.Logger.LogWarning("Recovering '{Item}' into {Location} failed ({Error}); removing what operation {Operation} made.",
                item.Name, group.Id, ex.Message, plan.Operation);
            var incomplete = await cleanup.CleanUpAfterFailureAsync(plan.Operation, plan.VmName, ex, context.Logger).ConfigureAwait(false);
            if (incomplete is not null) throw incomplete;
            throw;
        }
    }

    /// <summary>Names, placement, subnet and tags of the machine, after the spec checks (no network).</summary>
    public AzureRecoveryPlan Plan(AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point, RecoveryPurpose purpose, Guid operationId, JobContext context)
    {
        ArgumentNullException.ThrowIfNull(vault);
        ArgumentNullException.ThrowIfNull(item);
        ArgumentNullException.ThrowIfNull(point);
        ArgumentNullException.ThrowIfNull(context);
        if (operationId == Guid.Empty) throw new ArgumentException("An operation id is needed to tag what is made.", nameof(operationId));
        var placement = checks.CheckMachine(item.Name, point.Disks.Select(d => (d.Name, d.SizeBytes)).ToList(), purpose);
        string op = AzureTargetTags.OperationValue(operationId);
        string vmName = AzureResourceNames.VirtualMachine(item.Name, purpose);
        var tags = AzureTargetTags.Merge(group.Settings.Tags, new Dictionary<string, string>
        {
            [AzureTargetTags.Vault] = vault.VaultId,
            [AzureTargetTags.Item] = item.Name,
            [AzureTargetTags.ItemId] = item.Id,
            [AzureTargetTags.Job] = context.Job.Id.ToString("D"),
            [AzureTargetTags.Point] = point.Sequence.ToString(CultureInfo.InvariantCulture),
            [AzureTargetTags.Operation] = op,
            [AzureTargetTags.Purpose] = purpose.ToString(),
        });
        return new AzureRecoveryPlan(vmName, op, placement,
            purpose == RecoveryPurpose.TestFailover ? placement.TestSubnetId! : placement.SubnetId, tags,
            AzureResourceNames.Disks(vmName, point.Disks.Select(d => (d.DiskId, d.Name)).ToList(), operationId),
            group.Region, group.Id);
    }

    /// <summary>The generation of the OS disk (the machine's setting, or detected), then the disks uploaded.</summary>
    public async Task<IReadOnlyList<AzureRecoveredDisk>> MakeDisksAsync(AzureRecoveryPlan plan, AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point,
        JobContext phase)
    {
        var (generation, source) = plan.Placement.HyperVGeneration is { } g
            ? (g, "machine settings")
            : await OsDiskFirmware.DetectAsync(vault, point, point.Disks[0].DiskId, phase.CancellationToken).ConfigureAwait(false);
        phase.Logger.LogInformation("'{Vm}' boots as {Generation} ({Source}).", plan.VmName, generation, source);
        var uploaded = await uploads.UploadAsync(vault, item, point, plan.DiskNames, plan.Placement, generation, plan.Tags, phase).ConfigureAwait(false);
        return uploaded.Select(u => new AzureRecoveredDisk(u.DiskId, u.Result, generation, source)).ToList();
    }
}
