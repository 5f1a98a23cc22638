using System.Buffers;
using Azure.Storage.Blobs.Specialized;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// Turns data handed over in increasing offset order into Put Page requests: contiguous data is merged into one
/// request of up to <c>maxWriteBytes</c>, a gap (a zero range not sent) starts a new one, and up to
/// <c>writesInFlight</c> requests run at once (a running-task list and <see cref="Task.WhenAny(IEnumerable{Task})"/>;
/// the caller waits only when all slots are busy). Each request owns a buffer from <see cref="ArrayPool{T}"/>,
/// returned when it completes. The data must start on 512-byte pages; a last request that ends inside a page
/// (the end of a disk whose size is not a multiple of 512) is padded with zeros.
/// </summary>
internal sealed class PageWriter(PageBlobClient blob, int maxWriteBytes, int writesInFlight, Action<long> onWritten, CancellationToken cancellationToken)
{
    private readonly List<Task> _running = new();
    private byte[]? _run;
    private long _runStart;
    private int _runLength;

    /// <summary>Requests sent (or being sent).</summary>
    public int Requests { get; private set; }

    /// <summary>Bytes of the requests sent (or being sent), padding included.</summary>
    public long Bytes { get; private set; }

    /// <summary>Queues <paramref name="data"/> for offset <paramref name="offset"/> (at or after the end of the previous data).</summary>
    public async ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data)
    {
        if (_run is not null && offset != _runStart + _runLength) await FlushAsync().ConfigureAwait(false);
        while (!data.IsEmpty)
        {
            if (_run is null)
            {
                if (offset % 512 != 0) throw new InvalidOperationException($"A page write starts on a 512-byte page, not at {offset}.");
                _run = ArrayPool<byte>.Shared.Rent(maxWriteBytes);
                _runStart = offset;
                _runLength = 0;
            }
            int n = Math.Min(data.Length, maxWriteBytes - _runLength);
            data.Span[..n].CopyTo(_run.AsSpan(_runLength));
            _runLength += n;
            offset += n;
            data = data[n..];
            if (_runLength == maxWriteBytes) await FlushAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Sends the data queued so far and waits for every request.</summary>
    public async Task CompleteAsync()
    {
        await FlushAsync().ConfigureAwait(false);
        await Task.WhenAll(_running).ConfigureAwait(false);
        _running.Clear();
    }

    /// <summary>After a failure: gives back the queued buffer and waits for the requests still running (their errors are dropped; the caller cancelled them).</summary>
    public async Task AbandonAsync()
    {
        if (_run is not null)
        {
            ArrayPool<byte>.Shared.Return(_run);
            _run = null;
        }
        try { await Task.WhenAll(_running).ConfigureAwait(false); }
        catch (Exception) { /* the failure that made the caller abandon is the one reported */ }
        _running.Clear();
    }

    private async ValueTask FlushAsync()
    {
        if (_run is null) return;
        // A request that failed (after the SDK's retries) fails the upload at the next flush, not only when the
        // slots are full. Until the run is handed to a request it stays in _run, so AbandonAsync gives it back.
        for (int i = _running.Count - 1; i >= 0; i--)
        {
            if (!_running[i].IsCompleted) continue;
            var completed = _running[i];
            _running.RemoveAt(i);
            await completed.ConfigureAwait(false);
        }
        while (_running.Count >= writesInFlight)
        {
            var done = await Task.WhenAny(_running).ConfigureAwait(false);
            _running.Remove(done);
            await done.ConfigureAwait(false);
        }
        byte[] buffer = _run;
        int length = (_runLength + 511) / 512 * 512;
        buffer.AsSpan(_runLength, length - _runLength).Clear();
        _run = null;
        Requests++;
        Bytes += length;
        _running.Add(SendAsync(buffer, _runStart, length));
    }

    private async Task SendAsync(byte[] buffer, long offset, int length)
    {
        try
        {
            using var content = new MemoryStream(buffer, 0, length, writable: false);
            await blob.UploadPagesAsync(content, offset, options: null, cancellationToken).ConfigureAwait(false);
            onWritten(length);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
