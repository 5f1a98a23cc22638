using System.Buffers;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// A recovered disk read from Azure: the page blob (fixed VHD) of a snapshot or an unattached managed disk, behind the
/// read SAS that <see cref="IAzureControlPlane.GrantReadAccessAsync"/> returned. Reprotect hashes whole disks through
/// it, in sequential chunks of a few MiB, so:
/// <list type="bullet">
/// <item>Get Page Ranges is asked once (lazily, on the first read; Azure Storage pages through it), with the blob's
/// properties. A range with no valid pages reads as zeros by definition of a page blob: it is returned as zeros
/// without a request. Only the pages holding data are downloaded (gaps of up to 64 KiB between them are read
/// through, saving a request), in pieces of up to <see cref="ManagedDiskUploadOptions.VerifyReadBytes"/>, up to
/// <see cref="ManagedDiskUploadOptions.VerifyReadsInFlight"/> at once.</item>
/// <item>Sequential reads are prefetched: after two reads in a row, the next chunks of the same length are fetched
/// ahead (up to <see cref="ManagedDiskUploadOptions.VerifyReadsInFlight"/> chunks, at most 64 MiB), so that the
/// requests overlap with the caller's hashing.</item>
/// </list>
/// <see cref="Size"/> is the guest-visible size given: the zero padding and the VHD footer after it are never returned.
/// <see cref="Location"/> is the blob's address without its query; the SAS is a secret and appears in no message.
/// Failures are <see cref="AsrException"/>s: <see cref="AzureControlPlaneErrorIds.AzureAuthenticationFailed"/> (401/403:
/// access expired or revoked), <see cref="AzureControlPlaneErrorIds.AzureResourceNotFound"/> (404),
/// <see cref="AzureControlPlaneErrorIds.AzureThrottled"/> (429 through the retries),
/// <see cref="AzureControlPlaneErrorIds.AzureUnavailable"/> (no answer, 408, 5xx),
/// <see cref="AzureControlPlaneErrorIds.AzureRequestFailed"/> (another status), <see cref="AsrErrorIds.DiskUnreadable"/>
/// (the blob is shorter than <see cref="Size"/>, or a download came back short). Reads are serialized; the reader is
/// safe to call from several threads but reads one at a time.
/// </summary>
public sealed class ManagedDiskSasReader : IRecoveredDiskReader, IDisposable
{
    /// <summary>A gap between two valid ranges this small is read through (zeros) rather than costing a request.</summary>
    private const long MaxReadGapBytes = 64 << 10;

    /// <summary>Upper bound of the bytes prefetched ahead of the caller.</summary>
    private const long MaxReadAheadBytes = 64L << 20;

    private readonly PageBlobClient _blob;
    private readonly ManagedDiskUploadOptions _options;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly CancellationTokenSource _disposed = new();
    private readonly Queue<Prefetch> _ahead = new();
    private List<(long Offset, long Length)>? _ranges;
    private long _lastEnd = -1;
    private long _requests;
    private bool _isDisposed;

    /// <param name="sas">The read SAS of the snapshot's (or disk's) page blob. A secret: kept, never shown.</param>
    /// <param name="size">The disk's guest-visible size in bytes (the blob holds it, zero padding, then a 512-byte VHD footer).</param>
    /// <param name="options">Request sizes, reads in flight and the SDK's retry policy (the verification settings of an upload).</param>
    public ManagedDiskSasReader(Uri sas, long size, ManagedDiskUploadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(sas);
        if (!sas.IsAbsoluteUri) throw new ArgumentException("The SAS URI must be absolute.", nameof(sas));
        ArgumentOutOfRangeException.ThrowIfNegative(size);
        _options = options ?? new ManagedDiskUploadOptions();
        _options.Validate();
        _blob = new PageBlobClient(sas, _options.CreateClientOptions());
        Size = size;
        Location = ManagedDiskUploader.Describe(sas);
    }

    public long Size { get; }

    /// <summary>The blob's address without the SAS.</summary>
    public string Location { get; }

    /// <summary>Requests sent to the blob so far (properties, page ranges and downloads; the SDK's retries not counted).</summary>
    internal long Requests => Interlocked.Read(ref _requests);

    /// <summary>Bytes downloaded so far (prefetched chunks included).</summary>
    internal long BytesDownloaded => Interlocked.Read(ref _bytesDownloaded);
    private long _bytesDownloaded;

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_isDisposed, this);
        if (offset < 0 || offset > Size || buffer.Length > Size - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), offset,
                $"A read of {buffer.Length:N0} bytes at {offset:N0} lies outside the disk {Location} of {Size:N0} bytes.");
        if (buffer.Length == 0) return;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var ranges = _ranges ??= await LoadRangesAsync(cancellationToken).ConfigureAwait(false);
            bool sequential = offset == _lastEnd;

            // The chunk fetched ahead for exactly this read; when the caller reads elsewhere, what was fetched ahead is dropped.
            Prefetch? hit = null;
            if (_ahead.Count > 0 && _ahead.Peek() is var p && p.Offset == offset && p.Length == buffer.Length) hit = _ahead.Dequeue();
            else DropAhead();

            if (hit is not null)
            {
                var data = await hit.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
                try { data.AsSpan(0, buffer.Length).CopyTo(buffer.Span); }
                finally { ArrayPool<byte>.Shared.Return(data); }
            }
            else
            {
                await FetchIntoAsync(ranges, offset, buffer, cancellationToken).ConfigureAwait(false);
            }
            _lastEnd = offset + buffer.Length;
            if (sequential) ScheduleAhead(ranges, buffer.Length);
        }
        catch (Exception ex) when (Translate(ex, cancellationToken) is { } mapped)
        {
            DropAhead();
            throw mapped;
        }
        catch
        {
            DropAhead();
            throw;
        }
        finally
        {
            _gate.Release();
        }
    }

    public void Dispose()
    {
        if (_isDisposed) return;
        _isDisposed = true;
        _disposed.Cancel();
        DropAhead();
        _disposed.Dispose();
    }

    // ---- page ranges ----

    private async Task<List<(long Offset, long Length)>> LoadRangesAsync(CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _requests);
        BlobProperties properties = await _blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        if (properties.BlobType != BlobType.Page || properties.ContentLength < Size)
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.InvalidData,
                $"The managed disk {Location} is a {properties.BlobType} blob of {properties.ContentLength:N0} bytes; a disk of {Size:N0} bytes is a page blob of at least that size (the fixed VHD's payload and footer). " +
                "Check that the snapshot is of the right disk.", Location);
        Interlocked.Increment(ref _requests);
        var ranges = await ManagedDiskReadback.ValidRangesAsync(_blob, cancellationToken).ConfigureAwait(false);
        // Only the guest-visible part is ever returned: the footer's page is not the disk's.
        var clipped = new List<(long Offset, long Length)>(ranges.Count);
        foreach (var (o, l) in ranges)
            if (o < Size) clipped.Add((o, Math.Min(o + l, Size) - o));
        return clipped;
    }

    /// <summary>The reads that cover the valid ranges within [offset, offset + length): small gaps read through, pieces of at most VerifyReadBytes.</summary>
    private List<(long Offset, int Length)> PlanReads(List<(long Offset, long Length)> ranges, long offset, long length)
    {
        long end = offset + length;
        var inside = new List<(long Offset, long Length)>();
        // The first range that ends after offset (ranges are sorted and disjoint).
        int lo = 0, hi = ranges.Count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (ranges[mid].Offset + ranges[mid].Length <= offset) lo = mid + 1; else hi = mid;
        }
        for (int i = lo; i < ranges.Count && ranges[i].Offset < end; i++)
        {
            long from = Math.Max(ranges[i].Offset, offset), to = Math.Min(ranges[i].Offset + ranges[i].Length, end);
            if (from < to) inside.Add((from, to - from));
        }
        var reads = new List<(long Offset, int Length)>();
        int k = 0;
        while (k < inside.Count)
        {
            long start = inside[k].Offset, stop = start + inside[k].Length;
            while (k + 1 < inside.Count && inside[k + 1].Offset - stop <= MaxReadGapBytes)
            {
                k++;
                stop = Math.Max(stop, inside[k].Offset + inside[k].Length);
            }
            k++;
            for (long o = start; o < stop; o += _options.VerifyReadBytes)
                reads.Add((o, (int)Math.Min(_options.VerifyReadBytes, stop - o)));
        }
        return reads;
    }

    // ---- downloads ----

    /// <summary>Fills <paramref name="buffer"/> (the bytes at <paramref name="offset"/>): zeros, then the pages holding data downloaded over them.</summary>
    private async Task FetchIntoAsync(List<(long Offset, long Length)> ranges, long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        buffer.Span.Clear();
        var reads = PlanReads(ranges, offset, buffer.Length);
        if (reads.Count == 0) return;
        if (reads.Count == 1)
        {
            var (o, n) = reads[0];
            await DownloadAsync(o, buffer.Slice((int)(o - offset), n), cancellationToken).ConfigureAwait(false);
            return;
        }
        await Parallel.ForEachAsync(reads, new ParallelOptions { MaxDegreeOfParallelism = _options.VerifyReadsInFlight, CancellationToken = cancellationToken },
            async (read, ct) => await DownloadAsync(read.Offset, buffer.Slice((int)(read.Offset - offset), read.Length), ct).ConfigureAwait(false)).ConfigureAwait(false);
    }

    private async Task DownloadAsync(long offset, Memory<byte> target, CancellationToken cancellationToken)
    {
        Interlocked.Increment(ref _requests);
        var response = await _blob.DownloadStreamingAsync(new BlobDownloadOptions { Range = new HttpRange(offset, target.Length) }, cancellationToken).ConfigureAwait(false);
        int read = 0;
        await using (var content = response.Value.Content)
        {
            while (read < target.Length)
            {
                int n = await content.ReadAsync(target[read..], cancellationToken).ConfigureAwait(false);
                if (n == 0) break;
                read += n;
            }
        }
        Interlocked.Add(ref _bytesDownloaded, read);
        if (read != target.Length)
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.ReadError,
                $"Reading the managed disk {Location} returned {read:N0} of the {target.Length:N0} bytes at {offset:N0}.", Location);
    }

    // ---- read-ahead ----

    private sealed class Prefetch(long offset, int length, Task<byte[]> task, CancellationTokenSource cancel)
    {
        public long Offset { get; } = offset;
        public int Length { get; } = length;
        public Task<byte[]> Task { get; } = task;

        /// <summary>Cancels it; its buffer goes back to the pool when it ends, and its failure is observed.</summary>
        public void Abandon()
        {
            cancel.Cancel();
            _ = Task.ContinueWith(static (t, state) =>
            {
                if (t.IsCompletedSuccessfully) ArrayPool<byte>.Shared.Return(t.Result);
                else _ = t.Exception;
                ((CancellationTokenSource)state!).Dispose();
            }, cancel, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    /// <summary>Starts fetching the chunks of <paramref name="length"/> bytes after the last read, up to the read-ahead depth.</summary>
    private void ScheduleAhead(List<(long Offset, long Length)> ranges, int length)
    {
        int depth = (int)Math.Max(0, Math.Min(_options.VerifyReadsInFlight, MaxReadAheadBytes / Math.Max(length, 1)));
        long next = _ahead.Count > 0 ? _ahead.Last().Offset + length : _lastEnd;
        while (_ahead.Count < depth && next < Size)
        {
            int n = (int)Math.Min(length, Size - next);
            if (n != length) break; // the last, shorter chunk is read when asked for
            var cancel = CancellationTokenSource.CreateLinkedTokenSource(_disposed.Token);
            long at = next;
            _ahead.Enqueue(new Prefetch(at, n, FetchChunkAsync(ranges, at, n, cancel.Token), cancel));
            next += n;
        }
    }

    private async Task<byte[]> FetchChunkAsync(List<(long Offset, long Length)> ranges, long offset, int length, CancellationToken cancellationToken)
    {
        await System.Threading.Tasks.Task.Yield();
        byte[] data = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            await FetchIntoAsync(ranges, offset, data.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
            return data;
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(data);
            throw;
        }
    }

    private void DropAhead()
    {
        while (_ahead.Count > 0) _ahead.Dequeue().Abandon();
    }

    // ---- errors ----

    /// <summary>The <see cref="AsrException"/> a storage failure becomes (from the status and error code only: the SAS never reaches a message), or null to let it through.</summary>
    private AsrException? Translate(Exception ex, CancellationToken cancellationToken)
    {
        if (ex is AsrException or ArgumentException or ObjectDisposedException) return null;
        if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested) return null;
        string what = $"Could not read the managed disk {Location}";
        if (BlobRetryPolicy.IsTlsFailure(ex))
            return new AsrException(AzureControlPlaneErrorIds.AzureAuthenticationFailed, AsrErrorKind.SecurityError,
                $"{what}: the storage endpoint's TLS certificate is not trusted by this machine.", Location);
        switch (ex)
        {
            case RequestFailedException { Status: 401 or 403 } denied:
                // No inner exception: the service's reply may echo the request's signature.
                return new AsrException(AzureControlPlaneErrorIds.AzureAuthenticationFailed, AsrErrorKind.SecurityError,
                    $"{what}: access was denied (HTTP {denied.Status} {denied.ErrorCode}). The read access may have expired or been revoked: grant it again.", Location);
            case RequestFailedException { Status: 404 } missing:
                return new AsrException(AzureControlPlaneErrorIds.AzureResourceNotFound, AsrErrorKind.ObjectNotFound,
                    $"{what}: the blob does not exist (HTTP 404 {missing.ErrorCode}); the snapshot or disk may have been deleted.", Location, missing);
            case RequestFailedException { Status: 429 } throttled:
                return new AsrException(AzureControlPlaneErrorIds.AzureThrottled, AsrErrorKind.ResourceBusy,
                    $"{what}: the storage throttled the reads (HTTP 429 {throttled.ErrorCode}) through {_options.MaxRetries} retries. Wait a few minutes and run the operation again.", Location, throttled);
            case RequestFailedException { Status: 408 or >= 500 } down:
                return new AsrException(AzureControlPlaneErrorIds.AzureUnavailable, AsrErrorKind.ConnectionError,
                    $"{what}: HTTP {down.Status} {down.ErrorCode} after {_options.MaxRetries + 1} attempts with backoff. Run the operation again.", Location, down);
            case RequestFailedException { Status: > 0 } refused:
                return new AsrException(AzureControlPlaneErrorIds.AzureRequestFailed, AsrErrorKind.ReadError,
                    $"{what}: HTTP {refused.Status} {refused.ErrorCode}.", Location, refused);
            case AggregateException { InnerExceptions.Count: > 0 } retries:
                return new AsrException(AzureControlPlaneErrorIds.AzureUnavailable, AsrErrorKind.ConnectionError,
                    $"{what}: no answer after {retries.InnerExceptions.Count} attempts with backoff ({retries.InnerExceptions[^1].GetType().Name}).", Location, retries);
            case RequestFailedException or HttpRequestException or IOException or System.Net.Sockets.SocketException or TimeoutException or OperationCanceledException:
                return new AsrException(AzureControlPlaneErrorIds.AzureUnavailable, AsrErrorKind.ConnectionError,
                    $"{what}: no answer ({ex.GetType().Name}) after {_options.MaxRetries + 1} attempts with backoff. Check the network and run the operation again.", Location, ex);
            default:
                return null;
        }
    }
}
