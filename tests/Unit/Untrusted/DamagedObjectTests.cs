using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// A pack or index that is missing, short or does not decode reaches the user as VaultDataCorrupt naming the
/// disk, the point and the object, from export, verification (Test-AsrRecoveryPoint) and a drill's reads —
/// never as a FileNotFoundException, EndOfStreamException or ZstdException (issue #12, E).
/// </summary>
public class DamagedObjectTests
{
    private sealed record Damaged(EngineHarness H, AsrProtectedItem Item, AsrRecoveryPoint Point, string Key) : IDisposable
    {
        public void Dispose() => H.Dispose();
    }

    /// <summary>One point of a 4 MiB disk (random, text and zero regions) in a compressed vault, then one object damaged.</summary>
    private static async Task<Damaged> DamageAsync(string damage, string? passphrase = null)
    {
        var h = await EngineHarness.CreateAsync(passphrase, compressionLevel: 1);
        var (_, item) = await h.NewMachineAsync("m", 4L << 20, 71);
        var point = (await h.Vault.GetPointsAsync(item, default)).Single();
        string pack = point.Packs.Single();
        string index = VaultLayout.PointIndex(point, "disk0");
        string key = damage.EndsWith("index", StringComparison.Ordinal) ? index : pack;
        string path = VaultTamper.PathOf(h, key);
        switch (damage)
        {
            case "delete pack":
            case "delete index":
                File.Delete(path);
                break;
            case "truncate pack":
                VaultTamper.Truncate(path, new FileInfo(path).Length / 2);
                break;
            case "empty pack":
                VaultTamper.Truncate(path, 0);
                break;
            case "truncate index":
                VaultTamper.Truncate(path, new FileInfo(path).Length / 2);
                break;
            case "cut index":
                VaultTamper.Truncate(path, 20); // header and less than a nonce and tag (encrypted) or a zstd frame header
                break;
            case "flip compressed extent":
            {
                using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, "disk0", default);
                var extent = reader.Map.Extents.First(e => (e.Record.Flags & ExtentFlags.Compressed) != 0).Record;
                for (int i = 0; i < 8; i++) VaultTamper.FlipByte(path, extent.PackOffset + extent.StoredLength / 3 + i);
                break;
            }
            case "flip zstd frame header":
            {
                using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, "disk0", default);
                var extent = reader.Map.Extents.First(e => (e.Record.Flags & ExtentFlags.Compressed) != 0).Record;
                VaultTamper.FlipByte(path, extent.PackOffset); // the frame's magic number
                break;
            }
            default:
                throw new ArgumentException(damage);
        }
        return new Damaged(h, item, point, key);
    }

    public static TheoryData<string, string?> Damages => new()
    {
        { "delete pack", null },
        { "truncate pack", null },
        { "empty pack", null },
        { "flip compressed extent", null },
        { "flip zstd frame header", null },
        { "truncate index", null },
        { "cut index", null },
        { "delete index", null },
        { "delete pack", "k" },
        { "truncate pack", "k" },
        { "truncate index", "k" },
        { "cut index", "k" },
    };

    private static void AssertNamesDiskPointAndObject(AsrException ex, Damaged d)
    {
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidData, ex.Kind);
        Assert.Contains("'d.img'", ex.Message);
        Assert.Contains(d.Point.ToString(), ex.Message); // m@1
        Assert.Contains(d.Key, ex.Message);
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task Export_fails_with_VaultDataCorrupt_naming_disk_point_and_object(string damage, string? passphrase)
    {
        using var d = await DamageAsync(damage, passphrase);
        string dest = d.H.Dir["dest"];
        var ex = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointExporter.ExportAsync(d.H.Vault, d.Point, dest, false, null, JobContext.Detached()));
        AssertNamesDiskPointAndObject(ex, d);
        Assert.Empty(Directory.Exists(dest) ? Directory.EnumerateFileSystemEntries(dest) : []); // no partial left behind
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task Verification_returns_a_failed_result_naming_disk_point_and_object(string damage, string? passphrase)
    {
        using var d = await DamageAsync(damage, passphrase);
        // A damaged point is a result (Test-AsrRecoveryPoint writes it and a non-terminating error), not an exception.
        var result = await RecoveryPointVerifier.VerifyAsync(d.H.Vault, d.Point, default);
        Assert.False(result.Verified);
        var disk = Assert.Single(result.Disks);
        Assert.False(disk.Verified);
        Assert.NotNull(disk.Error);
        AssertNamesDiskPointAndObject(new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, disk.Error!), d);
        Assert.False(Directory.Exists(VaultTamper.PathOf(d.H, VaultLayout.PinsPrefix(d.Item.Id)))); // verification writes no pin
    }

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task A_drills_reads_fail_with_VaultDataCorrupt_naming_disk_point_and_object(string damage, string? passphrase)
    {
        using var d = await DamageAsync(damage, passphrase);
        // What a drill serves over NBD: the point's disk as a block device, read block by block.
        var ex = await Assert.ThrowsAsync<AsrException>(async () =>
        {
            await using var device = await RecoveryPointBlockDevice.OpenAsync(d.H.Vault, d.Point, "disk0", default);
            var buffer = new byte[1 << 20];
            for (long offset = 0; offset < device.Length; offset += buffer.Length)
                await device.ReadAsync(offset, buffer.AsMemory(0, (int)Math.Min(buffer.Length, device.Length - offset)), default);
        });
        AssertNamesDiskPointAndObject(ex, d);
    }

    [Fact]
    public async Task A_missing_pack_of_an_older_point_in_the_chain_names_that_pack_and_the_point_read()
    {
        using var h = await EngineHarness.CreateAsync(compressionLevel: 1);
        var (disk, item) = await h.NewMachineAsync("m", 2L << 20, 72);
        TestDisks.ScatterWrites(disk, 0.01, 73);
        await h.CycleAsync("m");
        var points = await h.Vault.GetPointsAsync(item, default);
        string basePack = points[0].Packs.Single();
        File.Delete(VaultTamper.PathOf(h, basePack));
        var ex = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointExporter.ExportAsync(h.Vault, points[1], h.Dir["dest"], false, null, JobContext.Detached()));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains("'d.img'", ex.Message);
        Assert.Contains("m@2", ex.Message);
        Assert.Contains(basePack, ex.Message);
    }

    [Theory]
    [InlineData("stored length", 200 << 20)]
    [InlineData("pack offset", -1)]
    [InlineData("pack number", -1)]
    [InlineData("first block", 1 << 20)]
    public async Task An_index_record_out_of_range_is_refused_before_a_buffer_is_sized_from_it(string field, int value)
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("m", 1 << 20, 74);
        var point = (await h.Vault.GetPointsAsync(item, default)).Single();
        string key = VaultLayout.PointIndex(point, "disk0");
        string path = VaultTamper.PathOf(h, key);
        var records = ExtentIndex.Decode(Engine.Security.MetadataSealer.Open(File.ReadAllBytes(path), null, key), key);
        int last = records.Length - 1;
        records[last] = field switch
        {
            "stored length" => records[last] with { StoredLength = value },
            "pack offset" => records[last] with { PackOffset = value },
            "pack number" => records[last] with { PackNumber = value },
            _ => records[last] with { FirstBlock = value },
        };
        File.WriteAllBytes(path, Engine.Security.MetadataSealer.Seal(ExtentIndex.Encode(records), null, key));

        var ex = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointExporter.ExportAsync(h.Vault, point, h.Dir["dest"], false, null, JobContext.Detached()));

        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains("'d.img'", ex.Message);
        Assert.Contains("m@1", ex.Message);
    }
}
