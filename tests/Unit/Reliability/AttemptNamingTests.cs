using AsrModule.Engine.Errors;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Retention;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging.Abstractions;

namespace AsrModule.Tests.Unit.Reliability;

/// <summary>
/// Issue #12 item 9: a cycle attempt names what it writes by its attempt id, so a writer whose lease lapsed cannot
/// replace the packs, indexes or trackers of the cycle that took the item over; points written before keep their names.
/// </summary>
public sealed class AttemptNamingTests
{
    /// <summary>
    /// The store of the session whose lease lapses: its first pack upload hangs (a request stuck through an outage)
    /// until released, and its item lock reads as lapsed once <see cref="Lapsed"/> is set (a blob lease not renewed).
    /// </summary>
    private sealed class StalledStore(IVaultStore inner) : IVaultStore
    {
        public readonly TaskCompletionSource PackStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public readonly TaskCompletionSource Release = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public volatile bool Lapsed;
        public string Location => inner.Location;

        public async Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct)
        {
            if (key.EndsWith(".pack", StringComparison.Ordinal) && PackStarted.TrySetResult()) await Release.Task.WaitAsync(ct);
            return await inner.TryCreateAsync(key, content, ct);
        }

        public bool LockLapsed(string key) => Lapsed;
        public Task<bool> ExistsAsync(string key, CancellationToken ct) => inner.ExistsAsync(key, ct);
        public Task<byte[]?> ReadAllAsync(string key, CancellationToken ct) => inner.ReadAllAsync(key, ct);
        public Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken ct) => inner.ReadRangeAsync(key, offset, destination, ct);
        public async Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken ct)
        {
            if (key.EndsWith(".pack", StringComparison.Ordinal) && PackStarted.TrySetResult()) await Release.Task.WaitAsync(ct);
            await inner.WriteAsync(key, content, ct);
        }
        public Task<VersionedObject?> ReadVersionedAsync(string key, CancellationToken ct) => inner.ReadVersionedAsync(key, ct);
        public Task<bool> TryReplaceAsync(string key, ReadOnlyMemory<byte> content, string version, CancellationToken ct) => inner.TryReplaceAsync(key, content, version, ct);
        public Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken ct) => inner.ListAsync(prefix, ct);
        public Task DeleteAsync(string key, CancellationToken ct) => inner.DeleteAsync(key, ct);
        public Task DeleteIncompleteAsync(string prefix, CancellationToken ct) => inner.DeleteIncompleteAsync(prefix, ct);
        public Task DeletePrefixAsync(string prefix, CancellationToken ct) => inner.DeletePrefixAsync(prefix, ct);
        public IDisposable? TryAcquireLock(string key) => inner.TryAcquireLock(key);
    }

    private static async Task<Dictionary<string, byte[]>> ObjectsAsync(AsrVault vault, string itemId)
    {
        var objects = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var o in await vault.Store.ListAsync(VaultLayout.ItemPrefix(itemId), default))
            if (!o.Key.EndsWith("/item.json", StringComparison.Ordinal)) objects[o.Key] = (await vault.Store.ReadAllAsync(o.Key, default))!;
        return objects;
    }

    /// <summary>
    /// Cycle A of point 2 stalls in its pack upload and loses its lease; cycle B takes the item over and publishes point 2;
    /// then A's upload goes through. B's point must still export bit-exact with none of its objects changed, A must fail
    /// with ProtectedItemBusy (whether or not it learns that its lease lapsed: when it does not, its manifest create loses),
    /// and the next cycle removes what A left.
    /// </summary>
    [Theory]
    [InlineData(true, null)]
    [InlineData(false, null)]
    [InlineData(true, "attempt key")]
    public async Task A_cycle_whose_lease_lapsed_cannot_change_the_point_of_the_cycle_that_took_over(bool lapseNoticed, string? key)
    {
        using var h = await EngineHarness.CreateAsync(key);
        var (disk, item) = await h.NewMachineAsync("m", 6L << 20, 31);
        TestDisks.ScatterWrites(disk, 0.05, 32);

        // Session A: another vault instance on the same directory, through the stalling store.
        var stalled = new StalledStore(new LocalDirectoryStore(h.Dir["vault"]));
        var vaultA = await AsrVault.OpenAsync(stalled, key, null, default);
        var serviceA = new ReplicationService(vaultA);
        var itemA = await vaultA.GetItemAsync("m", default);
        var leaseA = await serviceA.PrepareCycleAsync(itemA, false, default);
        var cycleA = serviceA.RunCycleAsync(itemA, false, new JobContext(new AsrJob { Id = Guid.NewGuid() }, default, null, NullLogger.Instance));
        await stalled.PackStarted.Task.WaitAsync(TimeSpan.FromSeconds(60));

        // A's lease lapses (its lock is free for another session); the source changes again; B takes over and publishes.
        leaseA.Dispose();
        stalled.Lapsed = lapseNoticed;
        TestDisks.ScatterWrites(disk, 0.05, 33);
        string shaB = TestDisks.Sha256(disk);
        var resultB = await h.CycleAsync("m");
        Assert.Equal(2, resultB.RecoveryPointSequence);
        var pointB = await h.Vault.GetPointAsync(item.Id, 2, default);
        var objectsB = await ObjectsAsync(h.Vault, item.Id);

        // A goes on: its pack lands under its own name; it writes nothing of B's and publishes nothing.
        stalled.Release.SetResult();
        var error = await Assert.ThrowsAsync<AsrException>(() => cycleA);
        Assert.Equal(AsrErrorIds.ProtectedItemBusy, error.ErrorId);
        var objectsAfter = await ObjectsAsync(h.Vault, item.Id);
        foreach (var (k, bytes) in objectsB)
            Assert.True(objectsAfter.TryGetValue(k, out var now) && now.AsSpan().SequenceEqual(bytes), $"'{k}' of point 2 changed");
        string packA = Assert.Single(objectsAfter.Keys, k => k.Contains("/packs/", StringComparison.Ordinal) && !objectsB.ContainsKey(k));
        var latest = await h.Vault.GetLatestPointAsync(item.Id, default);
        Assert.Equal(pointB.PointId, latest!.PointId);
        Assert.Equal(shaB, (await h.ExportHashesAsync(latest))["d.img"]);

        // Retention's sweep collects A's pack (a listed sequence, another attempt) and keeps B's.
        UnreferencedObjectSweeper.SweepResult swept;
        using (h.Replication.AcquireLease(item))
            swept = await UnreferencedObjectSweeper.SweepAsync(h.Vault, item, default);
        Assert.Equal([packA], swept.DeletedPacks);
        Assert.All(pointB.Packs, p => Assert.True(h.Vault.Store.ExistsAsync(p, default).Result, p));

        // The next cycle deletes A's objects (same sequence, another attempt) and publishes an exact point.
        TestDisks.ScatterWrites(disk, 0.02, 34);
        await h.CycleAsync("m");
        var point3 = await h.Vault.GetPointAsync(item.Id, 3, default);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(point3))["d.img"]);
        Assert.Equal(shaB, (await h.ExportHashesAsync(pointB))["d.img"]);
        foreach (var k in (await ObjectsAsync(h.Vault, item.Id)).Keys)
            if (VaultLayout.TryParseObjectKey(k, out long sequence, out string? attempt) && sequence == 2)
                Assert.Equal(pointB.AttemptId, attempt);
    }

    /// <summary>Every object a point writes carries its attempt id, and two cycles never share one.</summary>
    [Fact]
    public async Task Each_attempt_names_its_objects_with_its_own_id()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("m", 2L << 20, 41);
        TestDisks.ScatterWrites(disk, 0.05, 42);
        await h.CycleAsync("m");
        var points = await h.Vault.GetPointsAsync(item, default);
        Assert.All(points, p => Assert.True(VaultLayout.IsValidAttemptId(p.AttemptId)));
        Assert.NotEqual(points[0].AttemptId, points[1].AttemptId);
        foreach (var k in (await ObjectsAsync(h.Vault, item.Id)).Keys)
            if (VaultLayout.TryParseObjectKey(k, out long sequence, out string? attempt))
                Assert.Equal(points.Single(p => p.Sequence == sequence).AttemptId, attempt);
    }

    /// <summary>
    /// A point written before attempts were named (no attempt id; packs, index and tracker without one) still reads, a
    /// delta over it uses its tracker, and retention's sweep keeps its objects.
    /// </summary>
    [Theory]
    [InlineData(null)]
    [InlineData("old format key")]
    public async Task Points_without_an_attempt_id_keep_their_names_and_read(string? key)
    {
        using var h = await EngineHarness.CreateAsync(key);
        var (disk, item) = await h.NewMachineAsync("m", 4L << 20, 51);
        string sha1 = TestDisks.Sha256(disk);
        // Rewrite point 1 as an earlier version wrote it. Sealed indexes and trackers are bound to their key: seal them anew.
        var point = await h.Vault.GetPointAsync(item.Id, 1, default);
        string attempt = point.AttemptId!;
        // Its tracker was one whole table then.
        var table = (await Engine.Replication.TrackerTables.StoredTrackers.ReadWholeAsync(h.Vault, item.Id, item.Disks[0], point, default))!;
        string oldTracker = VaultLayout.Tracker(item.Id, "disk0", 1, null);
        await h.Vault.Store.WriteAsync(oldTracker, Engine.Security.MetadataSealer.Seal(table.ToBytes(), h.Vault.Key, oldTracker), default);
        foreach (var (k, bytes) in await ObjectsAsync(h.Vault, item.Id))
        {
            if (!k.Contains("." + attempt, StringComparison.Ordinal)) continue;
            if (k.Contains("/tracker/", StringComparison.Ordinal)) { await h.Vault.Store.DeleteAsync(k, default); continue; }
            string old = k.Replace("." + attempt, "", StringComparison.Ordinal);
            byte[] content = k.Contains("/packs/", StringComparison.Ordinal) ? bytes
                : Engine.Security.MetadataSealer.Seal(Engine.Security.MetadataSealer.Open(bytes, h.Vault.Key, k), h.Vault.Key, old);
            await h.Vault.Store.WriteAsync(old, content, default);
            await h.Vault.Store.DeleteAsync(k, default);
        }
        point.AttemptId = null;
        point.FormatVersion = 1;
        point.Packs = point.Packs.Select(p => p.Replace("." + attempt, "", StringComparison.Ordinal)).ToList();
        await h.Vault.Records.WriteAsync(VaultLayout.PointManifest(item.Id, 1), point, default);
        Assert.All((await ObjectsAsync(h.Vault, item.Id)).Keys.Where(k => !k.Contains("/points/")),
            k => Assert.True(VaultLayout.TryParseObjectKey(k, out _, out string? a) && a is null, k));

        var old1 = await h.Vault.GetPointAsync(item.Id, 1, default);
        Assert.Null(old1.AttemptId);
        Assert.Equal(sha1, (await h.ExportHashesAsync(old1))["d.img"]);
        TestDisks.ScatterWrites(disk, 0.03, 52);
        var delta = await h.CycleAsync("m");
        Assert.Equal("Delta", delta.Mode); // the old-named tracker was found
        using (h.Replication.AcquireLease(item))
            await UnreferencedObjectSweeper.SweepAsync(h.Vault, item, default);
        Assert.Equal(sha1, (await h.ExportHashesAsync(old1))["d.img"]);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(await h.Vault.GetPointAsync(item.Id, 2, default)))["d.img"]);
    }
}
