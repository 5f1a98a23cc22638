using System.Security.Cryptography;
using AsrModule.Engine.Azure.Failover;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Azure.Storage.Sas;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Azure.Failover;

/// <summary>
/// Recovery points of a real local vault uploaded to real page blobs in Azurite through a blob SAS, as Azure's
/// grant-access hands one out for a managed disk created for upload; what lands in the blob is read back with the
/// account key and compared with the source disk.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class ManagedDiskUploaderTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private AzuriteServer Server => azurite.Server;

    /// <summary>Not a multiple of 1 MiB nor of 4 KiB: MiB 0 random, 1 text, 2–3 zeros, 4 random, 5 text, the 36.5 KiB tail zeros.</summary>
    private const long DiskBytes = (6L << 20) + 36 * 1024 + 512;

    private static ManagedDiskUploadOptions Fast => new() { MaxRetries = 1, RetryDelay = TimeSpan.FromMilliseconds(50) };

    private sealed record TestBlob(Uri Sas, PageBlobClient Client);

    /// <summary>A page blob of <paramref name="size"/> bytes (what Azure creates for the disk) and a blob SAS for it.</summary>
    private async Task<TestBlob> NewBlobAsync(long size, BlobSasPermissions permissions = BlobSasPermissions.Read | BlobSasPermissions.Write)
    {
        string container = AzuriteServer.NewContainerName(), name = "abcd";
        var containerClient = Server.ContainerClient(container);
        await containerClient.CreateIfNotExistsAsync();
        var blob = containerClient.GetPageBlobClient(name);
        await blob.CreateAsync(size);
        var sas = new BlobSasBuilder(permissions, DateTimeOffset.UtcNow.AddHours(1)) { BlobContainerName = container, BlobName = name, Resource = "b" };
        string query = sas.ToSasQueryParameters(Server.SharedKey).ToString();
        return new TestBlob(new Uri($"{blob.Uri}?{query}"), blob);
    }

    private static async Task<byte[]> DownloadAsync(PageBlobClient blob) => (await blob.DownloadContentAsync()).Value.Content.ToArray();

    private static string Sha256(ReadOnlySpan<byte> data) => Convert.ToHexStringLower(SHA256.HashData(data));

    private static string FileSha256(string path) => TestDisks.Sha256(path).ToLowerInvariant();

    private static async Task<List<(long Offset, long Length)>> PageRangesAsync(PageBlobClient blob)
    {
        var ranges = new List<(long, long)>();
        await foreach (var r in blob.GetAllPageRangesAsync(new GetPageRangesOptions()))
            if (!r.IsClear) ranges.Add((r.Range.Offset, r.Range.Length ?? 0));
        return ranges;
    }

    /// <summary>The blob holds the disk, then zeros, then the point's footer.</summary>
    private static void AssertBlobIsTheDisk(byte[] blob, string diskPath, AsrRecoveryPoint point, ManagedDiskUploadResult result)
    {
        long n = new FileInfo(diskPath).Length, payload = ManagedDiskSize.PayloadBytes(n);
        Assert.Equal(payload + 512, blob.LongLength);
        Assert.Equal(FileSha256(diskPath), Sha256(blob.AsSpan(0, (int)n)));
        Assert.Equal(-1, blob.AsSpan((int)n, (int)(payload - n)).IndexOfAnyExcept((byte)0));
        var footer = FixedVhdFooter.Parse(blob.AsSpan((int)payload, 512));
        Assert.Equal(payload, footer.CurrentSize);
        Assert.Equal(payload, footer.OriginalSize);
        Assert.Equal(VhdGeometry.FromSize(payload), footer.Geometry);
        Assert.Equal(FixedVhdFooter.DeriveUniqueId(point.ItemId, point.Disks[0].DiskId, point.PointId), footer.UniqueId);
        Assert.Equal(result.Footer, footer);
    }

    [RequiresAzurite]
    public async Task A_point_becomes_a_fixed_vhd_holding_exactly_the_disk_with_only_non_zero_data_sent()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("web01", DiskBytes, seed: 11);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        var target = await NewBlobAsync(ManagedDiskSize.UploadSizeBytes(DiskBytes));
        var logger = new ListLogger();
        var reports = new List<ManagedDiskUploadProgress>();

        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, point.Disks[0].DiskId, default);
        var result = await new ManagedDiskUploader(Fast, logger).UploadAsync(reader, point, target.Sas, new SyncProgress(reports.Add));
        output.WriteLine($"{result.BytesSent:N0} bytes sent in {result.RangesSent} ranges, {result.BytesVerified:N0} read back, {result.Seconds:F2} s; SHA-256 {result.Sha256}");

        Assert.Equal(FileSha256(disk), result.Sha256);
        Assert.Equal(DiskBytes, result.DiskSizeBytes);
        Assert.Equal((20L << 20) + 512, result.UploadSizeBytes);
        Assert.Equal(0, result.PriorRangesCleared);
        AssertBlobIsTheDisk(await DownloadAsync(target.Client), disk, point, result);

        // Only the non-zero MiBs (0, 1, 4, 5) and the footer are sent: nothing of the 2 MiB of zeros, the zero tail
        // or the padding to 20 MiB.
        long zeroBytes = (2L << 20) + (DiskBytes - (6L << 20));
        Assert.Equal((4L << 20) + 512, result.BytesSent);
        Assert.True(result.BytesSent <= DiskBytes - zeroBytes + 512);
        var ranges = await PageRangesAsync(target.Client);
        Assert.DoesNotContain(ranges, r => r.Offset < 4L << 20 && r.Offset + r.Length > 2L << 20);
        Assert.DoesNotContain(ranges, r => r.Offset < 20L << 20 && r.Offset + r.Length > 6L << 20);
        Assert.Equal(result.BytesSent, ranges.Sum(r => r.Length));
        // Adjacent data is merged: MiBs 0–1 and 4–5 are one 2 MiB write each.
        Assert.Equal(2, result.RangesSent);
        Assert.Equal(result.BytesSent, result.BytesVerified);

        // Progress: each phase in order, ending at the disk's size.
        foreach (var phase in new[] { ManagedDiskUploadPhase.Writing, ManagedDiskUploadPhase.Verifying })
        {
            var done = reports.Where(r => r.Phase == phase).Select(r => r.BytesDone).ToList();
            Assert.NotEmpty(done);
            Assert.Equal(done.Order(), done);
            Assert.Equal(DiskBytes, done[^1]);
        }
        Assert.Equal(result.BytesSent - 512, reports.Last(r => r.Phase == ManagedDiskUploadPhase.Writing).BytesSent);
        Assert.True(reports.FindLastIndex(r => r.Phase == ManagedDiskUploadPhase.Writing) < reports.FindIndex(r => r.Phase == ManagedDiskUploadPhase.Verifying));

        // Logs name the blob, never its SAS.
        Assert.NotEmpty(logger.Lines);
        Assert.DoesNotContain(logger.Lines, l => l.Contains("sig=", StringComparison.Ordinal));
    }

    [RequiresAzurite]
    public async Task A_later_point_uploads_whole_and_an_earlier_upload_in_the_blob_is_cleared_first()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("web01", DiskBytes, seed: 12);
        var first = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        string firstSha = FileSha256(disk);
        // Scattered 4 KiB writes: the second point's map cuts the first point's extents into pieces and adds new
        // extents in the zero regions, so the upload reads a two-link chain in disk order.
        TestDisks.ScatterWrites(disk, 0.05, 13);
        await h.CycleAsync("web01");
        var second = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(first.Sequence + 1, second.Sequence);
        Assert.NotEqual(firstSha, FileSha256(disk));

        var uploader = new ManagedDiskUploader(Fast);
        var fresh = await NewBlobAsync(ManagedDiskSize.UploadSizeBytes(DiskBytes));
        using (var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, second, second.Disks[0].DiskId, default))
        {
            var result = await uploader.UploadAsync(reader, second, fresh.Sas);
            Assert.Equal(FileSha256(disk), result.Sha256);
            AssertBlobIsTheDisk(await DownloadAsync(fresh.Client), disk, second, result);
        }

        // The same blob first receives the first point, then the second (a retried failover that changed its
        // point): what the first left where the second has zeros is cleared, and the blob verifies as the second.
        var reused = await NewBlobAsync(ManagedDiskSize.UploadSizeBytes(DiskBytes));
        using (var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, first, first.Disks[0].DiskId, default))
            Assert.Equal(firstSha, (await uploader.UploadAsync(reader, first, reused.Sas)).Sha256);
        using (var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, second, second.Disks[0].DiskId, default))
        {
            var again = await uploader.UploadAsync(reader, second, reused.Sas);
            Assert.True(again.PriorRangesCleared > 0);
            Assert.Equal(FileSha256(disk), again.Sha256);
            AssertBlobIsTheDisk(await DownloadAsync(reused.Client), disk, second, again);
        }
    }

    [RequiresAzurite]
    public async Task A_disk_whose_size_is_not_a_multiple_of_512_is_padded_with_zeros()
    {
        using var h = await EngineHarness.CreateAsync();
        const long size = (3L << 20) + 1000;
        string disk = h.Dir["odd.img"];
        TestDisks.Create(disk, size, 14);
        using (var fs = new FileStream(disk, FileMode.Open, FileAccess.Write))
        {
            byte[] tail = new byte[1000];
            new Random(15).NextBytes(tail);
            fs.Position = size - tail.Length;
            fs.Write(tail);
        }
        var item = await h.EnableAsync("odd", disk);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(size, point.Disks[0].SizeBytes);

        var target = await NewBlobAsync(ManagedDiskSize.UploadSizeBytes(size));
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, point.Disks[0].DiskId, default);
        var result = await new ManagedDiskUploader(Fast).UploadAsync(reader, point, target.Sas);
        Assert.Equal(FileSha256(disk), result.Sha256);
        AssertBlobIsTheDisk(await DownloadAsync(target.Client), disk, point, result);
    }

    [RequiresAzurite]
    public async Task A_disk_of_zeros_sends_only_the_footer()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["empty.img"];
        using (var fs = new FileStream(disk, FileMode.Create, FileAccess.Write)) fs.SetLength(24L << 20);
        var item = await h.EnableAsync("empty", disk);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        var target = await NewBlobAsync(ManagedDiskSize.UploadSizeBytes(24L << 20));
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, point.Disks[0].DiskId, default);
        var result = await new ManagedDiskUploader(Fast).UploadAsync(reader, point, target.Sas);
        Assert.Equal(512, result.BytesSent);
        Assert.Equal(0, result.RangesSent);
        Assert.Equal(FileSha256(disk), result.Sha256);
        Assert.Equal([(24L << 20, 512L)], await PageRangesAsync(target.Client));
        AssertBlobIsTheDisk(await DownloadAsync(target.Client), disk, point, result);
    }

    [RequiresAzurite]
    public async Task Any_difference_in_the_blob_is_found_by_verify_and_fixed_by_uploading_again()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("web01", DiskBytes, seed: 16);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        var target = await NewBlobAsync(ManagedDiskSize.UploadSizeBytes(DiskBytes));
        var uploader = new ManagedDiskUploader(Fast);
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, point.Disks[0].DiskId, default);
        var uploaded = await uploader.UploadAsync(reader, point, target.Sas);
        Assert.Equal(uploaded.BytesSent, await uploader.VerifyAsync(target.Sas, uploaded));

        long payload = ManagedDiskSize.PayloadBytes(DiskBytes);
        byte[] noise = new byte[512];
        new Random(17).NextBytes(noise);
        var corruptions = new (string What, long Offset, string Message)[]
        {
            ("a page of data", 512 * 3, "hash to SHA-256"),
            ("a page in a zero region never written", (2L << 20) + 4096, "hash to SHA-256"),
            ("a page of the zero padding", 8L << 20, "zero padding"),
            ("the footer", payload, "footer"),
        };
        // A valid footer, but another point's.
        byte[] otherFooter = FixedVhdFooter.Create(payload, Guid.NewGuid(), point.RecoveryPointTimeUtc).ToBytes();
        corruptions = [.. corruptions, ("another point's footer", payload, "where fixed VHD")];
        foreach (var (what, offset, message) in corruptions)
        {
            using (var page = new MemoryStream(what == "another point's footer" ? otherFooter : noise))
                await target.Client.UploadPagesAsync(page, offset);
            var ex = await Assert.ThrowsAsync<AsrException>(() => uploader.VerifyAsync(target.Sas, uploaded));
            output.WriteLine($"{what}: {ex.Message}");
            Assert.Equal(ManagedDiskErrorIds.ManagedDiskUploadMismatch, ex.ErrorId);
            Assert.Equal(AsrErrorKind.InvalidData, ex.Kind);
            Assert.Equal("d.img", ex.Target);
            Assert.Contains("'d.img'", ex.Message);
            Assert.Contains(message, ex.Message);
            Assert.DoesNotContain("sig=", ex.Message);

            // A retried upload writes the same footer and repairs the blob.
            var again = await uploader.UploadAsync(reader, point, target.Sas);
            Assert.Equal(uploaded.Footer.ToBytes(), again.Footer.ToBytes());
            Assert.Equal(uploaded.Sha256, again.Sha256);
            Assert.True(again.PriorRangesCleared > 0, what);
            AssertBlobIsTheDisk(await DownloadAsync(target.Client), disk, point, again);
        }
    }

    [RequiresAzurite]
    public async Task A_wrong_blob_size_or_a_sas_that_cannot_read_is_refused_before_anything_is_written()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("web01", DiskBytes, seed: 18);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, point.Disks[0].DiskId, default);
        var uploader = new ManagedDiskUploader(Fast);

        // Created with the disk's size, not the upload size.
        var wrongSize = await NewBlobAsync(DiskBytes + 512 - DiskBytes % 512);
        var ex = await Assert.ThrowsAsync<AsrException>(() => uploader.UploadAsync(reader, point, wrongSize.Sas));
        Assert.Equal(ManagedDiskErrorIds.ManagedDiskUploadSizeInvalid, ex.ErrorId);
        Assert.Contains($"uploadSizeBytes = {ManagedDiskSize.UploadSizeBytes(DiskBytes)}", ex.Message);
        Assert.Empty(await PageRangesAsync(wrongSize.Client));

        // The upload reads (size check, page ranges, verification): a write-only SAS is refused with the reason.
        var writeOnly = await NewBlobAsync(ManagedDiskSize.UploadSizeBytes(DiskBytes), BlobSasPermissions.Write);
        ex = await Assert.ThrowsAsync<AsrException>(() => uploader.UploadAsync(reader, point, writeOnly.Sas));
        output.WriteLine(ex.Message);
        Assert.Equal(ManagedDiskErrorIds.ManagedDiskUploadFailed, ex.ErrorId);
        Assert.Equal(AsrErrorKind.SecurityError, ex.Kind);
        Assert.Contains("read and write", ex.Message);
        Assert.DoesNotContain("sig=", ex.ToString());
        Assert.Empty(await PageRangesAsync(writeOnly.Client));
    }

    [RequiresAzurite]
    public async Task Cancelling_stops_the_upload()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("web01", DiskBytes, seed: 19);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        var target = await NewBlobAsync(ManagedDiskSize.UploadSizeBytes(DiskBytes));
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, point.Disks[0].DiskId, default);
        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress(p => { if (p.BytesDone > 0) cts.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            new ManagedDiskUploader(Fast).UploadAsync(reader, point, target.Sas, progress, cts.Token));
    }

    /// <summary>Calls back synchronously, in order.</summary>
    private sealed class SyncProgress(Action<ManagedDiskUploadProgress> onReport) : IProgress<ManagedDiskUploadProgress>
    {
        public void Report(ManagedDiskUploadProgress value) => onReport(value);
    }

    private sealed class ListLogger : ILogger
    {
        public List<string> Lines { get; } = new();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            lock (Lines) Lines.Add(formatter(state, exception));
        }
    }
}
