using System.Buffers;
using System.Runtime.ExceptionServices;
using System.Threading.Channels;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Security;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Replication;

/// <summary>Changed blocks handed from the scanner to the pipeline. <see cref="Data"/> is from <see cref="DataPipeline.Pool"/>; the pipeline returns it.</summary>
internal readonly record struct ExtentWork(int DiskOrdinal, string DiskId, long FirstBlock, int BlockCount, byte[]? Data, int Length, ulong PlainHash);

/// <summary>What the pipeline stored for one cycle.</summary>
internal sealed class PipelineResult
{
    public required List<ExtentRecord>[] RecordsByDisk { get; init; }
    public required List<string> PackKeys { get; init; }
    public long StoredBytes { get; set; }
}

/// <summary>
/// The data pipeline of one replication cycle (the reference architecture's process server, in
/// process): the scanner submits changed extents; one worker per core compresses and encrypts them;
/// a single writer appends them to pack objects of ~32 MiB and records where each extent landed.
/// Large packs keep object counts low (a blob backend wants few large objects, not millions of 4 KiB ones).
/// </summary>
internal sealed class DataPipeline
{
    public const int PackTargetBytes = 32 << 20;
    private readonly IVaultStore _store;
    private readonly string _itemId;
    private readonly long _sequence;
    private readonly string _attemptId;
    private readonly VaultKey? _key;
    private readonly int _compressionLevel;
    private readonly Channel<ExtentWork> _work;
    private readonly Channel<(ExtentWork Work, byte[]? Buffer, int Length, ExtentFlags Flags)> _stored;
    private readonly CancellationTokenSource _cts;
    private readonly Task[] _workers;
    private readonly Task _writer;
    private readonly PipelineResult _result;

    /// <param name="pool">Where the submitted extents' data comes from and goes back to (tests count it); default the shared pool.</param>
    public DataPipeline(IVaultStore store, string itemId, long sequence, string attemptId, VaultKey? key, int compressionLevel, int diskCount, CancellationToken cancellationToken,
        ArrayPool<byte>? pool = null)
    {
        Pool = pool ?? ArrayPool<byte>.Shared;
        _store = store;
        _itemId = itemId;
        _sequence = sequence;
        _attemptId = attemptId;
        _key = key;
        _compressionLevel = compressionLevel;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        int workers = Math.Max(1, Environment.ProcessorCount);
        _work = Channel.CreateBounded<ExtentWork>(new BoundedChannelOptions(workers * 4) { SingleWriter = true });
        _stored = Channel.CreateBounded<(ExtentWork, byte[]?, int, ExtentFlags)>(new BoundedChannelOptions(workers * 4) { SingleReader = true });
        _result = new PipelineResult
        {
            RecordsByDisk = Enumerable.Range(0, diskCount).Select(_ => new List<ExtentRecord>()).ToArray(),
            PackKeys = new List<string>(),
        };
        _workers = Enumerable.Range(0, workers).Select(_ => Task.Run(WorkerAsync)).ToArray();
        _writer = Task.Run(WriterAsync);
    }

    /// <summary>The pool of the submitted extents' data: the pipeline returns each <see cref="ExtentWork.Data"/> to it once encoded or dropped.</summary>
    public ArrayPool<byte> Pool { get; }

    public async ValueTask SubmitAsync(ExtentWork work)
    {
        try
        {
            await _work.Writer.WriteAsync(work, _cts.Token).ConfigureAwait(false);
        }
        catch
        {
            if (work.Data is not null) Pool.Return(work.Data);
            ThrowFirstFault();
            throw;
        }
    }

    /// <summary>The first failure of any stage or upload, recorded before it cancels the others.</summary>
    private ExceptionDispatchInfo? _firstFault;

    /// <summary>Records a stage's own failure (not the cancellation another failure caused) and stops the pipeline.</summary>
    private void Fail(Exception ex)
    {
        if (ex is not OperationCanceledException || !_cts.IsCancellationRequested)
            Interlocked.CompareExchange(ref _firstFault, ExceptionDispatchInfo.Capture(ex), null);
        _cts.Cancel();
    }

    /// <summary>
    /// Rethrows the failure that stopped the pipeline, if one did: a caller blocked on the pipeline sees the
    /// cancellation first (an upload cancels everything before its own task completes), and must report the cause.
    /// </summary>
    private void ThrowFirstFault() => _firstFault?.Throw();

    public async Task<PipelineResult> CompleteAsync()
    {
        _work.Writer.TryComplete();
        try
        {
            try
            {
                await Task.WhenAll(_workers).ConfigureAwait(false);
            }
            finally
            {
                _stored.Writer.TryComplete();
            }
            await _writer.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            ThrowFirstFault();
            throw;
        }
        return _result;
    }

    /// <summary>Stops all stages after a failure elsewhere and waits for them.</summary>
    public async Task AbortAsync()
    {
        _cts.Cancel();
        _work.Writer.TryComplete();
        _stored.Writer.TryComplete();
        try { await Task.WhenAll(_workers.Append(_writer)).ConfigureAwait(false); } catch { /* the caller reports the original failure */ }
        while (_work.Reader.TryRead(out var w)) if (w.Data is not null) Pool.Return(w.Data);
        while (_stored.Reader.TryRead(out var s)) if (s.Buffer is not null) ArrayPool<byte>.Shared.Return(s.Buffer);
    }

    private async Task WorkerAsync()
    {
        using var codec = new ExtentCodec(_key, _compressionLevel);
        try
        {
            await foreach (var work in _work.Reader.ReadAllAsync(_cts.Token).ConfigureAwait(false))
            {
                if (work.Data is null)
                {
                    await _stored.Writer.WriteAsync((work, null, 0, ExtentFlags.Zero), _cts.Token).ConfigureAwait(false);
                    continue;
                }
                (byte[] Buffer, int Length, ExtentFlags Flags) encoded;
                try
                {
                    encoded = codec.Encode(work.Data.AsSpan(0, work.Length), _itemId, work.DiskId, _sequence, work.FirstBlock, work.BlockCount);
                }
                finally
                {
                    Pool.Return(work.Data);
                }
                try
                {
                    await _stored.Writer.WriteAsync((work, encoded.Buffer, encoded.Length, encoded.Flags), _cts.Token).ConfigureAwait(false);
                }
                catch
                {
                    // Not handed on (the pipeline stopped): its encoded buffer is still this worker's to return.
                    ArrayPool<byte>.Shared.Return(encoded.Buffer);
                    throw;
                }
            }
        }
        catch (Exception ex)
        {
            Fail(ex);
            throw;
        }
    }

    /// <summary>
    /// Packs uploading while the next one fills, so compression and encryption go on during an upload (a remote
    /// store's upload takes as long as building the pack); each costs one pack buffer (32 MiB).
    /// </summary>
    private const int PackUploadsInFlight = 2;

    private async Task WriterAsync()
    {
        var uploads = new List<Task>();
        using var uploadSlots = new SemaphoreSlim(PackUploadsInFlight);
        // The first pack buffer is 1 MiB (a small item's cycle stores kilobytes, and the agent runs many of those); a pack
        // that outgrows it moves to a full-size buffer at once, allocated uninitialized, so only the pages written to are
        // touched (doubling 1 → 32 MiB touched 63 MiB and copied each step). Full-size buffers come back from finished uploads and fill the next packs
        // (_spareBuffers): a cycle touches at most PackUploadsInFlight + 1 of them however much it stores, instead of fresh
        // memory (page faults) for every 32 MiB. They are not pooled across cycles: the shared pool would keep every size
        // it ever lent for the life of the agent; at the end of the cycle they are garbage the agent collects when idle.
        byte[]? pack = NewPackBuffer(FirstPackBufferBytes);
        int packLength = 0;
        int packNumber = 0;
        try
        {
            await foreach (var (work, buffer, length, flags) in _stored.Reader.ReadAllAsync(_cts.Token).ConfigureAwait(false))
            {
                if (buffer is null)
                {
                    _result.RecordsByDisk[work.DiskOrdinal].Add(new ExtentRecord(work.FirstBlock, work.BlockCount, ExtentFlags.Zero, -1, 0, 0, work.PlainHash));
                    continue;
                }
                try
                {
                    if (packLength > 0 && packLength + length > PackTargetBytes)
                    {
                        pack = await StartPackUploadAsync(pack!, packLength, packNumber++, uploads, uploadSlots, next: true).ConfigureAwait(false);
                        packLength = 0;
                    }
                    if (packLength + length > pack!.Length) pack = Grow(pack, packLength, packLength + length);
                    buffer.AsSpan(0, length).CopyTo(pack.AsSpan(packLength));
                    _result.RecordsByDisk[work.DiskOrdinal].Add(new ExtentRecord(work.FirstBlock, work.BlockCount, flags, packNumber, packLength, length, work.PlainHash));
                    packLength += length;
                    _result.StoredBytes += length;
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
                if (packLength >= PackTargetBytes)
                {
                    pack = await StartPackUploadAsync(pack!, packLength, packNumber++, uploads, uploadSlots, next: true).ConfigureAwait(false);
                    packLength = 0;
                }
            }
            if (packLength > 0) pack = await StartPackUploadAsync(pack!, packLength, packNumber, uploads, uploadSlots, next: false).ConfigureAwait(false);
            await Task.WhenAll(uploads).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Fail(ex);
            // Every upload ends before the pipeline reports, and the failure reported is the first one, not the
            // cancellation it caused here.
            try { await Task.WhenAll(uploads).ConfigureAwait(false); } catch { }
            ThrowFirstFault();
            throw;
        }
    }

    /// <summary>The first pack buffer of a cycle (it grows as needed).</summary>
    internal const int FirstPackBufferBytes = 1 << 20;

    /// <summary>A full-size pack buffer (or one extent's size, when larger) holding the first <paramref name="used"/> bytes of <paramref name="pack"/>.</summary>
    private static byte[] Grow(byte[] pack, int used, int needed)
    {
        byte[] larger = NewPackBuffer(Math.Max(needed, PackTargetBytes));
        pack.AsSpan(0, used).CopyTo(larger);
        return larger;
    }

    private static byte[] NewPackBuffer(int bytes) => GC.AllocateUninitializedArray<byte>(bytes);

    /// <summary>
    /// Hands a pack to a background upload (waiting for a free slot) and, when more extents follow (<paramref name="next"/>),
    /// returns a fresh buffer to fill: a whole pack's, as the one before filled.
    /// </summary>
    private async Task<byte[]?> StartPackUploadAsync(byte[] pack, int length, int number, List<Task> uploads, SemaphoreSlim uploadSlots, bool next)
    {
        await uploadSlots.WaitAsync(_cts.Token).ConfigureAwait(false);
        string key = VaultLayout.Pack(_itemId, _sequence, _attemptId, number);
        _result.PackKeys.Add(key);
        // On the pool: a store whose write starts synchronously (a local file) must not run on the writer.
        uploads.Add(Task.Run(() => UploadPackAsync(key, pack, length, uploadSlots)));
        if (!next) return null;
        return _spareBuffers.TryTake(out var spare) ? spare : NewPackBuffer(PackTargetBytes);
    }

    /// <summary>Full-size pack buffers whose upload finished, for the next packs of this cycle.</summary>
    private readonly System.Collections.Concurrent.ConcurrentBag<byte[]> _spareBuffers = new();

    private async Task UploadPackAsync(string key, byte[] pack, int length, SemaphoreSlim uploadSlots)
    {
        try
        {
            // Create-only: a pack is never replaced. Its name is this attempt's own (VaultLayout.Pack), so one that exists
            // already was written by another writer of the same name (a cycle whose lease lapsed and that still uploads):
            // this attempt stops rather than read or publish someone else's bytes.
            if (!await _store.TryCreateAsync(key, pack.AsMemory(0, length), _cts.Token).ConfigureAwait(false))
                throw new AsrException(AsrErrorIds.ProtectedItemBusy, AsrErrorKind.ResourceBusy,
                    $"Pack '{key}' already exists: another writer used this attempt's name (attempt {_attemptId} of point {_sequence}), so this cycle stops without replacing it. The next cycle resyncs.", key);
        }
        catch (Exception ex)
        {
            Fail(ex);
            throw;
        }
        finally
        {
            // Returned before the slot is: the writer that waits for this slot finds the buffer to fill next.
            if (pack.Length == PackTargetBytes) _spareBuffers.Add(pack);
            uploadSlots.Release();
        }
    }
}
