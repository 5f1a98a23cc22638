using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using AsrModule.Tests.Unit.Agent;

namespace AsrModule.Tests.Unit.Vault;

/// <summary>
/// A cycle's requests must not grow with the points an item keeps (issue #15): retention, the sweep and the repack each
/// list the item's points, and each listing used to read every manifest again. Manifests are now read once per
/// version (<see cref="ManifestCache"/>); one replaced since is read again.
/// </summary>
public sealed class ManifestCacheTests
{
    private static async Task<(EngineHarness H, CountingStore Store, TempDir Dir)> ItemWithPointsAsync(int points)
    {
        var dir = new TempDir();
        var store = new CountingStore(new LocalDirectoryStore(dir["vault"]));
        var h = await EngineHarness.CreateAsync(key: "manifest-cache-passphrase", store: store);
        await h.NewMachineAsync("m", 256 * 1024, 3);
        for (int i = 1; i < points; i++) await ChangedCycleAsync(h, i);
        return (h, store, dir);
    }

    /// <summary>A block of the disk rewritten, then a cycle: a new point.</summary>
    private static async Task ChangedCycleAsync(EngineHarness h, int n)
    {
        using (var fs = new FileStream(h.Dir["d.img"], FileMode.Open, FileAccess.Write))
        {
            fs.Position = n % 64 * 4096L;
            var block = new byte[4096];
            new Random(100 + n).NextBytes(block);
            fs.Write(block);
        }
        await h.CycleAsync("m");
    }

    private static int ManifestReads(CountingStore store) => store.ReadKeys.Count(k => k.Contains("/points/", StringComparison.Ordinal) && k.EndsWith(".json", StringComparison.Ordinal));

    [Fact]
    public async Task ACycleReadsOnlyTheManifestsItDidNotReadBefore_WhateverTheItemKeeps()
    {
        var (h, store, dir) = await ItemWithPointsAsync(12);
        using var _ = h; using var __ = dir;
        Assert.Equal(12, (await h.Vault.GetPointsAsync(await h.Vault.GetItemAsync("m", default), default)).Count);

        store.Reset();
        await ChangedCycleAsync(h, 12);
        int reads = ManifestReads(store);
        // The new point's manifest (the cycle created it: first read after its listing) and nothing of the 12 before.
        Assert.InRange(reads, 0, 1);

        // A listing from another process (a fresh vault over the same store) reads each manifest once, then none again.
        var other = await AsrModule.Engine.Vault.AsrVault.OpenAsync(store, "manifest-cache-passphrase", null, default);
        var item = await other.GetItemAsync("m", default);
        store.Reset();
        Assert.Equal(13, (await other.GetPointsAsync(item, default)).Count);
        Assert.Equal(12, ManifestReads(store)); // the latest was read (and kept) when GetItemAsync showed it
        store.Reset();
        Assert.Equal(13, (await other.GetPointsAsync(item, default)).Count);
        Assert.Equal(0, ManifestReads(store));
    }

    [Fact]
    public async Task AManifestReplacedByAnotherProcessIsReadAgain()
    {
        var (h, store, dir) = await ItemWithPointsAsync(3);
        using var _ = h; using var __ = dir;
        var item = await h.Vault.GetItemAsync("m", default);
        var before = await h.Vault.GetPointsAsync(item, default);
        Assert.NotEqual("replaced", before[1].ConsistencyEvidence);

        // Another process replaces point 2's manifest (as a rebase or repack does).
        var other = await AsrModule.Engine.Vault.AsrVault.OpenAsync(new LocalDirectoryStore(dir["vault"]), "manifest-cache-passphrase", null, default);
        var manifest = await other.GetPointAsync(item.Id, before[1].Sequence, default);
        manifest.ConsistencyEvidence = "replaced";
        await other.Records.WriteAsync(VaultLayout.PointManifest(item.Id, manifest.Sequence), manifest, default);

        store.Reset();
        var after = await h.Vault.GetPointsAsync(item, default);
        Assert.Equal("replaced", after[1].ConsistencyEvidence);
        Assert.Equal(1, ManifestReads(store));
    }

    [Fact]
    public async Task WhatComesOutIsCheckedAgain_AndEachCallGetsItsOwnCopy()
    {
        var (h, store, dir) = await ItemWithPointsAsync(2);
        using var _ = h; using var __ = dir;
        var item = await h.Vault.GetItemAsync("m", default);
        var first = await h.Vault.GetPointsAsync(item, default);
        first[0].ParentSequence = 99; // a caller changing its copy (retention does) must not change what the next one gets
        store.Reset();
        var second = await h.Vault.GetPointsAsync(item, default);
        Assert.Equal(0, ManifestReads(store));
        Assert.Null(second[0].ParentSequence);
        Assert.NotSame(first[0], second[0]);
    }

    [Fact]
    public void TheCacheStaysWithinItsBound_ForgettingTheItemsListedLongestAgo()
    {
        var cache = new ManifestCache(maxBytes: 10_000);
        for (int item = 0; item < 10; item++)
            for (int point = 0; point < 4; point++)
                cache.Put($"i{item}", $"items/i{item}/points/{point}.json", "v1", new byte[500]);
        Assert.InRange(cache.Bytes, 1, 10_000);
        Assert.NotNull(cache.TryGet("i9", "items/i9/points/3.json", "v1")); // the newest item stays
        Assert.Null(cache.TryGet("i0", "items/i0/points/0.json", "v1"));     // the oldest went
        Assert.Null(cache.TryGet("i9", "items/i9/points/3.json", "v2"));     // another version is not this one
        Assert.Null(cache.TryGet("i9", "items/i9/points/3.json", null));     // a store without versions is never served

        cache.KeepOnly("i9", new HashSet<string> { "items/i9/points/3.json" });
        Assert.Null(cache.TryGet("i9", "items/i9/points/2.json", "v1"));
        Assert.NotNull(cache.TryGet("i9", "items/i9/points/3.json", "v1"));
    }
}
