using System.Buffers;
using System.Security.Cryptography;
using AsrModule.Engine.Errors;
using Azure;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The verification of an upload: reads the page blob back through the SAS and proves it is the disk.
/// <list type="bullet">
/// <item>Only the valid page ranges (Get Page Ranges) are read: a page never written, or cleared, reads as zeros
/// by definition of a page blob, so it is hashed as zeros without a request. The read covers every written
/// page, so data left in the blob by anyone (an earlier attempt, a stray writer) is hashed too and cannot hide.</item>
/// <item>[0, disk size) is hashed with SHA-256 in offset order (ranged reads, several in flight, consumed in
/// order) and compared with the hash of the point's disk.</item>
/// <item>[disk size, payload) must be zeros; the 512 bytes at the payload's end must be the expected footer.</item>
/// </list>
/// </summary>
internal static class ManagedDiskReadback
{
    /// <summary>Zeros hashed for the ranges that are not read (and that the upload did not send).</summary>
    internal static readonly byte[] Zeros = new byte[1 << 20];

    /// <summary>A gap between two valid ranges this small is read through (zeros) rather than costing a request.</summary>
    private const long MaxReadGapBytes = 64 << 10;

    /// <summary>The blob's valid (written, not cleared) page ranges, sorted and with adjacent ranges merged.</summary>
    public static async Task<List<(long Offset, long Length)>> ValidRangesAsync(PageBlobClient blob, CancellationToken cancellationToken)
    {
        var ranges = new List<(long Offset, long Length)>();
        await foreach (var item in blob.GetAllPageRangesAsync(new GetPageRangesOptions(), cancellationToken).ConfigureAwait(false))
        {
            if (item.IsClear) continue;
            long offset = item.Range.Offset, length = item.Range.Length ?? 0;
            if (length > 0) ranges.Add((offset, length));
        }
        ranges.Sort((a, b) => a.Offset.CompareTo(b.Offset));
        var merged = new List<(long Offset, long Length)>(ranges.Count);
        foreach (var r in ranges)
        {
            if (merged.Count > 0 && r.Offset <= merged[^1].Offset + merged[^1].Length)
            {
                var last = merged[^1];
                merged[^1] = (last.Offset, Math.Max(last.Offset + last.Length, r.Offset + r.Length) - last.Offset);
            }
            else merged.Add(r);
        }
        return merged;
    }

    /// <summary>Reads (offset, length) pieces of at most <paramref name="maxRead"/> bytes covering <paramref name="ranges"/>.</summary>
    internal static List<(long Offset, int Length)> PlanReads(IReadOnlyList<(long Offset, long Length)> ranges, int maxRead)
    {
        var reads = new List<(long Offset, int Length)>();
        int i = 0;
        while (i < ranges.Count)
        {
            long start = ranges[i].Offset, end = start + ranges[i].Length;
            // Read through small gaps: the next range joins while it is close.
            while (i + 1 < ranges.Count && ranges[i + 1].Offset - end <= MaxReadGapBytes)
            {
                i++;
                end = Math.Max(end, ranges[i].Offset + ranges[i].Length);
            }
            i++;
            for (long o = start; o < end; o += maxRead)
                reads.Add((o, (int)Math.Min(maxRead, end - o)));
        }
        return reads;
    }

    /// <summary>
    /// Verifies the blob against a disk of <paramref name="diskSize"/> bytes hashing to <paramref name="expectedSha256"/>
    /// with <paramref name="expectedFooter"/>; throws <see cref="ManagedDiskErrorIds.ManagedDiskUploadMismatch"/> naming
    /// <paramref name="diskName"/>. Returns the bytes read.
    /// </summary>
    public static async Task<long> VerifyAsync(PageBlobClient blob, string diskName, long diskSize, string expectedSha256, FixedVhdFooter expectedFooter,
        ManagedDiskUploadOptions options, Action<long>? onProgress, CancellationToken cancellationToken)
    {
        long payload = ManagedDiskSize.PayloadBytes(diskSize);
        string where = ManagedDiskUploader.Describe(blob.Uri);
        var reads = PlanReads(await ValidRangesAsync(blob, cancellationToken).ConfigureAwait(false), options.VerifyReadBytes);

        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long hashed = 0, bytesRead = 0;
        byte[] footer = new byte[FixedVhdFooter.Size];

        void HashZerosTo(long offset)
        {
            for (; hashed < offset; hashed += Math.Min(Zeros.Length, offset - hashed))
                sha.AppendData(Zeros, 0, (int)Math.Min(Zeros.Length, offset - hashed));
        }

        void Take(long offset, ReadOnlySpan<byte> data)
        {
            long end = offset + data.Length;
            if (offset < diskSize)
            {
                HashZerosTo(offset);
                long to = Math.Min(end, diskSize);
                sha.AppendData(data[..(int)(to - offset)]);
                hashed = to;
            }
            long padFrom = Math.Max(offset, diskSize), padTo = Math.Min(end, payload);
            if (padFrom < padTo)
            {
                int nonZero = data[(int)(padFrom - offset)..(int)(padTo - offset)].IndexOfAnyExcept((byte)0);
                if (nonZero >= 0)
                    throw Mismatch(diskName, where, $"byte {padFrom + nonZero:N0} of the zero padding between the disk's end ({diskSize:N0}) and the footer ({payload:N0}) is not zero");
            }
            long footerFrom = Math.Max(offset, payload), footerTo = Math.Min(end, payload + FixedVhdFooter.Size);
            if (footerFrom < footerTo)
                data[(int)(footerFrom - offset)..(int)(footerTo - offset)].CopyTo(footer.AsSpan((int)(footerFrom - payload)));
        }

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var inFlight = new Queue<Task<(long Offset, byte[] Buffer, int Length)>>();
        int next = 0;
        try
        {
            while (next < reads.Count || inFlight.Count > 0)
            {
                while (next < reads.Count && inFlight.Count < options.VerifyReadsInFlight)
                {
                    var (offset, length) = reads[next++];
                    inFlight.Enqueue(ReadAsync(blob, offset, length, diskName, where, cts.Token));
                }
                var (o, buffer, n) = await inFlight.Dequeue().ConfigureAwait(false);
                try
                {
                    Take(o, buffer.AsSpan(0, n));
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
                bytesRead += n;
                onProgress?.Invoke(Math.Min(o + n, diskSize));
            }
        }
        finally
        {
            cts.Cancel();
            while (inFlight.Count > 0)
            {
                try { ArrayPool<byte>.Shared.Return((await inFlight.Dequeue().ConfigureAwait(false)).Buffer); }
                catch (Exception) { /* cancelled with the failure being reported */ }
            }
        }
        HashZerosTo(diskSize);
        onProgress?.Invoke(diskSize);

        string actual = Convert.ToHexStringLower(sha.GetHashAndReset());
        if (!string.Equals(actual, expectedSha256, StringComparison.OrdinalIgnoreCase))
            throw Mismatch(diskName, where, $"its bytes [0, {diskSize:N0}) read back hash to SHA-256 {actual}, the recovery point's disk to {expectedSha256.ToLowerInvariant()}");
        byte[] expected = expectedFooter.ToBytes();
        if (!footer.AsSpan().SequenceEqual(expected))
        {
            string why = !FixedVhdFooter.TryParse(footer, out var found, out string? error) ? error!
                : $"it reads {found} where {expectedFooter} was written";
            throw Mismatch(diskName, where, $"the VHD footer at {payload:N0} is wrong: {why}");
        }
        return bytesRead;
    }

    private static async Task<(long Offset, byte[] Buffer, int Length)> ReadAsync(PageBlobClient blob, long offset, int length, string diskName, string where, CancellationToken cancellationToken)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            var response = await blob.DownloadStreamingAsync(new BlobDownloadOptions { Range = new HttpRange(offset, length) }, cancellationToken).ConfigureAwait(false);
            int read = 0;
            await using (var content = response.Value.Content)
            {
                while (read < length)
                {
                    int n = await content.ReadAsync(buffer.AsMemory(read, length - read), cancellationToken).ConfigureAwait(false);
                    if (n == 0) break;
                    read += n;
                }
            }
            if (read != length)
                throw new AsrException(ManagedDiskErrorIds.ManagedDiskUploadFailed, AsrErrorKind.ReadError,
                    $"Reading disk '{diskName}' back from {where} returned {read:N0} of the {length:N0} bytes at {offset:N0}.", diskName);
            return (offset, buffer, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    internal static AsrException Mismatch(string diskName, string where, string what) =>
        new(ManagedDiskErrorIds.ManagedDiskUploadMismatch, AsrErrorKind.InvalidData,
            $"The managed disk uploaded for disk '{diskName}' ({where}) does not match the recovery point: {what}. " +
            "Upload the disk again (the upload clears what the blob holds first), or delete the managed disk and create it anew.", diskName);
}
