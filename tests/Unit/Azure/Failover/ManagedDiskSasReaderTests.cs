using System.Security.Cryptography;
using AsrModule.Engine.Azure.Failover;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Tests.Unit.Azure.Failover;

/// <summary>
/// <see cref="ManagedDiskSasReader"/> on the FAKE Azure Resource Manager (tests/FakeArm) and Azurite: a sparse disk of a
/// real recovery point is uploaded into a managed disk as the failover does, snapshotted, and read back through the
/// snapshot's read SAS in the 4 MiB chunks reprotect reads: the bytes hash as the source, and the chunks without data
/// cost no request (Get Page Ranges said so).
/// </summary>
[Collection(FakeArmCollection.Name)]
public sealed class ManagedDiskSasReaderTests(FakeArmFixture fixture)
{
    private const int Chunk = 4 << 20;
    /// <summary>22 MiB + 36.5 KiB: not a multiple of the chunk, of 1 MiB nor of 4 KiB.</summary>
    private const long DiskBytes = (22L << 20) + 36 * 1024 + 512;

    /// <summary>Data in chunks 0, 2 and 4 only: MiB 0 random, 8 KiB of text at 9 MiB + 4 KiB, 5000 random bytes at 17 MiB; the rest zeros.</summary>
    private static readonly (long Offset, int Length)[] DataRegions = [(0, 1 << 20), ((9L << 20) + 4096, 8192), (17L << 20, 5000)];

    private FakeArmProcess Fake => fixture.Fake;

    private static ManagedDiskUploadOptions Fast => new() { MaxRetries = 1, RetryDelay = TimeSpan.FromMilliseconds(50) };

    private static void CreateSparseDisk(string path)
    {
        var rng = new Random(31);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        fs.SetLength(DiskBytes);
        foreach (var (offset, length) in DataRegions)
        {
            byte[] data = new byte[length];
            if (offset == (9L << 20) + 4096) "replication vault recovery point failover "u8.ToArray().AsSpan().CopyTo(data);
            rng.NextBytes(offset == (9L << 20) + 4096 ? data.AsSpan(64) : data);
            fs.Position = offset;
            fs.Write(data);
        }
    }

    /// <summary>The disk of a real recovery point uploaded into a managed disk (as the failover does), and a snapshot of it with read access.</summary>
    private async Task<(string Source, Uri Sas, string SnapshotId, ArmControlPlane Arm, string Run)> SnapshotOfAnUploadedDiskAsync(EngineHarness h)
    {
        string source = h.Dir["sparse.img"];
        CreateSparseDisk(source);
        var item = await h.EnableAsync("web01", source);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        var disk = Assert.Single(point.Disks);
        string run = Guid.NewGuid().ToString("N")[..8];
        var tags = new Dictionary<string, string> { ["asr-job"] = run };
        var arm = Fake.ControlPlane();
        string diskId = await arm.CreateUploadDiskAsync(new AzureDiskSpec($"web01-os-{run}", "westeurope", ManagedDiskSize.UploadSizeBytes(disk.SizeBytes)) { Tags = tags }, default);
        Uri writeSas = await arm.GrantWriteAccessAsync(diskId, TimeSpan.FromHours(1), default);
        using (var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, disk.DiskId, default))
            await new ManagedDiskUploader(Fast).UploadAsync(reader, point, writeSas);
        await arm.RevokeAccessAsync(diskId, default);
        string snapshotId = await arm.CreateSnapshotAsync(new AzureSnapshotSpec($"web01-os-{run}-snap", "westeurope", diskId) { Tags = tags }, default);
        Uri sas = await arm.GrantReadAccessAsync(snapshotId, TimeSpan.FromHours(1), default);
        return (source, sas, snapshotId, arm, run);
    }

    [FakeArmFact]
    public async Task A_snapshot_read_in_4MiB_chunks_hashes_as_the_source_and_chunks_without_pages_cost_no_request()
    {
        using var h = await EngineHarness.CreateAsync();
        var (source, sas, _, arm, run) = await SnapshotOfAnUploadedDiskAsync(h);
        try
        {
            using var reader = new ManagedDiskSasReader(sas, DiskBytes, Fast);
            Assert.Equal(DiskBytes, reader.Size);
            Assert.Equal(sas.GetLeftPart(UriPartial.Path), reader.Location);
            Assert.DoesNotContain("?", reader.Location, StringComparison.Ordinal);
            Assert.DoesNotContain("sig=", reader.Location, StringComparison.OrdinalIgnoreCase);

            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            byte[] buffer = new byte[Chunk];
            for (long offset = 0; offset < DiskBytes; offset += Chunk)
            {
                int n = (int)Math.Min(Chunk, DiskBytes - offset);
                Array.Fill(buffer, (byte)0xEE);   // whatever the buffer held is overwritten, zeros included
                await reader.ReadAsync(offset, buffer.AsMemory(0, n), default);
                sha.AppendData(buffer, 0, n);
            }
            Assert.Equal(TestDisks.Sha256(source), Convert.ToHexString(sha.GetHashAndReset()));

            // Get Properties and Get Page Ranges once, then one download per data region (chunks 0, 2, 4): the three
            // chunks without pages (4–8, 12–16 and 20–22 MiB) were zeros without a request, and the data came once.
            Assert.Equal(2 + DataRegions.Length, reader.Requests);
            long dataPages = DataRegions.Sum(r => (r.Offset + r.Length + 4095) / 4096 * 4096 - r.Offset / 4096 * 4096);
            Assert.InRange(reader.BytesDownloaded, DataRegions.Sum(r => (long)r.Length), dataPages);
        }
        finally
        {
            await arm.DeleteByTagAsync("asr-job", run, default);
        }
    }

    [FakeArmFact]
    public async Task Reads_at_any_offset_return_the_source_bytes_and_reads_past_the_size_are_refused()
    {
        using var h = await EngineHarness.CreateAsync();
        var (source, sas, snapshotId, arm, run) = await SnapshotOfAnUploadedDiskAsync(h);
        try
        {
            byte[] expected = await File.ReadAllBytesAsync(source);
            using var reader = new ManagedDiskSasReader(sas, DiskBytes, Fast);
            // Unaligned reads across data/zero boundaries, backwards, a single byte, the very end.
            foreach (var (offset, length) in new (long, int)[]
                     {
                         ((1L << 20) - 100, 300), ((9L << 20) + 4000, 10_000), ((17L << 20) + 4999, 2), (5L << 20, 1 << 20),
                         (0, 1), ((9L << 20) + 4096, 8192), (DiskBytes - 10, 10), (DiskBytes, 0),
                     })
            {
                byte[] buffer = new byte[length];
                await reader.ReadAsync(offset, buffer, default);
                Assert.True(expected.AsSpan((int)offset, length).SequenceEqual(buffer), $"{length} bytes at {offset}");
            }
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await reader.ReadAsync(DiskBytes - 10, new byte[11], default));
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await reader.ReadAsync(-1, new byte[1], default));
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await reader.ReadAsync(DiskBytes + 512, new byte[1], default));

            // Gone (the snapshot deleted): a stable id naming the blob without the SAS.
            Assert.True(await arm.DeleteAsync(snapshotId, default));
            using var orphan = new ManagedDiskSasReader(sas, DiskBytes, Fast);
            var ex = await Assert.ThrowsAsync<AsrException>(async () => await orphan.ReadAsync(0, new byte[4096], default));
            Assert.Equal((AzureControlPlaneErrorIds.AzureResourceNotFound, AsrErrorKind.ObjectNotFound), (ex.ErrorId, ex.Kind));
            Assert.Equal(orphan.Location, ex.Target);
            Assert.Contains(orphan.Location, ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("sig=", ex.Message, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            await arm.DeleteByTagAsync("asr-job", run, default);
        }
    }

    [FakeArmFact]
    public async Task A_blob_shorter_than_the_size_given_is_refused_as_unreadable()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, sas, _, arm, run) = await SnapshotOfAnUploadedDiskAsync(h);
        try
        {
            long tooBig = ManagedDiskSize.UploadSizeBytes(DiskBytes) + 1;
            using var reader = new ManagedDiskSasReader(sas, tooBig, Fast);
            var ex = await Assert.ThrowsAsync<AsrException>(async () => await reader.ReadAsync(0, new byte[512], default));
            Assert.Equal((AsrErrorIds.DiskUnreadable, AsrErrorKind.InvalidData), (ex.ErrorId, ex.Kind));
            Assert.DoesNotContain("sig=", ex.Message, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            await arm.DeleteByTagAsync("asr-job", run, default);
        }
    }
}
