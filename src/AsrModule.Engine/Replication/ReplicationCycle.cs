using System.Buffers;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
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

    private readonly AsrVault _vault;
    private AsrProtectedItem _item;
    private readonly JobContext _context;
    private long _bytesScanned, _changedBlocks, _changedBytes, _totalBytes;

    private ReplicationCycle(AsrVault vault, AsrProtectedItem item, JobContext context)
    {
        _vault = vault;
        _item = item;
        _context = context;
    }

    public static Task<AsrJobResult> RunAsync(AsrVault vault, AsrProtectedItem item, bool forceResync, JobContext context) =>
        new ReplicationCycle(vault, item, context).RunAsync(forceResync);

    private async Task<AsrJobResult> RunAsync(bool forceResync)
    {
        var ct = _context.CancellationToken;
        var policy = await _vault.GetPolicyAsync(_item.PolicyName, ct).ConfigureAwait(false);
        var latest = await _vault.GetLatestPointAsync(_item.Id, ct).ConfigureAwait(false);
        await RemoveLeftoversAsync(latest?.Sequence ?? 0, ct).ConfigureAwait(false);
        long sequence = (latest?.Sequence ?? 0) + 1;
        var sources = new List<DiskSource>();
        var mode = CycleMode.Initial;
        var startedUtc = DateTimeOffset.UtcNow;
        try
        {
            var jobId = _context.Job.Id;
            _item = await _vault.UpdateItemAsync(_item.Id, i =>
            {
                if (i.CycleInProgressJobId is { } previous && previous != jobId && latest is not null)
                    i.MarkResyncRequired($"The previous cycle (job {previous}) did not complete (process killed or transfer failed).");
                // Cleared on success or clean cancellation; left set by a crash or a failure, forcing the next cycle to resync.
                i.CycleInProgressJobId = jobId;
                i.LastJobId = jobId;
            }, ct).ConfigureAwait(false);
            mode = latest is null ? CycleMode.Initial
                : forceResync || _item.NeedsResync ? CycleMode.Resync
                : CycleMode.Delta;

            foreach (var disk in _item.Disks) sources.Add(DiskSource.Open(disk.SourcePath));
            for (int i = 0; i < sources.Count; i++)
            {
                if (sources[i].Size == _item.Disks[i].SizeBytes) continue;
                string reason = $"Disk '{_item.Disks[i].Name}' ({_item.Disks[i].SourcePath}) changed size from {_item.Disks[i].SizeBytes:N0} to {sources[i].Size:N0} bytes.";
                if (mode == CycleMode.Delta)
                {
                    _item = await _vault.UpdateItemAsync(_item.Id, i => { i.CycleInProgressJobId = null; i.MarkResyncRequired(reason); }, ct).ConfigureAwait(false);
                    throw new AsrException(AsrErrorIds.DiskSizeChanged, AsrErrorKind.InvalidOperation,
                        reason + $" Item '{_item.Name}' is now marked ResyncRequired; the next Invoke-AsrReplication compares checksums and sends only differing blocks.",
                        _item.Disks[i].Name);
                }
                _context.Logger.LogInformation("{Reason} Resync adopts the new size.", reason);
            }
            _totalBytes = Math.Max(1, sources.Sum(s => s.Size));

            var baselines = new BlockHashTable[sources.Count];
            var forced = new long[sources.Count][];
            for (int i = 0; i < sources.Count; i++)
            {
                // A resized disk resends its old and its new last block: either may be partial, and the
                // vault's copy of a partial block cannot be trusted to line up with the new size.
                long oldSize = latest?.Disks.FirstOrDefault(d => d.DiskId == _item.Disks[i].DiskId)?.SizeBytes ?? sources[i].Size;
                forced[i] = oldSize == sources[i].Size ? [] : new[]
                {
                    BlockHashTable.BlockCount(oldSize, _item.Disks[i].BlockSize) - 1,
                    BlockHashTable.BlockCount(sources[i].Size, _item.Disks[i].BlockSize) - 1,
                }.Where(b => b >= 0 && b < BlockHashTable.BlockCount(sources[i].Size, _item.Disks[i].BlockSize)).Distinct().ToArray();
                var disk = _item.Disks[i];
                baselines[i] = mode switch
                {
                    CycleMode.Initial => BlockHashTable.Zero(sources[i].Size, disk.BlockSize, _vault.HashSeed),
                    CycleMode.Delta => await LoadTrackerAsync(disk, latest!.Sequence, ct).ConfigureAwait(false)
                        ?? await ReplicaHashesAsync(latest!, disk, sources[i].Size, "its change tracker is missing", ct).ConfigureAwait(false),
                    _ => await ReplicaHashesAsync(latest!, disk, sources[i].Size, _item.ResyncReason ?? "resync was requested", ct).ConfigureAwait(false),
                };
            }
            if (mode == CycleMode.Delta && _resyncedDisks.Count > 0) mode = CycleMode.Resync;

            var tables = new BlockHashTable[sources.Count];
            var pipeline = new DataPipeline(_vault.Store, _item.Id, sequence, _vault.Key,
                policy.Compression == CompressionMethod.Zstd ? policy.CompressionLevel : 0, sources.Count, ct);
            PipelineResult stored;
            try
            {
                for (int i = 0; i < sources.Count; i++)
                {
                    tables[i] = new BlockHashTable(sources[i].Size, _item.Disks[i].BlockSize, _vault.HashSeed);
                    await ScanAsync(i, sources[i], baselines[i], forced[i], tables[i], pipeline, mode, ct).ConfigureAwait(false);
                }
                stored = await pipeline.CompleteAsync().ConfigureAwait(false);
            }
            catch
            {
                await pipeline.AbortAsync().ConfigureAwait(false);
                throw;
            }
            ct.ThrowIfCancellationRequested();
            _context.Report(97, $"Publishing recovery point {sequence} of '{_item.Name}'");

            var point = new AsrRecoveryPoint
            {
                PointId = Guid.NewGuid(),
                Sequence = sequence,
                ParentSequence = latest?.Sequence,
                ItemId = _item.Id,
                ItemName = _item.Name,
                RecoveryPointTimeUtc = startedUtc,
                Consistency = RecoveryPointConsistency.CrashConsistent,
                JobId = _context.Job.Id,
                Packs = stored.PackKeys,
            };
            for (int i = 0; i < sources.Count; i++)
            {
                var disk = _item.Disks[i];
                var records = stored.RecordsByDisk[i];
                records.Sort((a, b) => a.FirstBlock.CompareTo(b.FirstBlock));
                string indexKey = VaultLayout.PointIndex(_item.Id, sequence, disk.DiskId);
                await _vault.Store.WriteAsync(indexKey, MetadataSealer.Seal(ExtentIndex.Encode(records), _vault.Key, indexKey), ct).ConfigureAwait(false);
                string trackerKey = VaultLayout.Tracker(_item.Id, disk.DiskId, sequence);
                await _vault.Store.WriteAsync(trackerKey, MetadataSealer.Seal(tables[i].ToBytes(), _vault.Key, trackerKey), ct).ConfigureAwait(false);
                point.Disks.Add(new RecoveryPointDisk
                {
                    DiskId = disk.DiskId,
                    Name = disk.Name,
                    SizeBytes = sources[i].Size,
                    BlockSize = disk.BlockSize,
                    ContentDigest = tables[i].Digest(),
                    ChangedBlocks = records.Sum(r => (long)r.BlockCount),
                    ChangedBytes = records.Sum(r => Math.Min((long)r.BlockCount * disk.BlockSize, sources[i].Size - r.FirstBlock * disk.BlockSize)),
                    StoredBytes = records.Sum(r => (long)r.StoredLength),
                    ExtentCount = records.Count,
                });
            }
            // No cancellation from here: the manifest and the item record must agree.
            if (!await _vault.Store.TryCreateAsync(VaultLayout.PointManifest(_item.Id, sequence), Storage.VaultJson.Serialize(point), CancellationToken.None).ConfigureAwait(false))
                throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                    $"Another session published point {sequence} of '{_item.Name}' first; run the cycle again.", _item.Name);

            var sizes = sources.Select(s => s.Size).ToArray();
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
                i.LastCycleUtc = DateTimeOffset.UtcNow;
            }, CancellationToken.None).ConfigureAwait(false);
            await RemoveOldTrackersAsync(sequence).ConfigureAwait(false);
            _context.Report(100, $"Recovery point {sequence} of '{_item.Name}' published");
            _context.Logger.LogInformation("Item {Item}: {Mode} cycle published point {Sequence}: {Changed} bytes changed, {Stored} stored",
                _item.Name, mode, sequence, _changedBytes, stored.StoredBytes);

            return new AsrJobResult
            {
                Mode = mode.ToString(),
                RecoveryPointSequence = sequence,
                RecoveryPointId = point.PointId,
                BytesScanned = _bytesScanned,
                BlocksCompared = tables.Sum(t => (long)t.Hashes.Length),
                BytesSent = stored.StoredBytes,
                ChangedBlocks = _changedBlocks,
                ChangedBytes = _changedBytes,
                BytesStored = stored.StoredBytes,
                Note = _resyncedDisks.Count > 0 ? "Checksum resync of: " + string.Join("; ", _resyncedDisks) : null,
            };
        }
        catch (OperationCanceledException)
        {
            // A clean cancel leaves the previous point and its tracker intact: no resync needed.
            await SaveQuietlyAsync(i => i.CycleInProgressJobId = null).ConfigureAwait(false);
            throw;
        }
        catch (Exception ex)
        {
            await RecordErrorAsync(ex.Message).ConfigureAwait(false);
            throw;
        }
        finally
        {
            foreach (var s in sources) s.Dispose();
        }
    }

    private readonly List<string> _resyncedDisks = new();
    private int _scanBase;

    /// <summary>Reports on the calling thread (System.Progress would post to the pool and reorder reports).</summary>
    private sealed class SyncProgress(Action<double> report) : IProgress<double>
    {
        public void Report(double value) => report(value);
    }

    private async Task ScanAsync(int ordinal, DiskSource source, BlockHashTable baseline, long[] forced, BlockHashTable table, DataPipeline pipeline, CycleMode mode, CancellationToken ct)
    {
        var disk = _item.Disks[ordinal];
        int bs = disk.BlockSize;
        long blockCount = table.Hashes.Length;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(ReadChunkBlocks * bs);
        try
        {
            for (long chunkStart = 0; chunkStart < blockCount; chunkStart += ReadChunkBlocks)
            {
                ct.ThrowIfCancellationRequested();
                int blocks = (int)Math.Min(ReadChunkBlocks, blockCount - chunkStart);
                long offset = chunkStart * bs;
                int bytes = (int)Math.Min((long)blocks * bs, source.Size - offset);
                source.ReadExactly(offset, buffer.AsSpan(0, bytes));

                int runStart = 0, runLength = 0;
                bool runZero = false;
                for (int b = 0; b < blocks; b++)
                {
                    int length = Math.Min(bs, bytes - b * bs);
                    var span = buffer.AsSpan(b * bs, length);
                    ulong h = table.Hash(span);
                    table.Hashes[chunkStart + b] = h;
                    bool changed = h != baseline.Hashes[chunkStart + b] || (forced.Length > 0 && forced.Contains(chunkStart + b));
                    bool zero = changed && h == table.ZeroHash(length) && !span.ContainsAnyExcept((byte)0);
                    if (runLength > 0 && (!changed || zero != runZero || runLength == MaxExtentBlocks))
                    {
                        await SubmitRunAsync(pipeline, ordinal, disk.DiskId, chunkStart, buffer, runStart, runLength, runZero, bytes, bs).ConfigureAwait(false);
                        runLength = 0;
                    }
                    if (!changed) continue;
                    if (runLength == 0) { runStart = b; runZero = zero; }
                    runLength++;
                }
                if (runLength > 0)
                    await SubmitRunAsync(pipeline, ordinal, disk.DiskId, chunkStart, buffer, runStart, runLength, runZero, bytes, bs).ConfigureAwait(false);

                _bytesScanned += bytes;
                _context.Report(_scanBase + (int)((95 - _scanBase) * _bytesScanned / _totalBytes),
                    $"{mode} replication of '{_item.Name}': disk '{disk.Name}' {100 * (offset + bytes) / Math.Max(1, source.Size)}% read, {_changedBytes:N0} bytes changed");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
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
        _scanBase = 30; // a resync spends its first 30% hashing the replica, then scans the source
        _context.Report(0, $"Resync of '{_item.Name}': computing checksums of the replica of disk '{disk.Name}' ({why})");
        using var reader = await RecoveryPointDiskReader.OpenAsync(_vault, latest, disk.DiskId, ct).ConfigureAwait(false);
        int diskOrdinal = _item.Disks.IndexOf(disk), disks = _item.Disks.Count;
        var table = await reader.ComputeBlockHashesAsync(ct, new SyncProgress(f => _context.Report((int)(30 * (diskOrdinal + f) / disks),
            $"Resync of '{_item.Name}': checksums of the replica of disk '{disk.Name}' {(int)(100 * f)}% computed"))).ConfigureAwait(false);
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
            foreach (var o in await _vault.Store.ListAsync(prefix, ct).ConfigureAwait(false))
                if (VaultLayout.SequenceOf(o.Key) > latestSequence)
                    await _vault.Store.DeleteAsync(o.Key, ct).ConfigureAwait(false);
        }
    }

    private async Task RemoveOldTrackersAsync(long sequence)
    {
        foreach (var o in await _vault.Store.ListAsync(VaultLayout.TrackerDirPrefix(_item.Id), CancellationToken.None).ConfigureAwait(false))
            if (VaultLayout.SequenceOf(o.Key) < sequence)
                await _vault.Store.DeleteAsync(o.Key, CancellationToken.None).ConfigureAwait(false);
    }
}
