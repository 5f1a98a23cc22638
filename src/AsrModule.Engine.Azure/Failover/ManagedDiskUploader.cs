using System.Diagnostics;
using System.Security.Cryptography;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The data plane of failover to Azure: writes one disk of a recovery point into a managed disk created for
/// direct upload, straight from the vault, given the write SAS that the disk's grant-access returned (a page
/// blob SAS URL). The control plane (create the disk with <c>uploadSizeBytes</c> = <see cref="ManagedDiskSize.UploadSizeBytes"/>,
/// grant and revoke access) is the caller's.
/// <list type="number">
/// <item>Checks that the blob is <see cref="ManagedDiskSize.UploadSizeBytes"/> long. Pages already written (a retried
/// upload) are cleared, so every attempt starts from zeros.</item>
/// <item>Walks the point's disk in offset order (<see cref="OrderedSegmentReader"/>: extents fetched and decoded
/// ahead, each once). Ranges the point never wrote, trimmed ranges and all-zero 4 KiB pages are not sent (a page
/// blob reads them as zeros); the rest goes out as Put Page requests of up to 4 MiB, adjacent data merged, up to
/// <see cref="ManagedDiskUploadOptions.WritesInFlight"/> in flight (<see cref="PageWriter"/>). A SHA-256 of the disk
/// is computed on the way from the source bytes (zeros for what is not sent).</item>
/// <item>Writes the fixed VHD footer (<see cref="FixedVhdFooter.ForRecoveryPoint"/>) at the payload's end.</item>
/// <item>Verifies (<see cref="ManagedDiskReadback"/>): reads the written ranges back through the same SAS and compares
/// the SHA-256 of [0, disk size), the zero padding and the footer. A difference throws
/// <see cref="ManagedDiskErrorIds.ManagedDiskUploadMismatch"/> naming the disk.</item>
/// </list>
/// The SAS needs read and write (Azure's upload SAS allows both until access is revoked). Transient faults are
/// retried by the SDK's retry policy (<see cref="ManagedDiskUploadOptions"/>); what still fails becomes
/// <see cref="ManagedDiskErrorIds.ManagedDiskUploadFailed"/>. Messages and logs name the blob without its query,
/// never the SAS. The caller keeps the point from being pruned while it is read (a <see cref="PointPin"/>).
/// </summary>
public sealed class ManagedDiskUploader
{
    /// <summary>Granularity of the zero check: an all-zero aligned 4 KiB page of stored data is not sent.</summary>
    internal const int ZeroCheckBytes = 4096;

    /// <summary>Decoded extents kept ahead of the write position, in bytes (with <see cref="ManagedDiskUploadOptions.SourceReadsAhead"/>).</summary>
    private const long SourceReadAheadBytes = 64L << 20;

    private readonly ManagedDiskUploadOptions _options;
    private readonly ILogger _logger;

    public ManagedDiskUploader(ManagedDiskUploadOptions? options = null, ILogger? logger = null)
    {
        _options = options ?? new ManagedDiskUploadOptions();
        _options.Validate();
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>
    /// Uploads disk <paramref name="source"/> of <paramref name="point"/> (the point the reader was opened on) to the
    /// page blob behind <paramref name="writeSas"/>, then verifies it. Progress is reported in order, per phase.
    /// </summary>
    public async Task<ManagedDiskUploadResult> UploadAsync(RecoveryPointDiskReader source, AsrRecoveryPoint point, Uri writeSas,
        IProgress<ManagedDiskUploadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(point);
        ArgumentNullException.ThrowIfNull(writeSas);
        var disk = source.Disk;
        if (!point.Disks.Any(d => d.DiskId == disk.DiskId && d.SizeBytes == disk.SizeBytes && d.ContentDigest == disk.ContentDigest))
            throw new ArgumentException($"The reader of disk '{disk.Name}' was not opened on point {point}.", nameof(source));
        long diskSize = disk.SizeBytes, uploadSize = ManagedDiskSize.UploadSizeBytes(diskSize), payload = ManagedDiskSize.PayloadBytes(diskSize);
        var footer = FixedVhdFooter.ForRecoveryPoint(point, disk);
        var blob = new PageBlobClient(writeSas, _options.CreateClientOptions());
        string where = Describe(writeSas);
        try
        {
            await CheckBlobAsync(blob, disk.Name, diskSize, where, cancellationToken).ConfigureAwait(false);
            _logger.LogInformation("Uploading disk '{Disk}' of {Point} ({DiskBytes:N0} bytes, {Segments} stored segments) to {Blob} as a fixed VHD of {UploadBytes:N0} bytes.",
                disk.Name, point, diskSize, source.Map.Segments.Count, where, uploadSize);

            var clock = Stopwatch.StartNew();
            int cleared = await ClearPriorPagesAsync(blob, disk.Name, where, cancellationToken).ConfigureAwait(false);
            var (sha256, bytesSent, ranges) = await WritePagesAsync(source, blob, progress, cancellationToken).ConfigureAwait(false);
            using (var footerContent = new MemoryStream(footer.ToBytes(), writable: false))
                await blob.UploadPagesAsync(footerContent, payload, options: null, cancellationToken).ConfigureAwait(false);
            bytesSent += FixedVhdFooter.Size;
            double writeSeconds = clock.Elapsed.TotalSeconds;
            _logger.LogInformation("Wrote disk '{Disk}': {Sent:N0} bytes in {Ranges} page writes and the footer, {Seconds:F1} s ({Rate:F1} MiB/s of disk); SHA-256 {Sha256}.",
                disk.Name, bytesSent, ranges, writeSeconds, diskSize / 1048576.0 / Math.Max(writeSeconds, 1e-3), sha256);

            clock.Restart();
            long verified = await ManagedDiskReadback.VerifyAsync(blob, disk.Name, diskSize, sha256, footer, _options,
                done => progress?.Report(new ManagedDiskUploadProgress(disk.Name, ManagedDiskUploadPhase.Verifying, done, diskSize, bytesSent)),
                cancellationToken).ConfigureAwait(false);
            double verifySeconds = clock.Elapsed.TotalSeconds;
            _logger.LogInformation("Verified disk '{Disk}' in {Blob}: {Read:N0} bytes read back, SHA-256 and footer match, {Seconds:F1} s.",
                disk.Name, where, verified, verifySeconds);
            return new ManagedDiskUploadResult
            {
                DiskName = disk.Name,
                DiskSizeBytes = diskSize,
                UploadSizeBytes = uploadSize,
                BytesSent = bytesSent,
                RangesSent = ranges,
                PriorRangesCleared = cleared,
                Sha256 = sha256,
                Footer = footer,
                BytesVerified = verified,
                WriteSeconds = writeSeconds,
                VerifySeconds = verifySeconds,
            };
        }
        catch (Exception ex) when (Translate(ex, disk.Name, where, "upload", cancellationToken) is { } mapped)
        {
            throw mapped;
        }
    }

    /// <summary>
    /// Verifies again, without writing, that the blob behind <paramref name="sas"/> (read access is enough) holds
    /// what <paramref name="expected"/> says was uploaded; throws <see cref="ManagedDiskErrorIds.ManagedDiskUploadMismatch"/>
    /// when it does not. Returns the bytes read back.
    /// </summary>
    public async Task<long> VerifyAsync(Uri sas, ManagedDiskUploadResult expected,
        IProgress<ManagedDiskUploadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sas);
        ArgumentNullException.ThrowIfNull(expected);
        var blob = new PageBlobClient(sas, _options.CreateClientOptions());
        string where = Describe(sas);
        try
        {
            await CheckBlobAsync(blob, expected.DiskName, expected.DiskSizeBytes, where, cancellationToken).ConfigureAwait(false);
            return await ManagedDiskReadback.VerifyAsync(blob, expected.DiskName, expected.DiskSizeBytes, expected.Sha256, expected.Footer, _options,
                done => progress?.Report(new ManagedDiskUploadProgress(expected.DiskName, ManagedDiskUploadPhase.Verifying, done, expected.DiskSizeBytes, 0)),
                cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (Translate(ex, expected.DiskName, where, "verify", cancellationToken) is { } mapped)
        {
            throw mapped;
        }
    }

    /// <summary>The blob must be a page blob of exactly the upload size (Azure made it so when the disk was created with that size).</summary>
    private static async Task CheckBlobAsync(PageBlobClient blob, string diskName, long diskSize, string where, CancellationToken cancellationToken)
    {
        long expected = ManagedDiskSize.UploadSizeBytes(diskSize);
        BlobProperties properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        if (properties.BlobType != BlobType.Page || properties.ContentLength != expected)
            throw new AsrException(ManagedDiskErrorIds.ManagedDiskUploadSizeInvalid, AsrErrorKind.InvalidArgument,
                $"The managed disk for disk '{diskName}' ({where}) is a {properties.BlobType} blob of {properties.ContentLength:N0} bytes; " +
                $"a disk of {diskSize:N0} bytes is uploaded to a page blob of {expected:N0} bytes. Create the managed disk with uploadSizeBytes = {expected}.", diskName);
    }

    /// <summary>Clears pages that hold data before this upload writes anything (a retried upload): the upload then writes into zeros only.</summary>
    private async Task<int> ClearPriorPagesAsync(PageBlobClient blob, string diskName, string where, CancellationToken cancellationToken)
    {
        var prior = await ManagedDiskReadback.ValidRangesAsync(blob, cancellationToken).ConfigureAwait(false);
        if (prior.Count == 0) return 0;
        _logger.LogInformation("The managed disk for disk '{Disk}' ({Blob}) already holds {Ranges} page ranges ({Bytes:N0} bytes): clearing them before the upload.",
            diskName, where, prior.Count, prior.Sum(r => r.Length));
        await Parallel.ForEachAsync(prior, new ParallelOptions { MaxDegreeOfParallelism = _options.WritesInFlight, CancellationToken = cancellationToken },
            async (range, ct) => await blob.ClearPagesAsync(new HttpRange(range.Offset, range.Length), cancellationToken: ct).ConfigureAwait(false)).ConfigureAwait(false);
        return prior.Count;
    }

    /// <summary>The write pass: the point's disk in offset order, hashed, its non-zero pages written.</summary>
    private async Task<(string Sha256, long BytesSent, int Ranges)> WritePagesAsync(RecoveryPointDiskReader source, PageBlobClient blob,
        IProgress<ManagedDiskUploadProgress>? progress, CancellationToken cancellationToken)
    {
        string diskName = source.Disk.Name;
        long diskSize = source.Length, hashed = 0, written = 0, nextReport = 0;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var writer = new PageWriter(blob, _options.MaxPageWriteBytes, _options.WritesInFlight, n => Interlocked.Add(ref written, n), cts.Token);

        void HashZerosTo(long offset)
        {
            for (; hashed < offset; hashed += Math.Min(ManagedDiskReadback.Zeros.Length, offset - hashed))
                sha.AppendData(ManagedDiskReadback.Zeros, 0, (int)Math.Min(ManagedDiskReadback.Zeros.Length, offset - hashed));
        }

        void Report(long done, bool force)
        {
            if (progress is null || (!force && done < nextReport)) return;
            nextReport = done + Math.Max(4L << 20, diskSize / 200);
            progress.Report(new ManagedDiskUploadProgress(diskName, ManagedDiskUploadPhase.Writing, done, diskSize, Interlocked.Read(ref written)));
        }

        try
        {
            Report(0, force: true);
            await OrderedSegmentReader.ForEachSegmentAsync(source, _options.SourceReadsAhead, SourceReadAheadBytes, async (offset, data, _) =>
            {
                HashZerosTo(offset);
                sha.AppendData(data.Span);
                hashed = offset + data.Length;
                // Send the non-zero 4 KiB-aligned pages; an all-zero one is a gap (the blob reads it as zeros).
                int at = 0;
                while (at < data.Length)
                {
                    long pageEnd = (offset + at) / ZeroCheckBytes * ZeroCheckBytes + ZeroCheckBytes;
                    int n = (int)Math.Min(data.Length - at, pageEnd - (offset + at));
                    var piece = data.Slice(at, n);
                    if (piece.Span.ContainsAnyExcept((byte)0))
                        await writer.WriteAsync(offset + at, piece).ConfigureAwait(false);
                    at += n;
                }
                Report(hashed, force: false);
            }, cts.Token).ConfigureAwait(false);
            await writer.CompleteAsync().ConfigureAwait(false);
        }
        catch
        {
            cts.Cancel();
            await writer.AbandonAsync().ConfigureAwait(false);
            throw;
        }
        HashZerosTo(diskSize);
        Report(diskSize, force: true);
        return (Convert.ToHexStringLower(sha.GetHashAndReset()), writer.Bytes, writer.Requests);
    }

    /// <summary>The blob's address without its query: what messages and logs show (never the SAS).</summary>
    internal static string Describe(Uri uri) => uri.GetLeftPart(UriPartial.Path);

    /// <summary>
    /// The <see cref="AsrException"/> a storage failure becomes, or null to let it through (our own exceptions, a
    /// cancellation the caller asked for). Built from the status and error code only: the SAS never reaches a message.
    /// </summary>
    internal static AsrException? Translate(Exception ex, string diskName, string where, string operation, CancellationToken cancellationToken)
    {
        if (ex is AsrException or ArgumentException) return null;
        if (ex is OperationCanceledException && cancellationToken.IsCancellationRequested) return null;
        string what = operation == "verify"
            ? $"Could not verify the managed disk {where} of disk '{diskName}'"
            : $"Could not upload disk '{diskName}' to the managed disk {where}";
        if (BlobRetryPolicy.IsTlsFailure(ex))
            return new AsrException(ManagedDiskErrorIds.ManagedDiskUploadFailed, AsrErrorKind.SecurityError,
                $"{what}: the endpoint's TLS certificate is not trusted by this machine.", diskName);
        switch (ex)
        {
            case RequestFailedException { Status: 401 or 403 } denied:
                // No inner exception: the service's reply may echo the request's signature.
                return new AsrException(ManagedDiskErrorIds.ManagedDiskUploadFailed, AsrErrorKind.SecurityError,
                    $"{what}: access was denied (HTTP {denied.Status} {denied.ErrorCode}). The SAS must allow read and write, and access must not have expired or been revoked.", diskName);
            case RequestFailedException { Status: 404 } missing:
                return new AsrException(ManagedDiskErrorIds.ManagedDiskUploadFailed, AsrErrorKind.ObjectNotFound,
                    $"{what}: the blob does not exist (HTTP 404 {missing.ErrorCode}).", diskName, missing);
            case RequestFailedException { Status: > 0 } refused:
                return new AsrException(ManagedDiskErrorIds.ManagedDiskUploadFailed,
                    refused.Status is 408 or 429 or >= 500 ? AsrErrorKind.ConnectionError : AsrErrorKind.WriteError,
                    $"{what}: HTTP {refused.Status} {refused.ErrorCode}.", diskName, refused);
            case AggregateException { InnerExceptions.Count: > 0 } retries:
                return new AsrException(ManagedDiskErrorIds.ManagedDiskUploadFailed, AsrErrorKind.ConnectionError,
                    $"{what}: no answer after {retries.InnerExceptions.Count} attempts with backoff ({retries.InnerExceptions[^1].GetType().Name}: {FirstLine(retries.InnerExceptions[^1].Message)}).", diskName, retries);
            case RequestFailedException or HttpRequestException or IOException or System.Net.Sockets.SocketException or TimeoutException or OperationCanceledException:
                return new AsrException(ManagedDiskErrorIds.ManagedDiskUploadFailed, AsrErrorKind.ConnectionError,
                    $"{what}: {ex.GetType().Name}: {FirstLine(ex.Message)}.", diskName, ex);
            default:
                return null;
        }
    }

    private static string FirstLine(string message)
    {
        int nl = message.IndexOfAny(['\r', '\n']);
        return nl < 0 ? message : message[..nl];
    }
}
