using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Retention;
using AsrModule.Engine.Security;
using AsrModule.Engine.Vault;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Retention;

/// <summary>
/// Retention that rebases a kept point P whose chain holds an older kept point K writes P's maps relative to K (only
/// what P differs in), not a full map of the disk: the rebase costs what changed, P still exports the source's bytes,
/// K is untouched, and P keeps reading right when K is later rebased or pruned around it (issue #15, item 5).
/// </summary>
public class RelativeMapRetentionTests(ITestOutputHelper output)
{
    private const string Key = "relative map key";

    /// <summary>
    /// A sparse disk of <paramref name="diskBytes"/> holding <paramref name="dataBytes"/> of random data in 1 MiB runs
    /// spread over it; six points 20 minutes apart (00:10 … 01:50), each after a rewrite of <paramref name="changedBytes"/>
    /// at one data run; judged at 03:55: hour 0 keeps point 3, hour 1 keeps point 6.
    /// </summary>
    private static async Task<(ManualClock Clock, Dictionary<long, string> Sha, AsrProtectedItem Item)> SparseSixPointsAsync(
        EngineHarness h, long diskBytes, long dataBytes, int changedBytes)
    {
        var clock = new ManualClock(new DateTimeOffset(2025, 3, 3, 0, 10, 0, TimeSpan.Zero));
        h.Vault.Clock = clock;
        string disk = h.Dir["sparse.img"];
        var rng = new Random(41);
        long runs = dataBytes >> 20, stride = diskBytes / runs;
        var buffer = new byte[1 << 20];
        using (var fs = new FileStream(disk, FileMode.Create, FileAccess.Write))
        {
            fs.SetLength(diskBytes);
            for (long r = 0; r < runs; r++)
            {
                rng.NextBytes(buffer);
                fs.Position = r * stride;
                fs.Write(buffer);
            }
        }
        await h.Replication.RegisterAsync("sparse", [disk], "default", default);
        var sha = new Dictionary<long, string>();
        for (int i = 0; i < 6; i++)
        {
            if (i > 0)
            {
                clock.Advance(TimeSpan.FromMinutes(20));
                using var fs = new FileStream(disk, FileMode.Open, FileAccess.Write);
                var change = new byte[changedBytes];
                rng.NextBytes(change);
                fs.Position = rng.NextInt64(runs) * stride;
                fs.Write(change);
            }
            await h.CycleAsync("sparse");
            sha[(await RetentionTestKit.LatestPointAsync(h.Vault, "sparse")).Sequence] = TestDisks.Sha256(disk);
        }
        clock.Set(new DateTimeOffset(2025, 3, 3, 3, 55, 0, TimeSpan.Zero));
        return (clock, sha, await h.Vault.GetItemAsync("sparse", default));
    }

    private static async Task<RetentionResult> ApplyAsync(EngineHarness h, AsrProtectedItem item)
    {
        using (h.Replication.AcquireLease(item))
            return await RetentionService.ApplyAsync(h.Vault, item, default);
    }

    /// <summary>The map object a rebased point's manifest names for its disk, opened: its plaintext length.</summary>
    private static async Task<int> MapBytesAsync(AsrVault vault, AsrRecoveryPoint point)
    {
        string key = VaultLayout.PointFullMap(point.ItemId, point.Sequence, "disk0", point.IndexGeneration);
        return MetadataSealer.Open((await vault.Store.ReadAllAsync(key, default))!, vault.Key, key).Length;
    }

    private static async Task AssertExportsAsync(EngineHarness h, AsrProtectedItem item, Dictionary<long, string> sha)
    {
        foreach (var point in await h.Vault.GetPointsAsync(item, default))
            Assert.Equal(sha[point.Sequence], (await h.ExportHashesAsync(point))["sparse.img"]);
        await RetentionTestKit.AssertEveryListedPointVerifiesAsync(h.Vault, item);
    }

    [Fact]
    public async Task APointWithAKeptAncestor_IsRebasedToAMapOfWhatDiffers_AndReadsExactlyThroughItsAncestorsLaterRebaseAndPrune()
    {
        using var h = await EngineHarness.CreateAsync(Key);
        var (clock, sha, item) = await SparseSixPointsAsync(h, diskBytes: 64L << 20, dataBytes: 16L << 20, changedBytes: 256 << 10);
        string threeManifest = VaultLayout.PointManifest(item.Id, 3);
        byte[] threeBefore = (await h.Vault.Store.ReadAllAsync(threeManifest, default))!;

        // Pass 1: point 2 is pinned (in use), so 3 keeps its parent and stays as it is; 6 loses 5 and 4, and keeps 3.
        RetentionResult first;
        var two = await h.Vault.GetPointAsync(item.Id, 2, default);
        await using (await PointPin.AcquireAsync(h.Vault, two, "test", default))
            first = await ApplyAsync(h, item);
        Assert.Equal([1, 4, 5], first.PrunedSequences);
        Assert.Equal([2, 6], first.RebasedSequences);
        var six = await h.Vault.GetPointAsync(item.Id, 6, default);
        Assert.True(six.IndexRelativeToParent && six.ParentSequence == 3 && six.IndexGeneration == 1);
        Assert.Equal(threeBefore, await h.Vault.Store.ReadAllAsync(threeManifest, default));
        int relativeBytes = await MapBytesAsync(h.Vault, six);
        int fullBytes;
        using (var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, six, "disk0", default))
            fullBytes = FullMapIndex.Encode(reader.Map).Length;
        output.WriteLine($"point 6's relative map: {relativeBytes:N0} bytes; a full map of the same disk: {fullBytes:N0} bytes");
        Assert.True(relativeBytes * 10 < fullBytes, $"relative map {relativeBytes} bytes, full map {fullBytes}");
        await AssertExportsAsync(h, item, sha);

        // Pass 2: the pin is gone, 2 is pruned, so 3 (the ancestor 6 names) is rebased to a full map; 6 is left as it is.
        var second = await ApplyAsync(h, item);
        Assert.Equal([2], second.PrunedSequences);
        Assert.Equal([3], second.RebasedSequences);
        var three = await h.Vault.GetPointAsync(item.Id, 3, default);
        Assert.True(three.ParentSequence is null && !three.IndexRelativeToParent && three.IndexGeneration == 1);
        six = await h.Vault.GetPointAsync(item.Id, 6, default);
        Assert.True(six.IndexRelativeToParent && six.ParentSequence == 3 && six.IndexGeneration == 1);
        await AssertExportsAsync(h, item, sha);

        // Pass 3, a day later: 3 is past the 24 h retention and goes; 6 (the newest) is rebased once more, to a full map.
        clock.Advance(TimeSpan.FromHours(21));
        var third = await ApplyAsync(h, item);
        Assert.Equal([3], third.PrunedSequences);
        Assert.Equal([6], third.RebasedSequences);
        six = await h.Vault.GetPointAsync(item.Id, 6, default);
        Assert.True(six.ParentSequence is null && !six.IndexRelativeToParent && six.IndexGeneration == 2);
        output.WriteLine($"point 6's full map once 3 is pruned: {await MapBytesAsync(h.Vault, six):N0} bytes");
        await AssertExportsAsync(h, item, sha);
        Assert.Equal(await RetentionTestKit.PacksReferencedByListedPointsAsync(h.Vault, item), await RetentionTestKit.PacksInStoreAsync(h.Vault, item));
    }

    /// <summary>
    /// A relative point whose kept ancestor goes while an older point stays (pinned) is rebased relative to that one:
    /// its new map is what it differs in from the older point, and it still exports the source's bytes.
    /// </summary>
    [Fact]
    public async Task ARelativePointWhoseAncestorGoes_IsRebasedRelativeToTheNextKeptAncestor()
    {
        using var h = await EngineHarness.CreateAsync(Key);
        var (clock, sha, item) = await SparseSixPointsAsync(h, diskBytes: 16L << 20, dataBytes: 4L << 20, changedBytes: 64 << 10);
        var two = await h.Vault.GetPointAsync(item.Id, 2, default);
        await using var pin = await PointPin.AcquireAsync(h.Vault, two, "test", default);

        Assert.Equal([2, 6], (await ApplyAsync(h, item)).RebasedSequences);
        var six = await h.Vault.GetPointAsync(item.Id, 6, default);
        Assert.True(six.IndexRelativeToParent && six.ParentSequence == 3);

        // A day later 3 is past the retention; 2 stays (pinned): 6 is rebased relative to 2.
        clock.Advance(TimeSpan.FromHours(21));
        var result = await ApplyAsync(h, item);
        Assert.Equal([3], result.PrunedSequences);
        Assert.Equal([6], result.RebasedSequences);
        six = await h.Vault.GetPointAsync(item.Id, 6, default);
        Assert.True(six.IndexRelativeToParent && six.ParentSequence == 2 && six.IndexGeneration == 2);
        int relativeBytes = await MapBytesAsync(h.Vault, six), fullBytes;
        using (var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, six, "disk0", default))
            fullBytes = FullMapIndex.Encode(reader.Map).Length;
        Assert.True(relativeBytes * 3 < fullBytes, $"relative map {relativeBytes} bytes, full map {fullBytes}");
        await AssertExportsAsync(h, item, sha);
    }

    /// <summary>
    /// A manifest that says its maps are relative but names no parent would overlay them on nothing (zeros where the
    /// parent has data): it is refused as corrupt, never read.
    /// </summary>
    [Fact]
    public async Task AManifestWithARelativeMapButNoParent_IsRefusedAsCorrupt()
    {
        using var h = await EngineHarness.CreateAsync(Key);
        var (_, _, item) = await SparseSixPointsAsync(h, diskBytes: 16L << 20, dataBytes: 4L << 20, changedBytes: 64 << 10);
        await ApplyAsync(h, item);
        var six = await h.Vault.GetPointAsync(item.Id, 6, default);
        Assert.True(six.IndexRelativeToParent);
        six.ParentSequence = null;
        await h.Vault.Records.WriteAsync(VaultLayout.PointManifest(item.Id, 6), six, default);

        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetPointAsync(item.Id, 6, default));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains("relative to its parent", ex.Message);
    }

    /// <summary>A relative map that does not decode (a flipped byte) or decodes to a malformed map (planted, sealed as the engine seals).</summary>
    public static TheoryData<string> Damages => new() { "flipped", "planted past the disk" };

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task ADamagedRelativeMap_IsVaultDataCorruptNamingIt_AndOnlyItsPointIsAffected(string damage)
    {
        using var h = await EngineHarness.CreateAsync(Key);
        var (_, sha, item) = await SparseSixPointsAsync(h, diskBytes: 16L << 20, dataBytes: 4L << 20, changedBytes: 64 << 10);
        await ApplyAsync(h, item);
        var six = await h.Vault.GetPointAsync(item.Id, 6, default);
        Assert.True(six.IndexRelativeToParent);
        string key = VaultLayout.PointFullMap(item.Id, 6, "disk0", six.IndexGeneration);
        byte[] stored = (await h.Vault.Store.ReadAllAsync(key, default))!;
        if (damage == "flipped")
        {
            stored[^5] ^= 0x40;
            await h.Vault.Store.WriteAsync(key, stored, default);
        }
        else
        {
            long blocks = six.Disks[0].SizeBytes / six.Disks[0].BlockSize;
            var outside = new FlattenedSegment(new SourcedExtent(6, new ExtentRecord(blocks, 4, ExtentFlags.Compressed, 0, 0, 100, 1), six.Disks[0].SizeBytes), blocks, 4, 0);
            await h.Vault.Store.WriteAsync(key, MetadataSealer.Seal(RelativeMapIndex.Encode(six.Disks[0].SizeBytes, [outside]), h.Vault.Key, key), default);
        }

        var ex = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointDiskReader.OpenAsync(h.Vault, six, "disk0", default));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Equal(key, ex.Target);
        Assert.Contains(key, ex.Message);
        // Its ancestor reads and exports as before.
        var three = await h.Vault.GetPointAsync(item.Id, 3, default);
        Assert.Equal(sha[3], (await h.ExportHashesAsync(three))["sparse.img"]);
    }
}
