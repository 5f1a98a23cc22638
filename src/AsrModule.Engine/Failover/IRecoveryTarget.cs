using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Failover;

/// <summary>What a machine is recovered for: a drill (isolated, thrown away by cleanup) or a failover.</summary>
public enum RecoveryPurpose { TestFailover, Failover }

/// <summary>
/// Where failovers and drills put recovered machines: a directory on this machine (<see cref="AsrLocalTarget"/>) or
/// Azure (AsrAzureTarget in AsrModule.Engine.Azure: managed disks and VMs). The failover services talk to a target
/// only through this interface. What a target made is described by a <see cref="RecoveredMachineRecord"/> kept on
/// the item; the record is vault data, so a target never deletes or reads on its say alone: it re-derives what to
/// remove from itself (its directory, its resource group and the operation's tag) and refuses a record it did not make
/// (<see cref="EnsureOwns"/>).
/// </summary>
public interface IRecoveryTarget
{
    /// <summary>"Local" or "Azure"; stored with what a failover or drill made.</summary>
    string Kind { get; }

    /// <summary>Where, without any secret: a directory, or an Azure resource group's id. Stored on the item.</summary>
    string Location { get; }

    /// <summary>Where a machine of <paramref name="itemName"/> goes, in words (ShouldProcess, messages).</summary>
    string Describe(string itemName, RecoveryPurpose purpose);

    /// <summary>Checks before any job that <paramref name="item"/> can be recovered here; throws a categorised <see cref="Errors.AsrException"/>.</summary>
    Task ValidateAsync(AsrVault vault, AsrProtectedItem item, RecoveryPurpose purpose, CancellationToken cancellationToken);

    /// <summary>
    /// Makes a machine from <paramref name="point"/>: its disks (byte-equal to the point, verified) and, where the
    /// target runs machines, the machine itself. Everything made is marked with <paramref name="operationId"/>. On
    /// failure or cancellation what was made is removed before the exception leaves (or named in it).
    /// </summary>
    Task<RecoveredMachineRecord> RecoverAsync(AsrVault vault, AsrProtectedItem item, AsrRecoveryPoint point, RecoveryPurpose purpose,
        Guid operationId, JobContext context);

    /// <summary>
    /// Before commit: the machine <paramref name="current"/> is recovered from <paramref name="point"/> instead. The machine
    /// stays (same directory, same VM); its disks are replaced by disks of the new point marked with
    /// <paramref name="operationId"/>; the old disks are removed once the machine uses the new ones.
    /// </summary>
    Task<RecoveredMachineRecord> ReplaceDisksAsync(AsrVault vault, AsrProtectedItem item, RecoveredMachineRecord current, AsrRecoveryPoint point,
        Guid operationId, JobContext context);

    /// <summary>Deletes what <see cref="RecoverAsync"/> made for <paramref name="machine"/> (found again from the target, not the record); returns what was removed.</summary>
    Task<IReadOnlyList<string>> RemoveAsync(AsrProtectedItem item, RecoveredMachineRecord machine, JobContext context);

    /// <summary>Throws RecoveryTargetMismatch unless <paramref name="machine"/> was made by this target (same kind and location).</summary>
    void EnsureOwns(RecoveredMachineRecord machine, string itemName);

    /// <summary>
    /// Point-in-time readers of the recovered machine's disks, by disk id (reprotect and failback read them; a drill's
    /// verification too). A running machine is read through a snapshot taken now. Dispose to release them.
    /// </summary>
    Task<RecoveredDiskSet> OpenRecoveredDisksAsync(AsrProtectedItem item, RecoveredMachineRecord machine, CancellationToken cancellationToken);
}
