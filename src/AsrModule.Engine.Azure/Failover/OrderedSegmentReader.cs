using System.Buffers;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Hands the stored data of a recovery point's disk to a callback in disk order, segment by segment, decoding each
/// stored extent exactly once: the extents are fetched and decoded ahead of the callback (bounded by count and
/// bytes, in parallel), and an extent that later points cut into several segments stays decoded until its last
/// segment has been handed over. That is bounded too: all segments of an extent lie inside the disk range the
/// extent was written for (at most 64 blocks), so an extent is released soon after the walk passes it.
/// <para>
/// Why not the reader's own methods: <see cref="RecoveryPointDiskReader.ForEachExtentAsync"/> decodes each extent
/// once with batched pack reads but in pack order, not disk order (a running SHA-256 of the disk needs disk order);
/// <see cref="RecoveryPointDiskReader.ReadAsync"/> is in disk order but decodes an extent again for every read
/// window or segment that touches it. This walk is in disk order and decodes once, at one ranged read per extent.
/// </para>
/// </summary>
internal static class OrderedSegmentReader
{
    /// <param name="onSegment">Disk offset and bytes of one segment, in increasing offset order; the bytes are only valid during the call.</param>
    public static async Task ForEachSegmentAsync(RecoveryPointDiskReader source, int readsAhead, long readAheadBytes,
        Func<long, ReadOnlyMemory<byte>, CancellationToken, ValueTask> onSegment, CancellationToken cancellationToken)
    {
        var segments = source.Map.Segments;
        // Extents in the order the walk first needs them, and the last segment that uses each.
        var order = new List<int>();
        var lastUse = new Dictionary<int, int>();
        var isFirstUse = new bool[segments.Count];
        for (int i = 0; i < segments.Count; i++)
        {
            if (!lastUse.ContainsKey(segments[i].ExtentRef))
            {
                order.Add(segments[i].ExtentRef);
                isFirstUse[i] = true;
            }
            lastUse[segments[i].ExtentRef] = i;
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pending = new Dictionary<int, (Task<byte[]> Task, int Length)>();
        long pendingBytes = 0;
        int started = 0, firstUses = 0;
        try
        {
            for (int i = 0; i < segments.Count; i++)
            {
                var segment = segments[i];
                if (isFirstUse[i]) firstUses++; // order[firstUses - 1] is this segment's extent
                // Keep the next extents decoding: at least the one needed now, more while within both bounds.
                while (started < order.Count && (started < firstUses
                           || (started < firstUses + readsAhead && pendingBytes < readAheadBytes)))
                {
                    int extentRef = order[started++];
                    int length = source.PlainLength(extentRef);
                    pending[extentRef] = (DecodeAsync(source, extentRef, length, cts.Token), length);
                    pendingBytes += length;
                }

                var (task, plainLength) = pending[segment.ExtentRef];
                byte[] plain = await task.ConfigureAwait(false);
                var (from, segmentLength) = source.SegmentRange(segment);
                await onSegment(segment.FirstBlock * source.BlockSize, plain.AsMemory(from, segmentLength), cancellationToken).ConfigureAwait(false);
                if (lastUse[segment.ExtentRef] == i)
                {
                    pending.Remove(segment.ExtentRef);
                    pendingBytes -= plainLength;
                    ArrayPool<byte>.Shared.Return(plain);
                }
            }
        }
        finally
        {
            // Failed or cancelled: stop the reads still running, and give every buffer back.
            cts.Cancel();
            foreach (var (task, _) in pending.Values)
            {
                try { ArrayPool<byte>.Shared.Return(await task.ConfigureAwait(false)); }
                catch (Exception) { /* its buffer went back in DecodeAsync; the walk's own error is what propagates */ }
            }
        }
    }

    private static async Task<byte[]> DecodeAsync(RecoveryPointDiskReader source, int extentRef, int length, CancellationToken cancellationToken)
    {
        byte[] plain = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            await source.DecodeExtentAsync(extentRef, plain, cancellationToken).ConfigureAwait(false);
            return plain;
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(plain);
            throw;
        }
    }
}
