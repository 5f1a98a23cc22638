using AsrModule.Engine.Storage;
using System.Text.RegularExpressions;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication;

/// <summary>
/// Enabling, running and disabling replication of protected items. Every method validates first and
/// throws before changing anything; the long part runs as a job body.
/// </summary>
public sealed partial class ReplicationService
{
    public const int DefaultBlockSize = 4096;
    private readonly AsrVault _vault;

    public ReplicationService(AsrVault vault) => _vault = vault;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    private static partial Regex ItemNamePattern();

    /// <summary>Validates and registers a machine (state InitialReplicationPending). Nothing is written if any check fails.</summary>
    /// <param name="sourceFormat">The disks' image format (raw, qcow2, vmdk, vhdx, vdi, vhd), or null/"auto": each file's magic bytes decide.</param>
    public async Task<AsrProtectedItem> RegisterAsync(string name, IReadOnlyList<string> diskPaths, string policyName, CancellationToken ct, int blockSize = DefaultBlockSize,
        ItemReplicationSettings? settings = null, string? sourceFormat = null)
    {
        if (blockSize < 512 || blockSize > (1 << 20) || (blockSize & (blockSize - 1)) != 0)
            throw new AsrException(AsrErrorIds.BlockSizeInvalid, AsrErrorKind.InvalidArgument, $"Block size {blockSize} must be a power of two from 512 bytes to 1 MiB.", blockSize);
        if (!ItemNamePattern().IsMatch(name))
            throw new AsrException(AsrErrorIds.ProtectedItemNameInvalid, AsrErrorKind.InvalidArgument,
                $"'{name}' is not a valid machine name: use 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit.", name);
        var policy = await _vault.GetPolicyAsync(policyName, ct).ConfigureAwait(false);
        if (await _vault.Store.ExistsAsync(VaultLayout.ItemNameClaim(name), ct).ConfigureAwait(false))
            throw new AsrException(AsrErrorIds.ProtectedItemAlreadyExists, AsrErrorKind.ResourceExists,
                $"A protected item named '{name}' already exists in the vault. Choose another name, or Disable-AsrReplication it first.", name);
        if (diskPaths.Count == 0)
            throw new AsrException(AsrErrorIds.DiskNotFound, AsrErrorKind.InvalidArgument, $"Machine '{name}' needs at least one disk.", name);

        var item = new AsrProtectedItem
        {
            Name = name,
            Id = Guid.NewGuid().ToString("N")[..16],
            PolicyName = policy.Name,
            CreatedUtc = DateTimeOffset.UtcNow,
            State = ProtectedItemState.InitialReplicationPending,
        };
        var seen = new HashSet<string>(StringComparer.Ordinal);
        // A symlink or hard link names the same disk under another path: compare device + inode too.
        var seenFiles = new Dictionary<(ulong Device, ulong Inode), string>();
        foreach (var path in diskPaths)
        {
            string full = Path.GetFullPath(path);
            if (!seen.Add(full))
                throw new AsrException(AsrErrorIds.DiskDuplicate, AsrErrorKind.InvalidArgument, $"Disk '{full}' is listed twice for machine '{name}'.", full);
            if (OutputLocation.IsInsideVault(full, _vault.Store))
                throw new AsrException(AsrErrorIds.DiskUnsupported, AsrErrorKind.InvalidArgument,
                    $"Disk '{full}' is inside the vault '{_vault.Location}': the vault's own objects are not a machine's disk. Protect a disk outside the vault.", full);
            bool isBlockDevice;
            using (var raw = DiskSource.Open(full)) isBlockDevice = raw.IsBlockDevice;
            string? format = Sources.SourceDisks.FormatToPin(full, sourceFormat, isBlockDevice);
            using var source = await Sources.SourceDisks.OpenAsync(full, format, ct).ConfigureAwait(false);
            if (DiskFileType.Of(full) is { Kind: DiskFileKind.RegularFile or DiskFileKind.BlockDevice } id)
            {
                if (seenFiles.TryGetValue((id.Device, id.Inode), out var first))
                    throw new AsrException(AsrErrorIds.DiskDuplicate, AsrErrorKind.InvalidArgument,
                        $"Disks '{first}' and '{full}' are the same disk (a link to one file or device) for machine '{name}'.", full);
                seenFiles[(id.Device, id.Inode)] = full;
            }
            if (source.Size == 0)
                throw new AsrException(AsrErrorIds.DiskEmpty, AsrErrorKind.InvalidArgument, $"Disk '{full}' is empty (0 bytes); there is nothing to protect.", full);
            if (BlockHashTable.BlockCount(source.Size, blockSize) > MaxDiskBlocks)
                throw new AsrException(AsrErrorIds.DiskUnsupported, AsrErrorKind.InvalidArgument,
                    $"Disk '{full}' has {BlockHashTable.BlockCount(source.Size, blockSize):N0} blocks of {blockSize:N0} bytes; this module protects disks of at most {MaxDiskBlocks:N0} blocks " +
                    $"({(double)MaxDiskBlocks * blockSize / (1L << 40):N0} TiB at this block size): a resync, a planned failover's final check and the verification of a point still hold one hash per block in memory. Give a larger -BlockSize.", full);
            string diskName = Path.GetFileName(full);
            if (item.Disks.Any(d => string.Equals(d.Name, diskName, StringComparison.OrdinalIgnoreCase)))
                diskName = $"disk{item.Disks.Count}-{diskName}";
            item.Disks.Add(new ProtectedDisk
            {
                DiskId = $"disk{item.Disks.Count}",
                Name = diskName,
                SourcePath = full,
                SizeBytes = source.Size,
                BlockSize = blockSize,
                IsBlockDevice = isBlockDevice,
                SourceFormat = format,
                // Reprotect writes back to this path only while it is still this file or device.
                SourceIdentity = DiskFileType.Of(full)?.Identity,
            });
        }
        settings ??= new ItemReplicationSettings();
        settings.ApplyTo(item, await GroupPeersAsync(item, settings, ct).ConfigureAwait(false));
        (item.CaptureMethod, item.ReachableConsistency) = Tracking.ChangeTrackers.Describe(item);
        await _vault.ClaimItemNameAsync(item, ct).ConfigureAwait(false);
        await _vault.SaveItemAsync(item, ct).ConfigureAwait(false);
        return item;
    }

    /// <summary>
    /// The most blocks a disk may have: a whole table of its hashes (a resync's replica hashes, a planned failover's
    /// final check, a point's verification) is one array of 8-byte hashes, and arrays end below 2^31 elements. 8 TiB at 4 KiB.
    /// </summary>
    internal const long MaxDiskBlocks = (1L << 31) - 1024;

    /// <summary>
    /// Takes the item's lock and checks that its disks can be read, before a cycle job starts. A disk
    /// whose size changed marks the item ResyncRequired (and fails) unless this is a resync.
    /// </summary>
    public async Task<IDisposable> PrepareCycleAsync(AsrProtectedItem item, bool resync, CancellationToken ct)
    {
        ItemStateMachine.EnsureAllowed(item, resync ? ItemOperation.Resync : ItemOperation.Replicate);
        if (item.State == ProtectedItemState.Reprotected)
            throw new AsrException(AsrErrorIds.InvalidStateTransition, AsrErrorKind.InvalidOperation,
                $"'{item.Name}' replicates in the reverse direction (recovered disks → original site); use the reverse cycle.", item.Name);
        var lease = AcquireLease(item);
        try
        {
            foreach (var disk in item.Disks)
            {
                using var source = await Sources.SourceDisks.OpenAsync(disk, ct).ConfigureAwait(false);
                if (source.Size != disk.SizeBytes && !resync && !item.NeedsResync && item.LastPointSequence > 0)
                {
                    string reason = $"Disk '{disk.Name}' ({disk.SourcePath}) changed size from {disk.SizeBytes:N0} to {source.Size:N0} bytes.";
                    await _vault.UpdateItemAsync(item.Id, i => i.MarkResyncRequired(reason), ct).ConfigureAwait(false);
                    item.MarkResyncRequired(reason);
                    throw new AsrException(AsrErrorIds.DiskSizeChanged, AsrErrorKind.InvalidOperation,
                        reason + $" Item '{item.Name}' is now marked ResyncRequired; run Invoke-AsrReplication again to compare checksums and send only the differing blocks.", disk.Name);
                }
            }
            return lease;
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Takes the item's exclusive lock without touching its disks (for operations that must work when
    /// the source site is gone). Disposing releases it; a dead process releases it too.
    /// </summary>
    public IDisposable AcquireLease(AsrProtectedItem item) =>
        _vault.Store.TryAcquireLock(VaultLayout.ItemLock(item.Id))
        ?? throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
            $"Protected item '{item.Name}' is busy: another job (in this or another session{(item.CycleInProgressJobId is { } job ? $"; its last cycle is job {job}" : "")}) is working on it. " +
            "Wait for it with Get-AsrJob | Wait-AsrJob. The lock of a process that ended frees itself (at once in a local vault, within a minute in a blob vault).", item.Name);

    /// <summary>One replication cycle (initial, delta or checksum resync). Call with the lease from <see cref="PrepareCycleAsync"/>.</summary>
    public async Task<AsrJobResult> RunCycleAsync(AsrProtectedItem item, bool forceResync, JobContext context, CycleOptions? options = null)
    {
        var result = await ReplicationCycle.RunAsync(_vault, item, forceResync, context, options).ConfigureAwait(false);
        await ApplyRetentionAsync(item, context.Logger).ConfigureAwait(false);
        return result;
    }

    /// <summary>
    /// Prunes and thins the item's points after a new one (caller holds the lease). A failure is logged and
    /// does not undo the point: the next cycle's retention finishes the job.
    /// </summary>
    public async Task<Retention.RetentionResult?> ApplyRetentionAsync(AsrProtectedItem item, ILogger logger)
    {
        try
        {
            // The record as stored now (retention reads it again under its lock; nothing shown is needed, so not the name
            // claim, the policy or the points a shown item costs).
            var fresh = await _vault.Catalog.ReadItemRecordAsync(Vault.VaultLayout.Item(item.Id), CancellationToken.None).ConfigureAwait(false)
                ?? throw new AsrException(AsrErrorIds.ProtectedItemNotFound, AsrErrorKind.ObjectNotFound, $"Protected item '{item.Name}' no longer exists.", item.Name);
            var result = await Retention.RetentionService.ApplyAsync(_vault, fresh, CancellationToken.None).ConfigureAwait(false);
            if (result.PrunedSequences.Count > 0)
                logger.LogInformation("Retention of {Item}: pruned points {Pruned}, rebased {Rebased}, reclaimed {Bytes} bytes",
                    item.Name, string.Join(",", result.PrunedSequences), string.Join(",", result.RebasedSequences), result.BytesReclaimed);
            return result;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            logger.LogWarning(ex, "Retention of {Item} failed: {Message}", item.Name, ex.Message);
            await _vault.Events.WriteAsync(Events.AsrEventSeverity.Warning, Events.AsrEventTypes.RetentionFailed,
                $"Retention of '{item.Name}' failed (the points are intact; the next cycle retries): {ex.Message}", item.Name).ConfigureAwait(false);
            return null;
        }
    }

    /// <summary>Changes how an item is replicated continuously; checked against the catalog first, nothing changes on error.</summary>
    public async Task<AsrProtectedItem> UpdateSettingsAsync(AsrProtectedItem item, ItemReplicationSettings settings, CancellationToken ct)
    {
        if (!string.IsNullOrEmpty(settings.PolicyName))
            settings = settings with { PolicyName = (await _vault.GetPolicyAsync(settings.PolicyName, ct).ConfigureAwait(false)).Name };
        var others = await GroupPeersAsync(item, settings, ct).ConfigureAwait(false);
        settings.ApplyTo(item, others); // validates on a copy the caller holds; the saved record is changed below
        return await _vault.UpdateItemAsync(item.Id, i => settings.ApplyTo(i, others), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The catalog the settings are checked against: only a replication group's rules need the other items, so an item
    /// outside a group is enabled or changed without reading every item of the vault (issue #15: O(1), not O(items)).
    /// </summary>
    private async Task<IReadOnlyList<AsrProtectedItem>> GroupPeersAsync(AsrProtectedItem item, ItemReplicationSettings settings, CancellationToken ct)
    {
        string? group = settings.ReplicationGroup is null ? item.ReplicationGroup : settings.ReplicationGroup.Length == 0 ? null : settings.ReplicationGroup;
        return group is null ? [] : await _vault.GetItemsAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Removes the item and everything the vault holds for it.</summary>
    public async Task DisableAsync(AsrProtectedItem item, CancellationToken ct)
    {
        ItemStateMachine.EnsureAllowed(item, ItemOperation.Disable);
        using var lease = AcquireLease(item);
        await _vault.RemoveItemAsync(item, ct).ConfigureAwait(false);
        // The clones kept beside the disks for change tracking (reflink capture) are this item's too.
        foreach (var disk in item.Disks) Tracking.Reflink.ReflinkCloneDirectory.Of(item, disk).DeleteAll();
        // So are the dirty bitmaps it added to qcow2 images.
        await Tracking.Qcow2.Qcow2BitmapTracker.RemoveAllAsync(item, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, ct).ConfigureAwait(false);
    }
}
