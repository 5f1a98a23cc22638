using System.Runtime.InteropServices;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Security;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Replication.TrackerTables;

/// <summary>Reads the stored segments of one disk's trackers, checking each against the digest its map states.</summary>
internal sealed class TrackerSegmentReader(IVaultStore store, VaultKey? key, string itemId, string diskId)
{
    public async ValueTask ReadAsync(TrackerMap map, int segment, Memory<ulong> into, CancellationToken ct)
    {
        var s = map.Segments[segment];
        string objectKey = VaultLayout.TrackerSegment(itemId, diskId, s.WriterSequence, s.WriterAttempt!, segment);
        byte[] plain = MetadataSealer.Open(await store.ReadAllAsync(objectKey, ct).ConfigureAwait(false)
            ?? throw Damaged(objectKey, "it is missing"), key, objectKey);
        if (plain.Length != into.Length * 8) throw Damaged(objectKey, $"it holds {plain.Length:N0} bytes, the segment {into.Length * 8:N0}");
        var hashes = MemoryMarshal.Cast<byte, ulong>(plain);
        if (!HashSegments.SegmentDigest(hashes).AsSpan().SequenceEqual(s.Digest)) throw Damaged(objectKey, "it does not match the digest its tracker map states");
        hashes.CopyTo(into.Span);
    }

    public static AsrException Damaged(string objectKey, string why) =>
        new(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Tracker segment '{objectKey}' is damaged: {why}.", objectKey);
}

/// <summary>
/// Writes the segments a cycle changed, as objects of this attempt (create-only: an object of the name is another
/// writer's), a few at a time while the scan goes on.
/// </summary>
internal sealed class TrackerSegmentWriter(IVaultStore store, VaultKey? key, string itemId, string diskId, long sequence, string attemptId) : IAsyncDisposable
{
    /// <summary>Writes in flight at most: each holds one sealed segment (≤ 512 KiB).</summary>
    private const int MaxInFlight = 4;
    private readonly Queue<Task> _inFlight = new();

    public long Sequence => sequence;
    public string AttemptId => attemptId;
    public int Written { get; private set; }

    /// <summary>Seals the first <paramref name="length"/> hashes of <paramref name="hashes"/> (copied before returning) and starts writing them.</summary>
    public async ValueTask WriteAsync(int segment, ulong[] hashes, int length, CancellationToken ct)
    {
        string objectKey = VaultLayout.TrackerSegment(itemId, diskId, sequence, attemptId, segment);
        byte[] sealedSegment = MetadataSealer.Seal(MemoryMarshal.AsBytes(hashes.AsSpan(0, length)), key, objectKey);
        while (_inFlight.Count >= MaxInFlight) await _inFlight.Dequeue().ConfigureAwait(false);
        _inFlight.Enqueue(CreateAsync(objectKey, sealedSegment, ct));
        Written++;
    }

    private async Task CreateAsync(string objectKey, byte[] content, CancellationToken ct)
    {
        if (!await store.TryCreateAsync(objectKey, content, ct).ConfigureAwait(false))
            throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                $"'{objectKey}' already exists: another writer used the name of this cycle's attempt {attemptId}, so this cycle stops without replacing it. The next cycle resyncs.", objectKey);
    }

    /// <summary>Waits for every write; the first failure is thrown.</summary>
    public async Task FlushAsync()
    {
        while (_inFlight.Count > 0) await _inFlight.Dequeue().ConfigureAwait(false);
    }

    /// <summary>Waits for writes still in flight whatever they end in (the cycle failed: its leftovers are removed by the next one).</summary>
    public async ValueTask DisposeAsync()
    {
        while (_inFlight.Count > 0)
        {
            try { await _inFlight.Dequeue().ConfigureAwait(false); }
            catch { /* the cycle already failed; the next cycle removes what this one wrote */ }
        }
    }
}
