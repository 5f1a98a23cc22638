using System.Collections.Concurrent;
using System.Security.Cryptography;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Point-in-time readers of a recovered VM's disks (reprotect, failback, a drill's verification): incremental
/// snapshots of its disks taken together, read through read SASs (<see cref="ManagedDiskSasReader"/>); disposing the
/// set revokes and deletes them.
/// </summary>
internal sealed class AzureSnapshotReadBack(AzureTargetResourceGroup group, ManagedDiskUploadOptions? upload, ILogger logger)
{
    /// <summary>Snapshots taken at once: those of one VM's disks are taken as close together as possible.</summary>
    private const int SnapshotsInParallel = 16;

    public async Task<RecoveredDiskSet> OpenAsync(AsrProtectedItem item, RecoveredMachineRecord machine, CancellationToken cancellationToken)
    {
        // The record is vault data: every disk it names must be a managed disk of this resource group.
        var sources = item.Disks.Select(d =>
        {
            if (!machine.Disks.TryGetValue(d.DiskId, out var id) || !group.IsOwnDisk(id))
                throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                    $"The recovered machine of '{item.Name}' names no managed disk of resource group '{group.Name}' for disk '{d.Name}' " +
                    $"({(id is null ? "none" : $"'{id}'")}): the record is damaged or was not made by this target.", item.Name);
            return (Disk: d, ManagedDiskId: id);
        }).ToList();

        var tags = AzureTargetTags.Merge(group.Settings.Tags, new Dictionary<string, string>
        {
            [AzureTargetTags.Item] = item.Name,
            [AzureTargetTags.ItemId] = item.Id,
            [AzureTargetTags.Operation] = AzureTargetTags.OperationValue(machine.OperationId),
            [AzureTargetTags.Purpose] = AzureTargetTags.ReprotectPurpose,
        });
        var snapshots = new ConcurrentBag<string>();
        var readers = new IRecoveredDiskReader[sources.Count];
        try
        {
            await BoundedParallel.RunAsync(sources.Count, SnapshotsInParallel, async (i, ct) =>
            {
                var (disk, managedDiskId) = sources[i];
                string name = AzureResourceNames.Snapshot(managedDiskId[(managedDiskId.LastIndexOf('/') + 1)..], RandomNumberGenerator.GetHexString(8, lowercase: true));
                string snapshotId = await group.ControlPlane.CreateSnapshotAsync(new AzureSnapshotSpec(name, group.Region, managedDiskId)
                {
                    Incremental = true,
                    Tags = tags,
                }, ct).ConfigureAwait(false);
                snapshots.Add(snapshotId);
                Uri sas = await group.ControlPlane.GrantReadAccessAsync(snapshotId, AzureDiskUploads.AccessDuration(disk.SizeBytes), ct).ConfigureAwait(false);
                readers[i] = new ManagedDiskSasReader(sas, disk.SizeBytes, upload);
                return snapshotId;
            }, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            foreach (var r in readers) (r as IDisposable)?.Dispose();
            await ReleaseSnapshotsAsync(snapshots.ToList()).ConfigureAwait(false);
            throw;
        }
        var made = snapshots.ToList();
        return new RecoveredDiskSet(sources.Select((s, i) => (s.Disk.DiskId, Reader: readers[i])).ToDictionary(p => p.DiskId, p => p.Reader),
            () => new ValueTask(ReleaseSnapshotsAsync(made)));
    }

    /// <summary>Revokes the read access to the snapshots and deletes them; failures are logged, not thrown (they carry the operation's tag, so removing the machine removes them too).</summary>
    private async Task ReleaseSnapshotsAsync(IReadOnlyList<string> snapshotIds)
    {
        foreach (string id in snapshotIds)
        {
            try
            {
                await group.ControlPlane.RevokeAccessAsync(id, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Could not revoke the read access to snapshot {Snapshot}.", id);
            }
            try
            {
                await group.ControlPlane.DeleteAsync(id, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Could not delete snapshot {Snapshot}; it is removed with the machine (its operation's tag), or delete it by hand.", id);
            }
        }
    }
}
