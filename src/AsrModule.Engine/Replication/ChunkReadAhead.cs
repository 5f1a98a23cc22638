using System.Buffers;
using System.Threading.Channels;
using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Engine.Replication;

/// <summary>One read of a scan: blocks [<see cref="FirstBlock"/>, +<see cref="Blocks"/>) of the disk, <see cref="Bytes"/> bytes of <see cref="Buffer"/>.</summary>
internal readonly record struct ScanChunk(long FirstBlock, int Blocks, int Bytes, byte[] Buffer);

/// <summary>
/// Reads the data segments of one disk's scan, in order, on a task of its own, a few chunks ahead of the scanner.
/// Without it the scanner took turns: read 4 MiB, hash it, send its changes, read again, so the disk (or the page
/// cache copy) was idle while the CPU hashed and the CPU idle while the disk read; with it the next reads are under
/// way while a chunk is hashed.
/// <para>
/// Memory is bounded whatever the disk size: a ring of <c>depth</c> buffers, rented from the pool as the reader first
/// needs them and recycled between the scanner and the reader; the reader waits for a free one. Every rented buffer
/// goes back to the pool in <see cref="DisposeAsync"/>, on every path (end of the scan, failure, cancellation), as
/// long as the scanner has given back (<see cref="Release"/>) the chunk it held. There is one reader, so reads still
/// happen one at a time and in disk order: a capture need not be safe for concurrent reads.
/// </para>
/// </summary>
internal sealed class ChunkReadAhead : IAsyncDisposable
{
    private readonly IDiskCapture _source;
    private readonly ArrayPool<byte> _pool;
    private readonly int _bufferBytes, _depth;
    private readonly Channel<ScanChunk> _filled;
    private readonly Channel<byte[]> _free = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _cts;
    private readonly Task _reader;
    /// <summary>Buffers taken from the pool: changed by the reader only, read after it ended.</summary>
    private int _rented;

    /// <param name="segments">The data segments (block ranges) to read, in the order the scanner asks for them.</param>
    /// <param name="chunkBlocks">Blocks per read: a segment is read in chunks of this many blocks from its start.</param>
    /// <param name="depth">Buffers in the ring: one with the scanner, the others read ahead.</param>
    /// <param name="beforeRead">Called on the reader with each read's byte offset before it (the changed-range prefetch).</param>
    public ChunkReadAhead(IDiskCapture source, IEnumerable<(long First, long End)> segments, int blockSize, int chunkBlocks, int depth,
        ArrayPool<byte> pool, Action<long>? beforeRead, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(depth, 2);
        _source = source;
        _pool = pool;
        _depth = depth;
        _bufferBytes = chunkBlocks * blockSize;
        _filled = Channel.CreateBounded<ScanChunk>(new BoundedChannelOptions(depth) { SingleReader = true, SingleWriter = true });
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ct = _cts.Token;
        // Not Task.Run(..., ct): a reader that never starts would never complete the channel.
        _reader = Task.Run(() => ReadAllAsync(segments, blockSize, chunkBlocks, beforeRead, ct));
    }

    /// <summary>Buffers currently rented from the pool by this read-ahead (0 after <see cref="DisposeAsync"/>).</summary>
    internal int RentedBuffers => _rented;

    /// <summary>
    /// The next chunk, in order. A failed read surfaces here as itself once the chunks before it were taken;
    /// the caller gives the chunk back with <see cref="Release"/> when done with its buffer.
    /// </summary>
    public async ValueTask<ScanChunk> NextAsync(CancellationToken cancellationToken)
    {
        if (await _filled.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false) && _filled.Reader.TryRead(out var chunk))
            return chunk;
        await _reader.ConfigureAwait(false); // ended early: its failure (or cancellation), as itself
        throw new InvalidOperationException("The scan asked for more chunks than its data segments hold.");
    }

    /// <summary>Gives a chunk's buffer back to the ring for the reader to fill again.</summary>
    public void Release(in ScanChunk chunk) => _free.Writer.TryWrite(chunk.Buffer);

    private async Task ReadAllAsync(IEnumerable<(long First, long End)> segments, int blockSize, int chunkBlocks, Action<long>? beforeRead, CancellationToken ct)
    {
        try
        {
            foreach (var (first, end) in segments)
            for (long chunkStart = first; chunkStart < end; chunkStart += chunkBlocks)
            {
                ct.ThrowIfCancellationRequested();
                long offset = chunkStart * blockSize;
                beforeRead?.Invoke(offset);
                int blocks = (int)Math.Min(chunkBlocks, end - chunkStart);
                int bytes = (int)Math.Min((long)blocks * blockSize, _source.Size - offset);
                byte[] buffer = await TakeBufferAsync(ct).ConfigureAwait(false);
                try
                {
                    await _source.ReadAsync(offset, buffer.AsMemory(0, bytes), ct).ConfigureAwait(false);
                    await _filled.Writer.WriteAsync(new ScanChunk(chunkStart, blocks, bytes, buffer), ct).ConfigureAwait(false);
                }
                catch
                {
                    _free.Writer.TryWrite(buffer);
                    throw;
                }
            }
        }
        finally
        {
            _filled.Writer.TryComplete();
        }
    }

    private async ValueTask<byte[]> TakeBufferAsync(CancellationToken ct)
    {
        if (_free.Reader.TryRead(out var buffer)) return buffer;
        if (_rented < _depth)
        {
            _rented++;
            return _pool.Rent(_bufferBytes);
        }
        return await _free.Reader.ReadAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Stops the reader, waits for it, and returns every buffer of the ring to the pool.</summary>
    public async ValueTask DisposeAsync()
    {
        _cts.Cancel();
        // Its failure is the scan's only if the scan reached it (NextAsync rethrew it); otherwise the scan's own counts.
        try { await _reader.ConfigureAwait(false); } catch { }
        while (_filled.Reader.TryRead(out var chunk)) _free.Writer.TryWrite(chunk.Buffer);
        while (_free.Reader.TryRead(out var buffer))
        {
            _pool.Return(buffer);
            _rented--;
        }
        _cts.Dispose();
    }
}
