using System.Buffers;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication.Consistency;
using AsrModule.Engine.Replication.TrackerTables;
using AsrModule.Engine.Replication.Tracking;
using AsrModule.Engine.Security;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication;

public enum CycleMode { Initial, Delta, Resync }

/// <summary>
/// One replication cycle of one item: read every disk, find the blocks that differ from what the vault
/// holds, send only those through the data pipeline, then publish one crash-consistent point for all
/// disks. Publication order makes a crash at any moment safe:
/// packs → extent indexes → change trackers (named by the new point) → manifest (atomic create) → item.
/// Until the manifest exists nothing lists the point, and the previous point's tracker is still there,
/// so a failed or cancelled cycle needs no resync; its leftovers are removed by the next cycle.
/// </summary>
internal sealed class ReplicationCycle
{
    public const int MaxExtentBlocks = 64;      // 256 KiB extents: good zstd ratio, small indexes
    /// <summary>Share of the scan phase a checksum resync spends hashing the replica before it reads the source.</summary>
    private const int ReplicaChecksumShare = 30;

    private readonly AsrVault _vault;
    private AsrProtectedItem _item;
    private readonly JobContext _context;
    // Progress phases, in the order they run: the scan (replica checksums, then reading the disks), then publication.
    private readonly JobContext _scanPhase, _publishPhase;
    private long _totalBytes;
    private DiskScanner? _scanner;

    private ReplicationCycle(AsrVault vault, AsrProtectedItem item, JobContext context, JobContext scanPhase, JobContext publishPhase)
    {
        _vault = vault;
        _item = item;
        _context = context;
        _scanPhase = scanPhase;
        _publishPhase = publishPhase;
    }

    public static Task<AsrJobResult> RunAsync(AsrVault vault, AsrProtectedItem item, bool forceResync, JobContext context, CycleOptions? options = null) =>
        new ReplicationCycle(vault, item, context, context.Phase(0, 95), context.Phase(95, 100)).RunAsync(forceResync, options ?? CycleOptions.Default);

    /// <summary>
    /// A cycle whose phases a group cycle drives for several machines at one instant. The group runs every
    /// member's scan before any member publishes, so it gives each member a scan phase and a publish phase of its own.
    /// </summary>
    internal static ReplicationCycle ForGroup(AsrVault vault, AsrProtectedItem item, JobContext context, JobContext scanPhase, JobContext publishPhase) =>
        new(vault, item, context, scanPhase, publishPhase);

    internal AsrProtectedItem Item => _item;
    internal long Sequence => _sequence;
    internal IChangeTracker? Tracker => _tracker;
    internal FreezeHook? Hook => _hook;
    internal RecoveryPointConsistency Consistency => _consistency;
    internal string? ConsistencyNote => _consistencyNote;

    private AsrPolicy _policy = null!;
    private AsrRecoveryPoint? _latest;
    /// <summary>
    /// The point the new one is a delta over: the latest, unless a resync found the latest (or a point of its chain)
    /// with an extent index that cannot be read, then the newest older point that reads, or none (a full copy).
    /// </summary>
    private AsrRecoveryPoint? _base;
    private long _sequence;
    /// <summary>This attempt's id, in its manifest and in the names of everything it writes (VaultLayout.SequenceToken).</summary>
    private readonly string _attemptId = VaultLayout.NewAttemptId();
    private CycleMode _mode;
    private IChangeTracker? _tracker;
    private FreezeHook? _hook;
    private IReadOnlyList<IDiskCapture> _captures = [];
    private DateTimeOffset _captureUtc;
    private RecoveryPointConsistency _consistency;
    private string? _consistencyNote;
    private string? _consistencyEvidence;
    private LiveReadCheck? _liveReadCheck;
    /// <summary>Each disk's new tracker, as its scan completed it (its segments are written; the map is written at publication).</summary>
    private TrackerMap[] _trackerMaps = [];
    private PipelineResult? _stored;

    private async Task<AsrJobResult> RunAsync(bool forceResync, CycleOptions options)
    {
        try
        {
            await BeginAsync(forceResync, options.AppConsistent).ConfigureAwait(false);
            await FreezeAsync().ConfigureAwait(false);
            await CaptureAsync().ConfigureAwait(false);
            if (_tracker!.CapturesPointInTime) await ThawAsync().ConfigureAwait(false);
            await ScanAsync().ConfigureAwait(false);
            await ThawAsync().ConfigureAwait(false);
            return await PublishAsync(null, null).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await FailAsync(ex).ConfigureAwait(false);
            throw;
        }
        finally
        {
            await DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Reads the policy and the latest point, cleans up an unpublished cycle, marks the cycle in progress and picks the mode.</summary>
    /// <param name="freeze">Run the item's freeze script (when it has one) around the capture.</param>
    internal async Task BeginAsync(bool forceResync, bool freeze)
    {
        var ct = _context.CancellationToken;
        // The caller's copy may be stale (an agent read the catalog before a failover finished): the
        // state that counts is the one under the lease.
        _item = await _vault.GetItemAsync(_item.Name, ct).ConfigureAwait(false);
        ItemStateMachine.EnsureAllowed(_item, forceResync ? ItemOperation.Resync : ItemOperation.Replicate);
        if (_item.State == ProtectedItemState.Reprotected)
            throw new AsrException(AsrErrorIds.InvalidStateTransition, AsrErrorKind.InvalidOperation,
                $"'{_item.Name}' replicates in the reverse direction (recovered disks → original site); a vault-direction cycle is not allowed.", _item.Name);
        _policy = await _vault.GetPolicyAsync(_item.PolicyName, ct).ConfigureAwait(false);
        _latest = await _vault.GetLatestPointAsync(_item.Id, ct).ConfigureAwait(false);
        _base = _latest;
        var listings = await CycleObjects.RemoveLeftoversAsync(_vault, _item.Id, _latest, _context.Logger, ct).ConfigureAwait(false);
        // What the listings just made show of the latest point's own objects (no extra request): a new delta over
        // a point whose index or pack is missing or short would be unreadable too, so the cycle resyncs instead.
        string? damage = _latest is null ? null : CycleObjects.LatestPointDamage(_item.Id, _latest, listings);
        if (damage is not null) _context.Logger.LogWarning("Item {Item}: {Damage}", _item.Name, damage);
        _sequence = (_latest?.Sequence ?? 0) + 1;
        var jobId = _context.Job.Id;
        var latest = _latest;
        _item = await _vault.UpdateItemRecordAsync(_item.Id, i =>
        {
            if (damage is not null) i.MarkResyncRequired(damage);
            if (i.CycleInProgressJobId is { } previous && previous != jobId && latest is not null)
                i.MarkResyncRequired($"The previous cycle (job {previous}) did not complete (process killed or transfer failed).");
            // Cleared on success or clean cancellation; left set by a crash or a failure, forcing the next cycle to resync.
            i.CycleInProgressJobId = jobId;
            i.LastJobId = jobId;
        }, ct).ConfigureAwait(false);
        _mode = _latest is null ? CycleMode.Initial
            : forceResync || _item.NeedsResync ? CycleMode.Resync
            : CycleMode.Delta;
        if (_item.FreezeHeldByJobId is { } heldBy && heldBy != jobId && _item.AppConsistencyScript is not null)
            await RecoverFreezeAsync(heldBy).ConfigureAwait(false);
        _tracker = await ChangeTrackers.OpenAsync(_item, _context.Logger, ct).ConfigureAwait(false);
        if (freeze && _item.AppConsistencyScript is not null)
            _hook = new FreezeHook(_item, _sequence, _context.Logger);
    }

    /// <summary>A cycle of job <paramref name="heldBy"/> died between freeze and thaw: thaw now, before anything else.</summary>
    private async Task RecoverFreezeAsync(Guid heldBy)
    {
        var hook = new FreezeHook(_item, _sequence, _context.Logger);
        hook.MarkFrozen();
        string? error = await hook.ThawAsync().ConfigureAwait(false);
        _context.Logger.LogWarning("Item {Item}: the cycle of job {Job} ended while its freeze was held; thaw run {Outcome}", _item.Name, heldBy, error is null ? "successfully" : "and failed: " + error);
        await _vault.Events.WriteAsync(error is null ? Events.AsrEventSeverity.Warning : Events.AsrEventSeverity.Error, Events.AsrEventTypes.FreezeRecovered,
            $"The cycle of job {heldBy} ended while '{_item.Name}' was frozen; the thaw script was run{(error is null ? "" : " and failed: " + error)}.", _item.Name, jobId: _context.Job.Id).ConfigureAwait(false);
        await SaveQuietlyAsync(i => i.FreezeHeldByJobId = null).ConfigureAwait(false);
    }

    /// <summary>Runs the item's freeze script; a failed freeze leaves the point crash-consistent (noted), not failed.</summary>
    internal async Task FreezeAsync()
    {
        _consistency = RecoveryPointConsistency.CrashConsistent;
        if (_hook is null) return;
        var jobId = _context.Job.Id;
        _item = await _vault.UpdateItemRecordAsync(_item.Id, i => i.FreezeHeldByJobId = jobId, _context.CancellationToken).ConfigureAwait(false);
        try
        {
            await _hook.FreezeAsync(_context.CancellationToken).ConfigureAwait(false);
            _consistency = RecoveryPointConsistency.AppConsistent;
        }
        catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.HookFailed)
        {
            _consistencyNote = "App-consistent point not possible: " + ex.Message + " The point is crash-consistent.";
            _context.Logger.LogWarning("{Note}", _consistencyNote);
            _hook = null;
            await SaveQuietlyAsync(i => i.FreezeHeldByJobId = null).ConfigureAwait(false);
        }
    }

    /// <summary>A group member whose group needs no freeze this time.</summary>
    internal Task SkipFreezeAsync()
    {
        _hook = null;
        _consistency = RecoveryPointConsistency.CrashConsistent;
        return Task.CompletedTask;
    }

    /// <summary>A group member of a group whose point is crash-consistent (not every freeze worked); an inconsistent member stays so.</summary>
    internal void MarkCrashConsistent()
    {
        if (_consistency != RecoveryPointConsistency.Inconsistent) _consistency = RecoveryPointConsistency.CrashConsistent;
    }

    internal async Task ThawAsync()
    {
        if (_hook is null || !_hook.IsFrozen) return;
        if (await _hook.ThawAsync().ConfigureAwait(false) is { } error)
            _consistencyNote = $"The thaw script failed after the capture: {error}";
        await SaveQuietlyAsync(i => i.FreezeHeldByJobId = null).ConfigureAwait(false);
    }

    /// <summary>Captures every disk at one instant (the point's time).</summary>
    internal async Task CaptureAsync(DateTimeOffset? instantUtc = null)
    {
        var ct = _context.CancellationToken;
        _tracker!.UseAttempts(_latest?.AttemptId, _attemptId);
        _captures = await _tracker.CaptureAsync(_item, _latest?.Sequence ?? 0, _sequence, ct).ConfigureAwait(false);
        // The instant is when the capture step ended (a clone, QEMU's transaction, a qcow2 bitmap): a live read's
        // fingerprint is taken right after it, and the point holds what was there then.
        _captureUtc = instantUtc ?? _vault.Clock.GetUtcNow();
        // A live read is point-in-time only if nothing writes until it ends: fingerprint the sources now, after the
        // tracker's own step (a qcow2 image gets its new dirty bitmap then) and before the first byte is read.
        _liveReadCheck = _tracker.CapturesPointInTime ? null : LiveReadCheck.Begin(_item);
        _consistencyEvidence = _tracker.CapturesPointInTime ? _tracker.CaptureEvidence : null;
        if (_tracker.CaptureInconsistency is { } inconsistency) MarkInconsistent(inconsistency);
    }

    /// <summary>After the read of a live capture: Inconsistent when a source was written while it was read.</summary>
    private void FinishLiveReadCheck()
    {
        if (_liveReadCheck is null) return;
        string? writes = _liveReadCheck.Finish(out string evidence);
        _consistencyEvidence = (_hook is { IsFrozen: true } ? "freeze script held; " : "") + evidence;
        if (writes is not null) MarkInconsistent($"its disks were read live and written during the read ({writes})");
    }

    private void MarkInconsistent(string why)
    {
        _consistency = RecoveryPointConsistency.Inconsistent;
        string note = $"Point {_sequence} is Inconsistent: {why}; its blocks may come from different instants. " +
            "LatestProcessed and plans skip it (-AllowInconsistent uses it). Capture point-in-time instead: an image file on XFS (reflink=1) or btrfs is cloned, a QEMU guest is read through -QmpSocket, or a freeze script holds the writers.";
        _consistencyNote = _consistencyNote is null ? note : _consistencyNote + " " + note;
        _context.Logger.LogWarning("{Note}", note);
    }

    /// <summary>Finds the changed blocks of every captured disk and stores them in packs.</summary>
    internal async Task ScanAsync()
    {
        var ct = _context.CancellationToken;
        var captures = _item.Disks.Select(d => _captures.First(c => c.DiskId == d.DiskId)).ToList();
        for (int i = 0; i < captures.Count; i++)
        {
            if (captures[i].Size == _item.Disks[i].SizeBytes) continue;
            if (BlockHashTable.BlockCount(captures[i].Size, _item.Disks[i].BlockSize) > ReplicationService.MaxDiskBlocks)
                throw new AsrException(AsrErrorIds.DiskUnsupported, AsrErrorKind.InvalidOperation,
                    $"Disk '{_item.Disks[i].Name}' ({_item.Disks[i].SourcePath}) grew to {captures[i].Size:N0} bytes, more than the {ReplicationService.MaxDiskBlocks:N0} blocks this module protects per disk; nothing was replicated. Shrink the disk back, or protect it again with a larger -BlockSize.", _item.Disks[i].Name);
            string reason = $"Disk '{_item.Disks[i].Name}' ({_item.Disks[i].SourcePath}) changed size from {_item.Disks[i].SizeBytes:N0} to {captures[i].Size:N0} bytes.";
            if (_mode == CycleMode.Delta)
            {
                _item = await _vault.UpdateItemRecordAsync(_item.Id, i => { i.CycleInProgressJobId = null; i.MarkResyncRequired(reason); }, ct).ConfigureAwait(false);
                throw new AsrException(AsrErrorIds.DiskSizeChanged, AsrErrorKind.InvalidOperation,
                    reason + $" Item '{_item.Name}' is now marked ResyncRequired; the next Invoke-AsrReplication compares checksums and sends only differing blocks.",
                    _item.Disks[i].Name);
            }
            _context.Logger.LogInformation("{Reason} Resync adopts the new size.", reason);
        }
        _totalBytes = Math.Max(1, captures.Sum(s => s.Size));

        var baselines = new TrackerBaseline[captures.Count];
        var forced = new long[captures.Count][];
        var damaged = new System.Collections.BitArray?[captures.Count];
        var ranges = new IReadOnlyList<ByteRange>?[captures.Count];
        // A delta trusts each disk's tracker; a disk without one is compared with the replica of the latest point,
        // and when that replica's index cannot be read the whole cycle becomes a resync over an older base.
        var trackers = new TrackerBaseline?[captures.Count];
        var readers = new RecoveryPointDiskReader?[captures.Count];
        try
        {
            if (_mode == CycleMode.Delta)
            {
                for (int i = 0; i < captures.Count; i++)
                    trackers[i] = await LoadTrackerAsync(_item.Disks[i], _latest!, ct).ConfigureAwait(false);
                try
                {
                    for (int i = 0; i < captures.Count; i++)
                        if (trackers[i] is null) readers[i] = await OpenReplicaAsync(_latest!, _item.Disks[i], ct).ConfigureAwait(false);
                }
                catch (AsrException ex) when (IsReplicaDamage(ex))
                {
                    DisposeAll(readers);
                    _context.Logger.LogWarning("Item {Item}: {Message} The cycle becomes a checksum resync.", _item.Name, ex.Message);
                    _mode = CycleMode.Resync;
                    _resyncReasonOverride = ex.Message;
                }
            }
            if (_mode == CycleMode.Resync)
                await ChooseResyncBaseAsync(readers, ct).ConfigureAwait(false);

            for (int i = 0; i < captures.Count; i++)
            {
                // A resized disk resends its old and its new last block: either may be partial, and the
                // vault's copy of a partial block cannot be trusted to line up with the new size.
                long size = captures[i].Size;
                long oldSize = _base?.Disks.FirstOrDefault(d => d.DiskId == _item.Disks[i].DiskId)?.SizeBytes ?? size;
                forced[i] = oldSize == size ? [] : new[]
                {
                    BlockHashTable.BlockCount(oldSize, _item.Disks[i].BlockSize) - 1,
                    BlockHashTable.BlockCount(size, _item.Disks[i].BlockSize) - 1,
                }.Where(b => b >= 0 && b < BlockHashTable.BlockCount(size, _item.Disks[i].BlockSize)).Distinct().ToArray();
                var disk = _item.Disks[i];
                TrackerBaseline? tracked = _mode == CycleMode.Delta ? trackers[i] : null;
                if (tracked is not null) baselines[i] = tracked;
                else if (readers[i] is { } reader)
                {
                    string why = _mode == CycleMode.Delta ? "its change tracker is missing" : _resyncReasonOverride ?? _item.ResyncReason ?? "resync was requested";
                    (baselines[i], damaged[i]) = await ReplicaHashesAsync(reader, disk, size, why, ct).ConfigureAwait(false);
                }
                else
                {
                    // Initial replication, or a resync with no readable point to compare against: a full copy.
                    if (_mode == CycleMode.Resync)
                        _resyncedDisks.Add($"disk '{disk.Name}' (copied in full: {(_base is null ? _resyncReasonOverride ?? "no point of the vault reads" : $"point {_base.Sequence} has no copy of it")})");
                    baselines[i] = new TrackerBaseline.Zero(size, disk.BlockSize, _vault.HashSeed);
                }
                // Only a delta over an intact hash table may trust the tracker's changed ranges.
                ranges[i] = _mode == CycleMode.Delta && tracked is not null && oldSize == size ? captures[i].ChangedRanges : null;
                if (_mode == CycleMode.Delta && tracked is not null && captures[i].HistoryLostReason is { } lost)
                    _fullScans.Add($"disk '{disk.Name}' read in full ({lost})");
            }
        }
        finally
        {
            DisposeAll(readers);
        }
        if (_mode == CycleMode.Delta && _resyncedDisks.Count > 0) _mode = CycleMode.Resync;

        // Reading the disks is the rest of the scan phase: after the replica checksums, if any were computed.
        var reading = _scanPhase.Phase(_resyncedDisks.Count > 0 ? ReplicaChecksumShare : 0, 100);
        _trackerMaps = new TrackerMap[captures.Count];
        var pipeline = new DataPipeline(_vault.Store, _item.Id, _sequence, _attemptId, _vault.Key,
            _policy.Compression == CompressionMethod.Zstd ? _policy.CompressionLevel : 0, captures.Count, ct);
        _scanner = new DiskScanner(pipeline);
        try
        {
            long bytesBefore = 0; // sizes of the disks already read: where this disk's share of the progress starts
            for (int i = 0; i < captures.Count; i++)
            {
                long diskStart = bytesBefore, diskSize = captures[i].Size;
                var disk = _item.Disks[i];
                // The new tracker is written segment by segment as the scan leaves each one (issue #15 item 3).
                await using var hashes = new ScanHashes(baselines[i],
                    new TrackerSegmentWriter(_vault.Store, _vault.Key, _item.Id, disk.DiskId, _sequence, _attemptId));
                try
                {
                    await _scanner.ScanAsync(i, disk, captures[i], ranges[i], hashes, forced[i], damaged[i], (read, total, changedBytes, whole) =>
                    {
                        // This disk counts as its whole size however little of it the tracker says to read, so the next disk starts where this one ends.
                        double diskDone = Math.Min(1.0, (double)read / total);
                        reading.Report((int)(100 * Math.Min(1.0, (diskStart + diskDone * diskSize) / _totalBytes)),
                            $"{_mode} replication of '{_item.Name}': disk '{disk.Name}' {read:N0} of {total:N0} {(whole ? "bytes" : "changed bytes")} read, {changedBytes:N0} bytes changed");
                    }, ct).ConfigureAwait(false);
                    _trackerMaps[i] = await hashes.CompleteAsync(ct).ConfigureAwait(false);
                }
                catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.VaultDataCorrupt && ex.Target is string key && key.StartsWith(VaultLayout.TrackerDirPrefix(_item.Id), StringComparison.Ordinal))
                {
                    // The previous tracker is damaged where this scan needed it: the next cycle must not trust it. Unless this
                    // cycle lost the item (its lease lapsed and another session published since: that one removed the segment).
                    string reason = ex.Message + " The item is marked ResyncRequired: the next cycle compares checksums with the vault's replica instead.";
                    long baseSequence = _latest!.Sequence;
                    ThrowIfItemLockLapsed(_sequence);
                    await SaveQuietlyAsync(it => { if (it.LastPointSequence == baseSequence) it.MarkResyncRequired(reason); }).ConfigureAwait(false);
                    throw new AsrException(ex.ErrorId, ex.Kind, reason, key, ex);
                }
                bytesBefore += captures[i].Size;
            }
            _stored = await pipeline.CompleteAsync().ConfigureAwait(false);
            FinishLiveReadCheck();
        }
        catch
        {
            await pipeline.AbortAsync().ConfigureAwait(false);
            throw;
        }
        ct.ThrowIfCancellationRequested();
    }

    /// <summary>
    /// A cycle whose item lock lapsed (a blob lease not renewed through an outage) may share its point's object
    /// names with a cycle another process started since: it must not write indexes or publish.
    /// </summary>
    private void ThrowIfItemLockLapsed(long sequence)
    {
        if (_vault.Store.LockLapsed(VaultLayout.ItemLock(_item.Id)))
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                $"The cycle of '{_item.Name}' lost its lock on the item during a storage outage (its lease lapsed), so it does not publish point {sequence}; another session may be working on the item. The next cycle resyncs.", _item.Name);
    }

    /// <summary>Writes an object of this attempt, never replacing one: one that exists was written by another writer of the same name.</summary>
    private async Task CreateOwnAsync(string key, byte[] content, CancellationToken ct)
    {
        if (!await _vault.Store.TryCreateAsync(key, content, ct).ConfigureAwait(false))
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                $"'{key}' already exists: another writer used the name of this cycle's attempt {_attemptId} of point {_sequence} of '{_item.Name}', so this cycle stops without replacing it. The next cycle resyncs.", _item.Name);
    }

    /// <summary>
    /// Writes the indexes and trackers, then publishes the manifest (the atomic step) and updates the item.
    /// A group member passes its group's point id and name; the group record is written after all members.
    /// </summary>
    internal async Task<AsrJobResult> PublishAsync(Guid? groupPointId, string? groupName, DateTimeOffset? pointTimeUtc = null)
    {
        var ct = _context.CancellationToken;
        var stored = _stored!;
        var sequence = _sequence;
        ThrowIfItemLockLapsed(sequence);
        _publishPhase.Report(0, $"Publishing recovery point {sequence} of '{_item.Name}'");
        var point = new AsrRecoveryPoint
        {
            PointId = Guid.NewGuid(),
            Sequence = sequence,
            ParentSequence = _base?.Sequence,
            ItemId = _item.Id,
            ItemName = _item.Name,
            RecoveryPointTimeUtc = pointTimeUtc ?? _captureUtc,
            Consistency = _consistency,
            ConsistencyEvidence = _consistencyEvidence,
            JobId = _context.Job.Id,
            Packs = stored.PackKeys,
            GroupPointId = groupPointId,
            ReplicationGroup = groupName,
            Tracker = _tracker!.Kind,
            FormatVersion = AsrRecoveryPoint.CurrentFormatVersion,
            AttemptId = _attemptId,
        };
        var captures = _item.Disks.Select(d => _captures.First(c => c.DiskId == d.DiskId)).ToList();
        for (int i = 0; i < captures.Count; i++)
        {
            var disk = _item.Disks[i];
            var records = stored.RecordsByDisk[i];
            records.Sort((a, b) => a.FirstBlock.CompareTo(b.FirstBlock));
            // Create-only, like packs: the names are this attempt's own, so nothing of another writer is ever replaced.
            string indexKey = VaultLayout.PointIndex(_item.Id, sequence, _attemptId, disk.DiskId);
            await CreateOwnAsync(indexKey, MetadataSealer.Seal(ExtentIndex.Encode(records), _vault.Key, indexKey), ct).ConfigureAwait(false);
            string trackerKey = VaultLayout.TrackerMap(_item.Id, disk.DiskId, sequence, _attemptId);
            await CreateOwnAsync(trackerKey, MetadataSealer.Seal(_trackerMaps[i].Encode(), _vault.Key, trackerKey), ct).ConfigureAwait(false);
            point.Disks.Add(new RecoveryPointDisk
            {
                DiskId = disk.DiskId,
                Name = disk.Name,
                SizeBytes = captures[i].Size,
                BlockSize = disk.BlockSize,
                ContentDigest = _trackerMaps[i].ContentDigest(_vault.HashSeed),
                DigestSegmentBlocks = _trackerMaps[i].SegmentBlocks,
                ChangedBlocks = records.Sum(r => (long)r.BlockCount),
                ChangedBytes = records.Sum(r => Math.Min((long)r.BlockCount * disk.BlockSize, captures[i].Size - r.FirstBlock * disk.BlockSize)),
                StoredBytes = records.Sum(r => (long)r.StoredLength),
                ExtentCount = records.Count,
            });
        }
        ThrowIfItemLockLapsed(sequence);
        // No cancellation from here: the manifest and the item record must agree.
        if (!await _vault.Records.TryCreateAsync(VaultLayout.PointManifest(_item.Id, sequence), point, CancellationToken.None).ConfigureAwait(false))
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                $"Another session published point {sequence} of '{_item.Name}' first; run the cycle again.", _item.Name);

        var sizes = captures.Select(s => s.Size).ToArray();
        var consistency = _consistency;
        // The capture method the item shows follows the tracker that took the point (a file system may have changed).
        var capture = _item.CaptureMethod == _tracker!.Kind ? ((string, string)?)null : ChangeTrackers.Describe(_item);
        if (capture is { } described && described.Item1 != _tracker.Kind) capture = (_tracker.Kind, described.Item2);
        _item = await _vault.UpdateItemRecordAsync(_item.Id, i =>
        {
            for (int d = 0; d < sizes.Length; d++) i.Disks[d].SizeBytes = sizes[d];
            if (i.State is ProtectedItemState.InitialReplicationPending or ProtectedItemState.ResyncRequired)
                i.State = ProtectedItemState.Protected;
            i.ResyncReason = null;
            i.LastError = null;
            i.CycleInProgressJobId = null;
            i.LastPointSequence = sequence;
            i.LastRecoveryPointTimeUtc = point.RecoveryPointTimeUtc;
            if (consistency == RecoveryPointConsistency.AppConsistent) i.LastAppConsistentPointTimeUtc = point.RecoveryPointTimeUtc;
            i.LastPointConsistency = consistency;
            if (capture is { } c) (i.CaptureMethod, i.ReachableConsistency) = c;
            i.LastCycleUtc = _vault.Clock.GetUtcNow();
        }, CancellationToken.None).ConfigureAwait(false);
        try
        {
            await _tracker.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The point is published; a tracker that cannot forget its changes only makes the next cycle read more.
            _context.Logger.LogWarning(ex, "Tracker of {Item} could not commit point {Sequence}", _item.Name, sequence);
        }
        var trackerObjects = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < captures.Count; i++)
        {
            trackerObjects.Add(VaultLayout.TrackerMap(_item.Id, _item.Disks[i].DiskId, sequence, _attemptId));
            trackerObjects.UnionWith(_trackerMaps[i].SegmentKeys(_item.Id, _item.Disks[i].DiskId));
        }
        await CycleObjects.RemoveOldTrackersAsync(_vault, _item.Id, sequence, trackerObjects, _context.Logger).ConfigureAwait(false);
        _publishPhase.Report(100, $"Recovery point {sequence} of '{_item.Name}' published");
        if (consistency == RecoveryPointConsistency.Inconsistent)
            await _vault.Events.WriteAsync(Events.AsrEventSeverity.Warning, Events.AsrEventTypes.PointInconsistent,
                $"Point {sequence} of '{_item.Name}' is Inconsistent: {_consistencyEvidence}. LatestProcessed, times and plans skip it unless -AllowInconsistent is given.",
                _item.Name, jobId: _context.Job.Id).ConfigureAwait(false);
        if (_repairs.Count > 0)
            await _vault.Events.WriteAsync(Events.AsrEventSeverity.Warning, Events.AsrEventTypes.ReplicaRepaired,
                $"Point {sequence} of '{_item.Name}' is whole although the vault's copy was damaged: {string.Join("; ", _repairs)}. " +
                "The damaged older points stay as they are (Test-AsrRecoveryPoint names them) until retention prunes them.",
                _item.Name, jobId: _context.Job.Id).ConfigureAwait(false);
        _context.Logger.LogInformation("Item {Item}: {Mode} cycle published {Consistency} point {Sequence}: {Changed} bytes changed, {Stored} stored",
            _item.Name, _mode, consistency, sequence, _scanner!.ChangedBytes, stored.StoredBytes);

        var notes = new List<string>();
        if (_resyncedDisks.Count > 0) notes.Add("Checksum resync of: " + string.Join("; ", _resyncedDisks));
        if (_repairs.Count > 0) notes.Add("Repaired: " + string.Join("; ", _repairs) + ".");
        if (_fullScans.Count > 0) notes.Add(string.Join("; ", _fullScans));
        if (_scanner.HoleBytesSkipped > 0) notes.Add($"{_scanner.HoleBytesSkipped:N0} bytes of holes not read.");
        if (_consistencyNote is not null) notes.Add(_consistencyNote);
        return new AsrJobResult
        {
            Mode = _mode.ToString(),
            RecoveryPointSequence = sequence,
            RecoveryPointId = point.PointId,
            BytesScanned = _scanner.BytesRead,
            BlocksCompared = _scanner.BlocksCompared,
            BytesSent = stored.StoredBytes,
            ChangedBlocks = _scanner.ChangedBlocks,
            ChangedBytes = _scanner.ChangedBytes,
            BytesStored = stored.StoredBytes,
            Note = notes.Count > 0 ? string.Join(" ", notes) : null,
        };
    }

    /// <summary>Records a failed or cancelled cycle; the tracker keeps its changes for the next cycle.</summary>
    internal async Task FailAsync(Exception ex)
    {
        await ThawAsync().ConfigureAwait(false);
        var jobId = _context.Job.Id;
        if (_item.FreezeHeldByJobId == jobId)
            // A freeze interrupted by a cancel was thawed by the hook itself: nothing is held any more.
            await SaveQuietlyAsync(i => { if (i.FreezeHeldByJobId == jobId) i.FreezeHeldByJobId = null; }).ConfigureAwait(false);
        if (_tracker is not null)
        {
            try { await _tracker.AbortAsync().ConfigureAwait(false); }
            catch (Exception abortError) { _context.Logger.LogWarning(abortError, "Tracker of {Item} could not keep the cycle's changes", _item.Name); }
        }
        if (ex is OperationCanceledException)
            // A clean cancel leaves the previous point and its tracker intact: no resync needed.
            await SaveQuietlyAsync(i => i.CycleInProgressJobId = null).ConfigureAwait(false);
        else
            await RecordErrorAsync(ex.Message).ConfigureAwait(false);
    }

    internal async ValueTask DisposeAsync()
    {
        foreach (var c in _captures) c.Dispose();
        _captures = [];
        if (_tracker is not null) await _tracker.DisposeAsync().ConfigureAwait(false);
        _tracker = null;
    }

    private readonly List<string> _resyncedDisks = new();
    /// <summary>What a resync repaired of a damaged vault (blocks sent anew, an older base or a full copy).</summary>
    private readonly List<string> _repairs = new();
    private string? _resyncReasonOverride;
    private readonly List<string> _fullScans = new();

    /// <summary>Reports on the calling thread (System.Progress would post to the pool and reorder reports).</summary>
    private sealed class SyncProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }

    /// <summary>
    /// The tracker of <paramref name="disk"/> at <paramref name="point"/>, as the baseline of a delta: the map of a point
    /// of format 3 (its segments are read as the scan reaches them), or the whole table of an older point. Null when it is
    /// missing or does not read (the cycle then compares with the vault's replica).
    /// </summary>
    private async Task<TrackerBaseline?> LoadTrackerAsync(ProtectedDisk disk, AsrRecoveryPoint point, CancellationToken ct)
    {
        try
        {
            return await StoredTrackers.OpenAsync(_vault, _item.Id, disk, point, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is AsrException or InvalidDataException)
        {
            _context.Logger.LogWarning(ex, "Change tracker {Key} of disk {Disk} at point {Sequence} is unusable", StoredTrackers.KeyOf(_item.Id, disk, point), disk.Name, point.Sequence);
            return null;
        }
    }

    /// <summary>
    /// Checksum resync baseline: hash what the vault actually holds for this disk at the base point. Extents that do
    /// not read back (pack missing, short, flipped) are not an error here: their blocks are returned as damaged, to be
    /// sent anew from the source, so the new point does not reference them (issue #12, item 5).
    /// </summary>
    private async Task<(TrackerBaseline Table, System.Collections.BitArray? Damaged)> ReplicaHashesAsync(RecoveryPointDiskReader reader, ProtectedDisk disk, long newSize, string why, CancellationToken ct)
    {
        _resyncedDisks.Add($"disk '{disk.Name}' ({why})");
        // The replica checksums are the first part of the scan phase, one slice per disk.
        int diskOrdinal = _item.Disks.IndexOf(disk), disks = _item.Disks.Count;
        var phase = _scanPhase.Phase(ReplicaChecksumShare * diskOrdinal / disks, ReplicaChecksumShare * (diskOrdinal + 1) / disks);
        string status = $"Resync of '{_item.Name}': computing checksums of the replica of disk '{disk.Name}' ({why})";
        phase.Report(0, status);
        var replica = await reader.ComputeReplicaHashesAsync(tolerateDamage: true, ct, new SyncProgress(f => phase.Report((int)(100 * f), status))).ConfigureAwait(false);
        if (replica.Damaged is not null)
        {
            string repaired = $"disk '{disk.Name}': {replica.DamagedBlocks:N0} block(s) whose copy in the vault is damaged sent anew from the source " +
                $"({string.Join("; ", replica.Errors.Select(e => e.Message))})";
            _context.Logger.LogWarning("Item {Item}: {Repaired}", _item.Name, repaired);
            _repairs.Add(repaired);
        }
        var table = replica.Table;
        return (new TrackerBaseline.Table(newSize == table.DiskSize ? table : table.Resized(newSize)), replica.Damaged);
    }

    private Task<RecoveryPointDiskReader> OpenReplicaAsync(AsrRecoveryPoint point, ProtectedDisk disk, CancellationToken ct) =>
        RecoveryPointDiskReader.OpenAsync(_vault, point, disk.DiskId, ct);

    /// <summary>A point's replica that cannot be read: an object damaged, or a manifest of its chain damaged or gone.</summary>
    private static bool IsReplicaDamage(AsrException ex) => ex.ErrorId is AsrErrorIds.VaultDataCorrupt or AsrErrorIds.RecoveryPointNotFound;

    private static void DisposeAll(RecoveryPointDiskReader?[] readers)
    {
        for (int i = 0; i < readers.Length; i++)
        {
            readers[i]?.Dispose();
            readers[i] = null;
        }
    }

    /// <summary>
    /// Picks the point a resync compares with and publishes its point over, and opens its replica of every disk into
    /// <paramref name="readers"/>: the latest point when every disk's extent index along its chain reads; else the
    /// newest older point that does (its chain avoiding every link found damaged); else none, and the resync is a
    /// full copy. Damaged points stay listed as they are: the new point just does not build on them.
    /// </summary>
    private async Task ChooseResyncBaseAsync(RecoveryPointDiskReader?[] readers, CancellationToken ct)
    {
        DisposeAll(readers);
        var damagedLinks = new HashSet<long>();
        var errors = new List<string>();
        Dictionary<long, AsrRecoveryPoint>? listed = null;
        IEnumerable<AsrRecoveryPoint> candidates = [_latest!];
        while (true)
        {
            foreach (var candidate in candidates)
            {
                if (listed is not null && !ChainAvoids(candidate, listed, damagedLinks)) continue;
                try
                {
                    for (int i = 0; i < readers.Length; i++)
                        if (candidate.Disks.Any(d => d.DiskId == _item.Disks[i].DiskId))
                            readers[i] = await OpenReplicaAsync(candidate, _item.Disks[i], ct).ConfigureAwait(false);
                    _base = candidate;
                    if (candidate.Sequence != _latest!.Sequence)
                        _repairs.Add($"point {_sequence} is a delta over point {candidate.Sequence}, the newest point whose extent indexes read " +
                            $"(not over the damaged point {_latest.Sequence}: {string.Join("; ", errors)})");
                    return;
                }
                catch (AsrException ex) when (IsReplicaDamage(ex))
                {
                    DisposeAll(readers);
                    errors.Add(ex.Message);
                    _context.Logger.LogWarning("Item {Item}: resync cannot compare with point {Sequence}: {Message}", _item.Name, candidate.Sequence, ex.Message);
                    damagedLinks.Add(ex.Target is string key && VaultLayout.TryParseObjectSequence(key, out long link) ? link : candidate.Sequence);
                    damagedLinks.Add(candidate.Sequence);
                }
            }
            if (listed is not null) break;
            // The latest point does not read: look at the older ones (manifests that do not read are skipped).
            listed = (await _vault.Catalog.ListPointsAsync(_item.Id, ct).ConfigureAwait(false))
                .Where(e => e.Value is not null).Select(e => e.Value!).ToDictionary(p => p.Sequence);
            candidates = listed.Values.Where(p => p.Sequence < _latest!.Sequence).OrderByDescending(p => p.Sequence).ToList();
        }
        _base = null;
        _resyncReasonOverride = "no point of the vault reads: " + string.Join("; ", errors);
        _repairs.Add($"point {_sequence} is a full copy (no point whose extent indexes all read: {string.Join("; ", errors)})");
    }

    /// <summary>Whether the chain of <paramref name="point"/>, walked through the listed manifests, avoids every damaged link.</summary>
    private static bool ChainAvoids(AsrRecoveryPoint point, Dictionary<long, AsrRecoveryPoint> listed, HashSet<long> damagedLinks)
    {
        for (var p = point; ; )
        {
            if (damagedLinks.Contains(p.Sequence)) return false;
            if (p.ParentSequence is not { } parent) return true;
            if (parent >= p.Sequence || !listed.TryGetValue(parent, out var next)) return false; // a parent manifest that does not read
            p = next;
        }
    }

    private Task RecordErrorAsync(string message) =>
        SaveQuietlyAsync(i => { i.LastError = message; i.LastCycleUtc = DateTimeOffset.UtcNow; });

    private async Task SaveQuietlyAsync(Action<AsrProtectedItem> mutate)
    {
        try
        {
            _item = await _vault.UpdateItemRecordAsync(_item.Id, mutate, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _context.Logger.LogWarning(ex, "Could not update item {Item}", _item.Name);
        }
    }

}
