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
                    // The checksum the index will carry was taken when the scan handed the run over; the bytes must still
                    // be those (a buffer another part of the process wrote into would otherwise be stored under it, and
                    // found only when the point is read). Costs one more XXH3 pass (~11 GB/s) of the stored data.
                    if (BlockHashTable.Checksum(work.Data.AsSpan(0, work.Length)) != work.PlainHash)
                        throw new AsrException(AsrErrorIds.ReplicationDataChanged, AsrErrorKind.InvalidData,
                            $"Blocks {work.FirstBlock}+{work.BlockCount} of disk {work.DiskId} changed in memory between being hashed and being stored (an internal fault, not the disk or the vault). This cycle stops and publishes nothing; the next cycle resyncs by checksum.", work.DiskId);
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

    /// <summary>
    /// Appends the encoded extents, in the order they come, to the pack being written (<see cref="IVaultStore.BeginCreate"/>);
    /// a pack that reaches <see cref="PackTargetBytes"/> is committed off this task (at most <see cref="PackUploadsInFlight"/>
    /// commits at once) while the next one starts. A local vault streams a pack into its temporary file as it fills, so a
    /// cycle holds no pack in memory; a blob vault gathers each pack in memory (up to 32 MiB) and uploads it at the commit.
    /// </summary>
    private async Task WriterAsync()
    {
        var commits = new List<Task>();
        using var commitSlots = new SemaphoreSlim(PackUploadsInFlight);
        IObjectUpload? pack = null;
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
                    if (pack is { Length: > 0 } && pack.Length + length > PackTargetBytes)
                        await HandOverToCommitAsync().ConfigureAwait(false);
                    pack ??= _store.BeginCreate(VaultLayout.Pack(_itemId, _sequence, _attemptId, packNumber), PackTargetBytes);
                    long offset = pack.Length;
                    await pack.AppendAsync(buffer.AsMemory(0, length), _cts.Token).ConfigureAwait(false);
                    _result.RecordsByDisk[work.DiskOrdinal].Add(new ExtentRecord(work.FirstBlock, work.BlockCount, flags, packNumber, offset, length, work.PlainHash));
                    _result.StoredBytes += length;
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
                if (pack.Length >= PackTargetBytes)
                    await HandOverToCommitAsync().ConfigureAwait(false);
            }
            if (pack is not null)
                await HandOverToCommitAsync().ConfigureAwait(false);
            await Task.WhenAll(commits).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Fail(ex);
            // The pack being written is discarded (nothing of it is visible); every commit ends before the pipeline
            // reports, and the failure reported is the first one, not the cancellation it caused here.
            if (pack is not null) await pack.DisposeAsync().ConfigureAwait(false);
            try { await Task.WhenAll(commits).ConfigureAwait(false); } catch { }
            ThrowFirstFault();
            throw;
        }

        // The pack changes owner before the call: from here its commit (or StartCommitAsync, when it cannot start one)
        // disposes it, and the catch above no longer does, so it is disposed exactly once.
        Task HandOverToCommitAsync()
        {
            var full = pack!;
            pack = null;
            return StartCommitAsync(full, packNumber++, commits, commitSlots);
        }
    }

    /// <summary>Commits a full (or the last) pack on the pool, once one of the commit slots is free; disposes it either way.</summary>
    private async Task StartCommitAsync(IObjectUpload pack, int number, List<Task> commits, SemaphoreSlim commitSlots)
    {
        try
        {
            await commitSlots.WaitAsync(_cts.Token).ConfigureAwait(false);
        }
        catch
        {
            await pack.DisposeAsync().ConfigureAwait(false);
            throw;
        }
        string key = VaultLayout.Pack(_itemId, _sequence, _attemptId, number);
        _result.PackKeys.Add(key);
        // On the pool: a local commit flushes the file to disk, which must not hold up the writer.
        commits.Add(Task.Run(() => CommitPackAsync(key, pack, commitSlots)));
    }

    private async Task CommitPackAsync(string key, IObjectUpload pack, SemaphoreSlim commitSlots)
    {
        try
        {
            // Create-only: a pack is never replaced. Its name is this attempt's own (VaultLayout.Pack), so one that exists
            // already was written by another writer of the same name (a cycle whose lease lapsed and that still uploads):
            // this attempt stops rather than read or publish someone else's bytes.
            if (!await pack.CommitAsync(_cts.Token).ConfigureAwait(false))
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
            await pack.DisposeAsync().ConfigureAwait(false);
            commitSlots.Release();
        }
    }
}
