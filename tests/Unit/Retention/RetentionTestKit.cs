using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Retention;

/// <summary>Shared steps of the retention tests that drive a real vault.</summary>
internal static class RetentionTestKit
{
    /// <summary>
    /// Six points 20 minutes apart (00:10 … 01:50), each rewriting the same four blocks, judged at
    /// 03:55: hour 0 keeps point 3, hour 1 keeps point 6; 3 and 6 lose their parents, so both are
    /// rebased; the packs of 2, 4 and 5 hold nothing live; the base's pack is still read by both.
    /// </summary>
    public static async Task<(ManualClock Clock, Dictionary<long, string> Sha)> SixPointsAsync(EngineHarness h)
    {
        var clock = new ManualClock(new DateTimeOffset(2025, 3, 3, 0, 10, 0, TimeSpan.Zero));
        h.Vault.Clock = clock;
        string disk = h.Dir["six.img"];
        TestDisks.Create(disk, 1 << 20, 21);
        await h.Replication.RegisterAsync("six", [disk], "default", default);
        var sha = new Dictionary<long, string>();
        for (int i = 0; i < 6; i++)
        {
            if (i > 0)
            {
                clock.Advance(TimeSpan.FromMinutes(20));
                RewriteFirstBlocks(disk, seed: 100 + i, count: 4);
            }
            await h.CycleAsync("six");
            sha[(await LatestPointAsync(h.Vault, "six")).Sequence] = TestDisks.Sha256(disk);
        }
        clock.Set(new DateTimeOffset(2025, 3, 3, 3, 55, 0, TimeSpan.Zero));
        return (clock, sha);
    }

    /// <summary>The point the last cycle published, which carries the vault clock's (simulated) time.</summary>
    public static async Task<AsrRecoveryPoint> LatestPointAsync(AsrVault vault, string itemName)
    {
        var item = await vault.GetItemAsync(itemName, default);
        var point = (await vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(vault.Clock.GetUtcNow(), point.RecoveryPointTimeUtc);
        return point;
    }

    /// <summary>Overwrites <paramref name="count"/> random blocks among the first <paramref name="hotBlocks"/> with random data.</summary>
    public static void RewriteBlocks(string disk, Random rng, int count, int hotBlocks)
    {
        using var fs = new FileStream(disk, FileMode.Open, FileAccess.ReadWrite);
        var block = new byte[4096];
        for (int i = 0; i < count; i++)
        {
            rng.NextBytes(block);
            fs.Position = rng.Next(hotBlocks) * 4096L;
            fs.Write(block);
        }
    }

    /// <summary>Rewrites the same blocks [0, count) every time, so each cycle's pack dies with the next one.</summary>
    public static void RewriteFirstBlocks(string disk, int seed, int count)
    {
        using var fs = new FileStream(disk, FileMode.Open, FileAccess.ReadWrite);
        var data = new byte[count * 4096];
        new Random(seed).NextBytes(data);
        fs.Write(data);
    }

    /// <summary>Rebuilds every disk's block-hash table from the vault and compares it with the manifest's digest.</summary>
    public static async Task AssertEveryListedPointVerifiesAsync(AsrVault vault, AsrProtectedItem item)
    {
        foreach (var point in await vault.GetPointsAsync(item, default))
            foreach (var disk in point.Disks)
            {
                using var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, default);
                var table = await reader.ComputeBlockHashesAsync(default);
                Assert.True(disk.ContentDigest == AsrModule.Engine.Replication.TrackerTables.HashSegments.DigestOf(table, disk), $"point {point.Sequence} disk {disk.Name} does not verify");
            }
    }

    /// <summary>
    /// Packs the kept points need, found through the reader's maps (independently of the sweeper's
    /// own bookkeeping): every extent a map segment uses, plus each point's own packs.
    /// </summary>
    public static async Task<SortedSet<string>> PacksReferencedByListedPointsAsync(AsrVault vault, AsrProtectedItem item)
    {
        var packs = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var point in await vault.GetPointsAsync(item, default))
        {
            packs.UnionWith(point.Packs);
            foreach (var disk in point.Disks)
            {
                using var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, default);
                foreach (var segment in reader.Map.Segments)
                {
                    var extent = reader.Map.Extents[segment.ExtentRef];
                    packs.Add(reader.PackKey(segment.ExtentRef));
                }
            }
        }
        return packs;
    }

    public static async Task<SortedSet<string>> PacksInStoreAsync(AsrVault vault, AsrProtectedItem item) =>
        new((await vault.Store.ListAsync(VaultLayout.PacksPrefix(item.Id), default)).Select(o => o.Key), StringComparer.Ordinal);

    public static async Task<long> PackBytesAsync(AsrVault vault, AsrProtectedItem item, long? ofSequence = null) =>
        (await vault.Store.ListAsync(VaultLayout.PacksPrefix(item.Id), default))
            .Where(o => ofSequence is null || VaultLayout.SequenceOf(o.Key) == ofSequence).Sum(o => o.Length);

    public static async Task<List<long>> ListedSequencesAsync(AsrVault vault, AsrProtectedItem item) =>
        (await vault.GetPointsAsync(item, default)).Select(p => p.Sequence).Order().ToList();

    public static void CopyDirectory(string from, string to)
    {
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        Directory.CreateDirectory(to);
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
    }
}
