using System.Buffers;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication.Consistency;
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
    private const int ReadChunkBlocks = 1024;   // 4 MiB reads
    /// <summary>Share of the scan phase a checksum resync spends hashing the replica before it reads the source.</summary>
    private const int ReplicaChecksumShare = 30;

    private readonly AsrVault _vault;
    private AsrProtectedItem _item;
    private readonly JobContext _context;
    // Progress phases, in the order they run: the scan (replica checksums, then reading the disks), then publication.
    private readonly JobContext _scanPhase, _publishPhase;
    private long _bytesScanned, _changedBlocks, _changedBytes, _totalBytes;

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
    private long _sequence;
    private CycleMode _mode;
    private IChangeTracker? _tracker;
    private FreezeHook? _hook;
    private IReadOnlyList<IDiskCapture> _captures = [];
    private DateTimeOffset _captureUtc;
    private RecoveryPointConsistency _consistency;
    private string? _consistencyNote;
    private BlockHashTable[] _tables = [];
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
        await RemoveLeftoversAsync(_latest?.Sequence ?? 0, ct).ConfigureAwait(false);
        _sequence = (_latest?.Sequence ?? 0) + 1;
        var jobId = _context.Job.Id;
        var latest = _latest;
        _item = await _vault.UpdateItemAsync(_item.Id, i =>
        {
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
        _item = await _vault.UpdateItemAsync(_item.Id, i => i.FreezeHeldByJobId = jobId, _context.CancellationToken).ConfigureAwait(false);
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

    internal void MarkCrashConsistent() => _consistency = RecoveryPointConsistency.CrashConsistent;

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
        _captureUtc = instantUtc ?? _vault.Clock.GetUtcNow();
        _captures = await _tracker!.CaptureAsync(_item, _latest?.Sequence ?? 0, _sequence, ct).ConfigureAwait(false);
    }

    /// <summary>Finds the changed blocks of every captured disk and stores them in packs.</summary>
    internal async Task ScanAsync()
    {
        var ct = _context.CancellationToken;
        var captures = _item.Disks.Select(d => _captures.First(c => c.DiskId == d.DiskId)).ToList();
        for (int i = 0; i < captures.Count; i++)
        {
            if (captures[i].Size == _item.Disks[i].SizeBytes) continue;
            string reason = $"Disk '{_item.Disks[i].Name}' ({_item.Disks[i].SourcePath}) changed size from {_item.Disks[i].SizeBytes:N0} to {captures[i].Size:N0} bytes.";
            if (_mode == CycleMode.Delta)
            {
                _item = await _vault.UpdateItemAsync(_item.Id, i => { i.CycleInProgressJobId = null; i.MarkResyncRequired(reason); }, ct).ConfigureAwait(false);
                throw new AsrException(AsrErrorIds.DiskSizeChanged, AsrErrorKind.InvalidOperation,
                    reason + $" Item '{_item.Name}' is now marked ResyncRequired; the next Invoke-AsrReplication compares checksums and sends only differing blocks.",
                    _item.Disks[i].Name);
            }
            _context.Logger.LogInformation("{Reason} Resync adopts the new size.", reason);
        }
        _totalBytes = Math.Max(1, captures.Sum(s => s.Size));

        var baselines = new BlockHashTable[captures.Count];
        var forced = new long[captures.Count][];
        var ranges = new IReadOnlyList<ByteRange>?[captures.Count];
        for (int i = 0; i < captures.Count; i++)
        {
            // A resized disk resends its old and its new last block: either may be partial, and the
            // vault's copy of a partial block cannot be trusted to line up with the new size.
            long size = captures[i].Size;
            long oldSize = _latest?.Disks.FirstOrDefault(d => d.DiskId == _item.Disks[i].DiskId)?.SizeBytes ?? size;
            forced[i] = oldSize == size ? [] : new[]
            {
                BlockHashTable.BlockCount(oldSize, _item.Disks[i].BlockSize) - 1,
                BlockHashTable.BlockCount(size, _item.Disks[i].BlockSize) - 1,
            }.Where(b => b >= 0 && b < BlockHashTable.BlockCount(size, _item.Disks[i].BlockSize)).Distinct().ToArray();
            var disk = _item.Disks[i];
            BlockHashTable? tracked = null;
            baselines[i] = _mode switch
            {
                CycleMode.Initial => BlockHashTable.Zero(size, disk.BlockSize, _vault.HashSeed),
                CycleMode.Delta => (tracked = await LoadTrackerAsync(disk, _latest!.Sequence, ct).ConfigureAwait(false))
                    ?? await ReplicaHashesAsync(_latest!, disk, size, "its change tracker is missing", ct).ConfigureAwait(false),
                _ => await ReplicaHashesAsync(_latest!, disk, size, _item.ResyncReason ?? "resync was requested", ct).ConfigureAwait(false),
            };
            // Only a delta over an intact hash table may trust the tracker's changed ranges.
            ranges[i] = _mode == CycleMode.Delta && tracked is not null && oldSize == size ? captures[i].ChangedRanges : null;
            if (_mode == CycleMode.Delta && tracked is not null && captures[i].HistoryLostReason is { } lost)
                _fullScans.Add($"disk '{disk.Name}' read in full ({lost})");
        }
        if (_mode == CycleMode.Delta && _resyncedDisks.Count > 0) _mode = CycleMode.Resync;

        // Reading the disks is the rest of the scan phase: after the replica checksums, if any were computed.
        var reading = _scanPhase.Phase(_resyncedDisks.Count > 0 ? ReplicaChecksumShare : 0, 100);
        _tables = new BlockHashTable[captures.Count];
        var pipeline = new DataPipeline(_vault.Store, _item.Id, _sequence, _vault.Key,
            _policy.Compression == CompressionMethod.Zstd ? _policy.CompressionLevel : 0, captures.Count, ct);
        try
        {
            long bytesBefore = 0; // sizes of the disks already read: where this disk's share of the progress starts
            for (int i = 0; i < captures.Count; i++)
            {
                _tables[i] = ranges[i] is null
                    ? new BlockHashTable(captures[i].Size, _item.Disks[i].BlockSize, _vault.HashSeed)
                    : baselines[i].Clone();
                await ScanDiskAsync(i, captures[i], ranges[i], baselines[i], forced[i], _tables[i], pipeline, reading, bytesBefore, ct).ConfigureAwait(false);
                bytesBefore += captures[i].Size;
            }
            _stored = await pipeline.CompleteAsync().ConfigureAwait(false);
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
            ParentSequence = _latest?.Sequence,
            ItemId = _item.Id,
            ItemName = _item.Name,
            RecoveryPointTimeUtc = pointTimeUtc ?? _captureUtc,
            Consistency = _consistency,
            JobId = _context.Job.Id,
            Packs = stored.PackKeys,
            GroupPointId = groupPointId,
            ReplicationGroup = groupName,
            Tracker = _tracker!.Kind,
        };
        var captures = _item.Disks.Select(d => _captures.First(c => c.DiskId == d.DiskId)).ToList();
        for (int i = 0; i < captures.Count; i++)
        {
            var disk = _item.Disks[i];
            var records = stored.RecordsByDisk[i];
            records.Sort((a, b) => a.FirstBlock.CompareTo(b.FirstBlock));
            string indexKey = VaultLayout.PointIndex(_item.Id, sequence, disk.DiskId);
            await _vault.Store.WriteAsync(indexKey, MetadataSealer.Seal(ExtentIndex.Encode(records), _vault.Key, indexKey), ct).ConfigureAwait(false);
            string trackerKey = VaultLayout.Tracker(_item.Id, disk.DiskId, sequence);
            await _vault.Store.WriteAsync(trackerKey, MetadataSealer.Seal(_tables[i].ToBytes(), _vault.Key, trackerKey), ct).ConfigureAwait(false);
            point.Disks.Add(new RecoveryPointDisk
            {
                DiskId = disk.DiskId,
                Name = disk.Name,
                SizeBytes = captures[i].Size,
                BlockSize = disk.BlockSize,
                ContentDigest = _tables[i].Digest(),
                ChangedBlocks = records.Sum(r => (long)r.BlockCount),
                ChangedBytes = records.Sum(r => Math.Min((long)r.BlockCount * disk.BlockSize, captures[i].Size - r.FirstBlock * disk.BlockSize)),
                StoredBytes = records.Sum(r => (long)r.StoredLength),
                ExtentCount = records.Count,
            });
        }
        ThrowIfItemLockLapsed(sequence);
        // No cancellation from here: the manifest and the item record must agree.
        if (!await _vault.Store.TryCreateAsync(VaultLayout.PointManifest(_item.Id, sequence), Storage.VaultJson.Serialize(point), CancellationToken.None).ConfigureAwait(false))
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                $"Another session published point {sequence} of '{_item.Name}' first; run the cycle again.", _item.Name);

        var sizes = captures.Select(s => s.Size).ToArray();
        var consistency = _consistency;
        _item = await _vault.UpdateItemAsync(_item.Id, i =>
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
        await RemoveOldTrackersAsync(sequence).ConfigureAwait(false);
        _publishPhase.Report(100, $"Recovery point {sequence} of '{_item.Name}' published");
        _context.Logger.LogInformation("Item {Item}: {Mode} cycle published {Consistency} point {Sequence}: {Changed} bytes changed, {Stored} stored",
            _item.Name, _mode, consistency, sequence, _changedBytes, stored.StoredBytes);

        var notes = new List<string>();
        if (_resyncedDisks.Count > 0) notes.Add("Checksum resync of: " + string.Join("; ", _resyncedDisks));
        if (_fullScans.Count > 0) notes.Add(string.Join("; ", _fullScans));
        if (_consistencyNote is not null) notes.Add(_consistencyNote);
        return new AsrJobResult
        {
            Mode = _mode.ToString(),
            RecoveryPointSequence = sequence,
            RecoveryPointId = point.PointId,
            BytesScanned = _bytesScanned,
            BlocksCompared = _blocksCompared,
            BytesSent = stored.StoredBytes,
            ChangedBlocks = _changedBlocks,
            ChangedBytes = _changedBytes,
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
    private readonly List<string> _fullScans = new();
    private long _blocksCompared;

    /// <summary>Reports on the calling thread (System.Progress would post to the pool and reorder reports).</summary>
    private sealed class SyncProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }

    /// <param name="reading">The progress phase of reading all disks; this disk's share starts at <paramref name="bytesBefore"/> of <see cref="_totalBytes"/>.</param>
    private async Task ScanDiskAsync(int ordinal, IDiskCapture source, IReadOnlyList<ByteRange>? changed, BlockHashTable baseline, long[] forced, BlockHashTable table, DataPipeline pipeline,
        JobContext reading, long bytesBefore, CancellationToken ct)
    {
        var disk = _item.Disks[ordinal];
        int bs = disk.BlockSize;
        long blockCount = table.Hashes.Length;
        // The tracker's ranges, widened to whole blocks and to the forced blocks; null reads every block.
        var spans = changed is null
            ? new List<(long First, long End)> { (0, blockCount) }
            : BlockSpans(changed, forced, bs, blockCount);
        long spanBytes = Math.Max(1, spans.Sum(s => Math.Min(s.End * bs, source.Size) - s.First * bs)), spanBytesRead = 0;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ReadChunkBlocks * bs);
        try
        {
            foreach (var (first, end) in spans)
            for (long chunkStart = first; chunkStart < end; chunkStart += ReadChunkBlocks)
            {
                ct.ThrowIfCancellationRequested();
                int blocks = (int)Math.Min(ReadChunkBlocks, end - chunkStart);
                long offset = chunkStart * bs;
                int bytes = (int)Math.Min((long)blocks * bs, source.Size - offset);
                await source.ReadAsync(offset, buffer.AsMemory(0, bytes), ct).ConfigureAwait(false);

                int runStart = 0, runLength = 0;
                bool runZero = false;
                for (int b = 0; b < blocks; b++)
                {
                    int length = Math.Min(bs, bytes - b * bs);
                    var span = buffer.AsSpan(b * bs, length);
                    ulong h = table.Hash(span);
                    table.Hashes[chunkStart + b] = h;
                    bool changedBlock = h != baseline.Hashes[chunkStart + b] || (forced.Length > 0 && forced.Contains(chunkStart + b));
                    bool zero = changedBlock && h == table.ZeroHash(length) && !span.ContainsAnyExcept((byte)0);
                    if (runLength > 0 && (!changedBlock || zero != runZero || runLength == MaxExtentBlocks))
                    {
                        await SubmitRunAsync(pipeline, ordinal, disk.DiskId, chunkStart, buffer, runStart, runLength, runZero, bytes, bs).ConfigureAwait(false);
                        runLength = 0;
                    }
                    if (!changedBlock) continue;
                    if (runLength == 0) { runStart = b; runZero = zero; }
                    runLength++;
                }
                if (runLength > 0)
                    await SubmitRunAsync(pipeline, ordinal, disk.DiskId, chunkStart, buffer, runStart, runLength, runZero, bytes, bs).ConfigureAwait(false);

                _bytesScanned += bytes;
                _blocksCompared += blocks;
                spanBytesRead += bytes;
                // This disk counts as its whole size however little of it the tracker says to read, so the
                // next disk starts where this one ends.
                double diskDone = Math.Min(1.0, (double)spanBytesRead / spanBytes);
                reading.Report((int)(100 * Math.Min(1.0, (bytesBefore + diskDone * source.Size) / _totalBytes)),
                    $"{_mode} replication of '{_item.Name}': disk '{disk.Name}' {spanBytesRead:N0} of {spanBytes:N0} {(changed is null ? "bytes" : "changed bytes")} read, {_changedBytes:N0} bytes changed");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Sorted, merged block spans covering the changed byte ranges and the forced blocks.</summary>
    internal static List<(long First, long End)> BlockSpans(IReadOnlyList<ByteRange> changed, long[] forced, int blockSize, long blockCount)
    {
        var spans = changed.Where(r => r.Length > 0)
            .Select(r => (First: r.Offset / blockSize, End: Math.Min(blockCount, (r.End + blockSize - 1) / blockSize)))
            .Concat(forced.Select(b => (First: b, End: b + 1)))
            .Where(s => s.First < s.End)
            .OrderBy(s => s.First).ToList();
        var merged = new List<(long First, long End)>();
        foreach (var s in spans)
        {
            if (merged.Count > 0 && s.First <= merged[^1].End)
                merged[^1] = (merged[^1].First, Math.Max(merged[^1].End, s.End));
            else
                merged.Add(s);
        }
        return merged;
    }

    private ValueTask SubmitRunAsync(DataPipeline pipeline, int ordinal, string diskId, long chunkStart, byte[] buffer, int runStart, int runLength, bool zero, int chunkBytes, int bs)
    {
        int from = runStart * bs;
        int length = Math.Min(runLength * bs, chunkBytes - from);
        _changedBlocks += runLength;
        _changedBytes += length;
        if (zero)
            return pipeline.SubmitAsync(new ExtentWork(ordinal, diskId, chunkStart + runStart, runLength, null, 0, 0));
        byte[] data = ArrayPool<byte>.Shared.Rent(length);
        buffer.AsSpan(from, length).CopyTo(data);
        return pipeline.SubmitAsync(new ExtentWork(ordinal, diskId, chunkStart + runStart, runLength, data, length, BlockHashTable.Checksum(data.AsSpan(0, length))));
    }

    private async Task<BlockHashTable?> LoadTrackerAsync(ProtectedDisk disk, long sequence, CancellationToken ct)
    {
        string key = VaultLayout.Tracker(_item.Id, disk.DiskId, sequence);
        var sealedTable = await _vault.Store.ReadAllAsync(key, ct).ConfigureAwait(false);
        if (sealedTable is null) return null;
        try
        {
            return BlockHashTable.FromBytes(MetadataSealer.Open(sealedTable, _vault.Key, key), disk.SizeBytes, disk.BlockSize, _vault.HashSeed);
        }
        catch (Exception ex) when (ex is AsrException or InvalidDataException)
        {
            _context.Logger.LogWarning(ex, "Change tracker {Key} is unusable", key);
            return null;
        }
    }

    /// <summary>Checksum resync baseline: hash what the vault actually holds for this disk at the latest point.</summary>
    private async Task<BlockHashTable> ReplicaHashesAsync(AsrRecoveryPoint latest, ProtectedDisk disk, long newSize, string why, CancellationToken ct)
    {
        _resyncedDisks.Add($"disk '{disk.Name}' ({why})");
        // The replica checksums are the first part of the scan phase, one slice per disk.
        int diskOrdinal = _item.Disks.IndexOf(disk), disks = _item.Disks.Count;
        var phase = _scanPhase.Phase(ReplicaChecksumShare * diskOrdinal / disks, ReplicaChecksumShare * (diskOrdinal + 1) / disks);
        string status = $"Resync of '{_item.Name}': computing checksums of the replica of disk '{disk.Name}' ({why})";
        phase.Report(0, status);
        using var reader = await RecoveryPointDiskReader.OpenAsync(_vault, latest, disk.DiskId, ct).ConfigureAwait(false);
        var table = await reader.ComputeBlockHashesAsync(ct, new SyncProgress(f => phase.Report((int)(100 * f), status))).ConfigureAwait(false);
        return newSize == table.DiskSize ? table : table.Resized(newSize);
    }

    private Task RecordErrorAsync(string message) =>
        SaveQuietlyAsync(i => { i.LastError = message; i.LastCycleUtc = DateTimeOffset.UtcNow; });

    private async Task SaveQuietlyAsync(Action<AsrProtectedItem> mutate)
    {
        try
        {
            _item = await _vault.UpdateItemAsync(_item.Id, mutate, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            _context.Logger.LogWarning(ex, "Could not update item {Item}", _item.Name);
        }
    }

    /// <summary>Deletes what an unpublished cycle left behind (objects of sequences after the latest point).</summary>
    private async Task RemoveLeftoversAsync(long latestSequence, CancellationToken ct)
    {
        foreach (var prefix in new[] { VaultLayout.PacksPrefix(_item.Id), VaultLayout.IndexPrefix(_item.Id), VaultLayout.TrackerDirPrefix(_item.Id) })
        {
            await _vault.Store.DeleteIncompleteAsync(prefix, ct).ConfigureAwait(false);
            foreach (var (o, objectSequence) in VaultLayout.OwnObjects(await _vault.Store.ListAsync(prefix, ct).ConfigureAwait(false), _context.Logger))
                if (objectSequence > latestSequence)
                    await _vault.Store.DeleteAsync(o.Key, ct).ConfigureAwait(false);
        }
    }

    private async Task RemoveOldTrackersAsync(long sequence)
    {
        foreach (var (o, objectSequence) in VaultLayout.OwnObjects(await _vault.Store.ListAsync(VaultLayout.TrackerDirPrefix(_item.Id), CancellationToken.None).ConfigureAwait(false), _context.Logger))
            if (objectSequence < sequence)
                await _vault.Store.DeleteAsync(o.Key, CancellationToken.None).ConfigureAwait(false);
    }
}
