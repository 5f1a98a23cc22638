using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Azure as a recovery site (issue #11): a recovered machine is a VM made from managed disks uploaded straight from the
/// vault, in one subscription and resource group (<see cref="AzureTargetSettings"/>). This class is the facade: the
/// settings, what is shown, the checks, and the calls handed to one part each:
/// <list type="bullet">
/// <item><see cref="RecoverAsync"/> (<see cref="AzureRecovery"/>): per disk of the point (up to <see cref="DisksInParallel"/>
/// at once, <see cref="AzureDiskUploads"/>): create an upload disk → grant write access → upload and verify by
/// read-back SHA-256 (<see cref="ManagedDiskUploader"/>) → revoke; then the VM (OS disk first, data disks at LUN 0.. in
/// the point's order, one NIC in the failover or the drill subnet, boot diagnostics on). Names come from
/// <see cref="AzureResourceNames"/>, tags from <see cref="AzureTargetTags"/>. On any failure or cancellation everything
/// tagged with the operation is deleted before the exception leaves; what could not be is named in it.</item>
/// <item><see cref="ReplaceDisksAsync"/> (change of point before commit, <see cref="AzureDiskReplacement"/>): the new
/// point's disks are uploaded, then the VM is created again under its name from them, and the old disks are deleted.</item>
/// <item><see cref="RemoveAsync"/> (<see cref="AzureOperationCleanup"/>): deletes what carries the operation's tag in
/// this target's resource group: found from Azure, never from the record (vault data).</item>
/// <item><see cref="OpenRecoveredDisksAsync"/> (<see cref="AzureSnapshotReadBack"/>): incremental snapshots of the VM's
/// disks, read through read SASs (<see cref="ManagedDiskSasReader"/>); disposing revokes and deletes them.</item>
/// </list>
/// The caller keeps the point from being pruned while it is read (a <see cref="PointPin"/>). No Azure SDK type is in
/// its public members; the control plane is made on first use, so creating a target calls nothing.
/// </summary>
public sealed class AsrAzureTarget : IRecoveryTarget
{
    public const string AzureKind = "Azure";

    /// <summary>Disks uploaded at once: the failover's RTO is the slowest of them, not their sum.</summary>
    public const int DisksInParallel = 4;

    private readonly AzureTargetResourceGroup _group;
    private readonly AzureMachineChecks _checks;
    private readonly AzureRecovery _recovery;
    private readonly AzureDiskReplacement _replacement;
    private readonly AzureOperationCleanup _cleanup;
    private readonly AzureSnapshotReadBack _readBack;

    /// <summary>A target in Azure. Nothing is called until it is used; the settings are checked now (FailoverTargetInvalid).</summary>
    /// <param name="arm">Retries and timeouts of the Resource Manager calls.</param>
    /// <param name="upload">Request sizes, concurrency and retries of the uploads (and of the reads of recovered disks).</param>
    /// <param name="logger">Where what is not an error of the call is logged (snapshots that could not be released).</param>
    public static AsrAzureTarget Create(AzureTargetSettings settings, AzureTargetCredential credential, ArmControlPlaneOptions? arm = null,
        ManagedDiskUploadOptions? upload = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(credential);
        settings.Validate();
        arm?.Validate();
        return new AsrAzureTarget(settings,
            () => new ArmControlPlane(settings.Cloud, settings.SubscriptionId, settings.ResourceGroupName, credential.Create(settings.Cloud), arm),
            upload, credential.Kind, logger);
    }

    /// <summary>A target on a given control plane (tests: a fake Resource Manager).</summary>
    internal AsrAzureTarget(AzureTargetSettings settings, Func<IAzureControlPlane> controlPlane, ManagedDiskUploadOptions? upload, string credentialKind,
        ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(controlPlane);
        settings.Validate();
        upload?.Validate();
        Settings = settings;
        CredentialKind = credentialKind;
        _group = new AzureTargetResourceGroup(settings, controlPlane);
        _checks = new AzureMachineChecks(_group);
        _cleanup = new AzureOperationCleanup(_group);
        _recovery = new AzureRecovery(_group, _checks, new AzureDiskUploads(_group, upload), _cleanup);
        _replacement = new AzureDiskReplacement(_group, _recovery, _cleanup);
        _readBack = new AzureSnapshotReadBack(_group, upload, logger ?? NullLogger.Instance);
    }

    public AzureTargetSettings Settings { get; }

    public string Kind => AzureKind;

    /// <summary>The resource group's id: /subscriptions/{subscription}/resourceGroups/{group}.</summary>
    public string Location => _group.Id;

    public string SubscriptionId => Settings.SubscriptionId;
    public string ResourceGroupName => Settings.ResourceGroupName;
    /// <summary>The region as ARM writes it (westeurope).</summary>
    public string Region => Settings.NormalizedRegion;
    public string SubnetId => Settings.SubnetId;
    public string? TestSubnetId => Settings.TestSubnetId;
    public string VmSize => Settings.VmSize;
    public string DiskSku => Settings.DiskSku;
    public string? Zone => Settings.Zone;
    /// <summary>The cloud's name (AzureCloud, AzureChinaCloud, AzureUSGovernment, Custom).</summary>
    public string Cloud => Settings.Cloud.Name;
    /// <summary>DefaultAzureCredential, ManagedIdentity, ServicePrincipal or AccessToken.</summary>
    public string CredentialKind { get; }

    public override string ToString() => $"Azure {Location} ({Region})";

    public string Describe(string itemName, RecoveryPurpose purpose)
    {
        var placement = Settings.PlacementOf(itemName);
        string? subnet = purpose == RecoveryPurpose.TestFailover ? placement.TestSubnetId : placement.SubnetId;
        return $"Azure VM '{AzureResourceNames.VirtualMachine(itemName, purpose)}' ({placement.VmSize}) in resource group '{ResourceGroupName}' " +
               $"of subscription {SubscriptionId}, {Region}{(placement.Zone is null ? "" : " zone " + placement.Zone)}, subnet '{subnet ?? "(none)"}'";
    }

    public async Task ValidateAsync(AsrVault vault, AsrProtectedItem item, RecoveryPurpose purpose, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(item);
        _checks.CheckMachine(item.Name, item.Disks.Select(d => (d.Name, d.SizeBytes)).ToList(), purpose);
        // The operation whose VM may stand under this name: the item's own failover or drill (a change of point, a resumed job).
        var current = purpose == RecoveryPurpose.Failover ? item.Failover?.Machine : item.TestFailover?.Machine;
        // A read of the resource group itself: a missing group or a refused credential shows here, before any job (a
        // VM read answers 404 for both a missing VM and a missing group).
        await _group.ControlPlane.ListByTagAsync(AzureTargetTags.ItemId, item.Id, cancellationToken).ConfigureAwait(false);
        await _checks.CheckNameFreeAsync(item.Name, purpose, current is null ? null : AzureTargetTags.OperationValue(current.OperationId), cancellationToken)
            .ConfigureAwait(false);
    }

    public Task<RecoveredMachineRecord> RecoverAsync(AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point, RecoveryPurpose purpose,
        Guid operationId, JobContext context) =>
        _recovery.RecoverAsync(vault, item, point, purpose, operationId, context);

    // The argument and ownership checks below stay in the facade, inside async methods: they fault the returned task, as before the split.
    /// <summary>
    /// Before commit, the failed-over VM is made again from another point (<see cref="AzureDiskReplacement"/>): the new
    /// point's disks are uploaded while the VM runs on, then the VM is recreated under the same name from them and the old
    /// disks are deleted; should that fail, the old VM is created again from its own disks before the exception leaves.
    /// </summary>
    public async Task<RecoveredMachineRecord> ReplaceDisksAsync(AsrVault vault, AsrProtectedItem item, RecoveredMachineRecord current, AsrRecoveryPoint point,
        Guid operationId, JobContext context)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(item);
        EnsureOwns(current, item.Name);
        return await _replacement.ReplaceDisksAsync(vault, item, current, point, operationId, context).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> RemoveAsync(AsrProtectedItem item, RecoveredMachineRecord machine, JobContext context)
    {
        ArgumentNullException.ThrowIfNull(item);
        ArgumentNullException.ThrowIfNull(machine);
        ArgumentNullException.ThrowIfNull(context);
        EnsureOwns(machine, item.Name);
        return await _cleanup.RemoveAsync(item, machine, context).ConfigureAwait(false);
    }

    public void EnsureOwns(RecoveredMachineRecord machine, string itemName)
    {
        ArgumentNullException.ThrowIfNull(machine);
        if (string.Equals(machine.TargetKind, Kind, StringComparison.OrdinalIgnoreCase)
            && string.Equals(machine.TargetLocation?.TrimEnd('/'), Location, StringComparison.OrdinalIgnoreCase))
            return;
        string where = string.IsNullOrEmpty(machine.TargetKind) ? $"'{machine.TargetLocation}'" : $"the {machine.TargetKind} target '{machine.TargetLocation}'";
        throw new AsrException(AsrErrorIds.RecoveryTargetMismatch, AsrErrorKind.InvalidArgument,
            $"The machine of '{itemName}' was made in {where}, not in this target (Azure '{Location}'); pass the target for {where}.", itemName);
    }

    public async Task<RecoveredDiskSet> OpenRecoveredDisksAsync(AsrProtectedItem item, RecoveredMachineRecord machine, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(item);
        ArgumentNullException.ThrowIfNull(machine);
        EnsureOwns(machine, item.Name);
        return await _readBack.OpenAsync(item, machine, cancellationToken).ConfigureAwait(false);
    }
}
