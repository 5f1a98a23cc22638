using AsrModule.Engine.Errors;
using System.Diagnostics;
using AsrModule.Engine.Items;
using AsrModule.Engine.Retention;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Retention;

public class RetentionServiceTests(ITestOutputHelper output)
{
    private static readonly TimeSpan CycleInterval = TimeSpan.FromMinutes(5);

    private static async Task<RetentionResult> ApplyRetentionAsync(EngineHarness h, string name)
    {
        var item = await h.Vault.GetItemAsync(name, default);
        using (h.Replication.AcquireLease(item))
            return await RetentionService.ApplyAsync(h.Vault, item, default);
    }

    [Fact]
    public async Task RetentionOverASimulatedDayOfPoints_KeepsExactlyThePolicysWindow()
    {
        var watch = Stopwatch.StartNew();
        using var h = await EngineHarness.CreateAsync();
        var clock = new ManualClock(new DateTimeOffset(2025, 3, 1, 21, 3, 0, TimeSpan.Zero));
        h.Vault.Clock = clock;
        string disk = h.Dir["day.img"];
        TestDisks.Create(disk, 1 << 20, 7);
        await h.Replication.RegisterAsync("day", [disk], "default", default);
        var rng = new Random(11);
        var shaBySequence = new Dictionary<long, string>();
        var timeBySequence = new Dictionary<long, DateTimeOffset>();
        long packBytesWithoutRetention = 0, rebases = 0, packsDeleted = 0;

        int cycles = 26 * 12 + 8; // 26 h 35 min of points, one every 5 minutes
        for (int cycle = 0; cycle < cycles; cycle++)
        {
            if (cycle > 0)
            {
                clock.Advance(CycleInterval);
                // A few blocks of a small hot region: most versions are overwritten within the hour,
                // so the packs of thinned-out points really can go.
                RetentionTestKit.RewriteBlocks(disk, rng, count: 3, hotBlocks: 8);
            }
            await h.CycleAsync("day");
            var point = await RetentionTestKit.LatestPointAsync(h.Vault, "day");
            shaBySequence[point.Sequence] = TestDisks.Sha256(disk);
            timeBySequence[point.Sequence] = point.RecoveryPointTimeUtc;
            // Without retention nothing ever deletes a pack: the sum of what each cycle stored.
            packBytesWithoutRetention += await RetentionTestKit.PackBytesAsync(h.Vault, await h.Vault.GetItemAsync("day", default), point.Sequence);

            var result = await ApplyRetentionAsync(h, "day");
            rebases += result.RebasedSequences.Count;
            packsDeleted += result.DeletedPacks.Count;
        }
        var cyclesDone = watch.Elapsed;

        // Expected, from the policy's words: everything of the last 2 h, the newest of each clock
        // hour back to 24 h (the default policy's retention), nothing older.
        var now = clock.GetUtcNow();
        var expected = timeBySequence.Where(p => now - p.Value <= TimeSpan.FromHours(2)).Select(p => p.Key)
            .Concat(timeBySequence.Where(p => now - p.Value > TimeSpan.FromHours(2) && now - p.Value <= TimeSpan.FromHours(24))
                .GroupBy(p => new DateTime(p.Value.Year, p.Value.Month, p.Value.Day, p.Value.Hour, 0, 0))
                .Select(g => g.MaxBy(p => p.Value).Key))
            .Distinct().Order().ToList();
        var item = await h.Vault.GetItemAsync("day", default);
        var listed = await RetentionTestKit.ListedSequencesAsync(h.Vault, item);
        Assert.Equal(expected, listed);
        // Now is 23:38: 25 points from 21:38 on (both ends), then the hours 21 (its part before 21:38)
        // back to 23 of the day before (its part from 23:38): 23 clock hours.
        Assert.Equal(25 + 23, listed.Count);
        // Cycles apply retention themselves (ReplicationService.RunCycleAsync), so the explicit pass above
        // usually finds nothing left to do: the rebased points in the vault show the work was done.
        var rebased = (await h.Vault.GetPointsAsync(item, default)).Count(p => p.IndexGeneration > 0);
        Assert.True(rebased > 0, $"rebased points listed: {rebased} (explicit pass: rebases {rebases}, packs deleted {packsDeleted})");

        // Every kept point restores to the exact bytes the disk had when it was taken (export verifies the digest too).
        foreach (var point in await h.Vault.GetPointsAsync(item, default))
            Assert.True(shaBySequence[point.Sequence] == (await h.ExportHashesAsync(point))["day.img"], $"point {point.Sequence} restores wrong bytes");

        // The packs left are exactly those a kept point's map still reads from.
        Assert.Equal(await RetentionTestKit.PacksReferencedByListedPointsAsync(h.Vault, item), await RetentionTestKit.PacksInStoreAsync(h.Vault, item));
        long packBytes = await RetentionTestKit.PackBytesAsync(h.Vault, item);
        long basePackBytes = await RetentionTestKit.PackBytesAsync(h.Vault, item, ofSequence: 1);
        output.WriteLine($"{cycles} cycles over {now - timeBySequence[1]}: kept {listed.Count} points, {rebases} rebases, {packsDeleted} packs deleted");
        output.WriteLine($"pack bytes: {packBytes:N0} with retention vs {packBytesWithoutRetention:N0} without ({100.0 * packBytes / packBytesWithoutRetention:F1}%), base pack {basePackBytes:N0}");
        output.WriteLine($"vault bytes now: {h.VaultBytes():N0}; cycles+retention {cyclesDone.TotalSeconds:F1} s, total {watch.Elapsed.TotalSeconds:F1} s");
        // The base point's pack (the whole disk) stays: most of its blocks are never rewritten. Of what
        // the cycles stored after it, less than half is still needed.
        Assert.True(packBytes - basePackBytes < (packBytesWithoutRetention - basePackBytes) / 2,
            $"pack bytes {packBytes} vs {packBytesWithoutRetention} without retention (base pack {basePackBytes})");
    }

    private static async Task<(EngineHarness H, ManualClock Clock, Dictionary<long, string> Sha)> SixPointsAsync(string? key)
    {
        var h = await EngineHarness.CreateAsync(key);
        var (clock, sha) = await RetentionTestKit.SixPointsAsync(h);
        return (h, clock, sha);
    }

    [Fact]
    public async Task PruningThroughAChain_RebasesKeptDescendants_AndReclaimsDeadPacks()
    {
        var (h, _, sha) = await SixPointsAsync(null);
        using var _h = h;
        var item = await h.Vault.GetItemAsync("six", default);
        var before = (await h.Vault.GetPointsAsync(item, default)).ToDictionary(p => p.Sequence);
        var result = await ApplyRetentionAsync(h, "six");

        Assert.Equal([1, 2, 4, 5], result.PrunedSequences);
        Assert.Equal([3, 6], result.RebasedSequences);
        Assert.Equal(new[] { 2L, 4, 5 }.Select(s => VaultLayout.Pack(item.Id, s, before[s].AttemptId, 0)), result.DeletedPacks);
        Assert.True(result.PackBytesReclaimed > 0 && result.BytesReclaimed > result.PackBytesReclaimed);
        var points = await h.Vault.GetPointsAsync(item, default);
        // 3 has no kept ancestor: a full map. 6 keeps 3: a map relative to it, which names it as its parent.
        var three = points.Single(p => p.Sequence == 3);
        var six = points.Single(p => p.Sequence == 6);
        Assert.True(three.ParentSequence is null && three.IndexGeneration == 1 && !three.IndexRelativeToParent);
        Assert.True(six.ParentSequence == 3 && six.IndexGeneration == 1 && six.IndexRelativeToParent);
        foreach (var p in points) Assert.Equal(sha[p.Sequence], (await h.ExportHashesAsync(p))["six.img"]);
        // Only the current maps remain as indexes.
        var indexes = (await h.Vault.Store.ListAsync(VaultLayout.IndexPrefix(item.Id), default)).Select(o => o.Key);
        Assert.Equal([VaultLayout.PointFullMap(item.Id, 3, "disk0", 1), VaultLayout.PointFullMap(item.Id, 6, "disk0", 1)], indexes);

        // A second pass has nothing left to do; the next cycle chains on the rebased point as usual.
        var again = await ApplyRetentionAsync(h, "six");
        Assert.Empty(again.PrunedSequences);
        Assert.Empty(again.DeletedPacks);
        RetentionTestKit.RewriteFirstBlocks(h.Dir["six.img"], seed: 999, count: 2);
        await h.CycleAsync("six");
        var seventh = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(6, seventh.ParentSequence);
        Assert.Equal(TestDisks.Sha256(h.Dir["six.img"]), (await h.ExportHashesAsync(seventh))["six.img"]);
    }

    /// <summary>
    /// A kept point whose chain holds a damaged index cannot be rebased: retention keeps the points it reads through
    /// and goes on with the rest (before, the failed rebase stopped all pruning of the item, every cycle). The other
    /// kept point is rebased and every listed point that does not read the damage still exports exactly.
    /// </summary>
    [Fact]
    public async Task AKeptPointWhoseChainIsDamaged_KeepsItsChain_AndRetentionGoesOnWithTheRest()
    {
        var (h, _, sha) = await SixPointsAsync(null);
        using var _h = h;
        var item = await h.Vault.GetItemAsync("six", default);
        var five = await h.Vault.GetPointAsync(item.Id, 5, default);
        Untrusted.VaultTamper.Truncate(Untrusted.VaultTamper.PathOf(h, VaultLayout.PointIndex(five, "disk0")), 10);

        var result = await ApplyRetentionAsync(h, "six");

        // 6 reads through 5 and 4 down to 3 (kept): those stay; 1 and 2 go; 3 is rebased as before.
        Assert.Equal([1, 2], result.PrunedSequences);
        Assert.Equal([3], result.RebasedSequences);
        Assert.Equal([3, 4, 5, 6], await RetentionTestKit.ListedSequencesAsync(h.Vault, item));
        foreach (var s in new long[] { 3, 4 })
            Assert.Equal(sha[s], (await h.ExportHashesAsync(await h.Vault.GetPointAsync(item.Id, s, default)))["six.img"]);
        var damaged = await Assert.ThrowsAsync<AsrException>(async () => await h.ExportHashesAsync(await h.Vault.GetPointAsync(item.Id, 6, default)));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, damaged.ErrorId);
    }

    [Fact]
    public async Task AnInterruptionAtAnyStep_LeavesEveryListedPointVerifying_AndARerunFinishesTheJob()
    {
        const string key = "retention crash key";
        var (h, clock, _) = await SixPointsAsync(key);
        using var _h = h;
        string pristine = h.Dir["vault"];
        string itemId = (await h.Vault.GetItemAsync("six", default)).Id;

        async Task<AsrVault> OpenCopyAsync(string name, int failAtMutation)
        {
            string copy = h.Dir[name];
            RetentionTestKit.CopyDirectory(pristine, copy);
            var vault = await AsrVault.OpenAsync(new FaultyStore(new LocalDirectoryStore(copy), failAtMutation), key, null, default);
            vault.Clock = clock;
            return vault;
        }
        async Task<List<string>> ItemObjectsAsync(AsrVault vault) =>
            (await vault.Store.ListAsync(VaultLayout.ItemPrefix(itemId), default)).Select(o => o.Key).ToList();

        var uninterrupted = await OpenCopyAsync("uninterrupted", int.MaxValue);
        await RetentionService.ApplyAsync(uninterrupted, await uninterrupted.GetItemAsync("six", default), default);
        var finalObjects = await ItemObjectsAsync(uninterrupted);

        int crashes = 0;
        bool sawRebasedWithPrunedStillListed = false;
        for (int failAt = 1; ; failAt++)
        {
            var vault = await OpenCopyAsync($"crash-{failAt}", failAt);
            var item = await vault.GetItemAsync("six", default);
            try
            {
                await RetentionService.ApplyAsync(vault, item, default);
                break; // past the last mutation: nothing left to interrupt
            }
            catch (SimulatedCrashException)
            {
                crashes++;
            }

            // After the "crash", a fresh process opens the vault: every point it lists reads and verifies.
            var reopened = await AsrVault.OpenAsync(new LocalDirectoryStore(h.Dir[$"crash-{failAt}"]), key, null, default);
            reopened.Clock = clock;
            await RetentionTestKit.AssertEveryListedPointVerifiesAsync(reopened, item);
            var listed = await reopened.GetPointsAsync(item, default);
            sawRebasedWithPrunedStillListed |= listed.Any(p => p.IndexGeneration > 0) && listed.Any(p => p.Sequence is 1 or 2 or 4 or 5);

            // The re-run completes what the interrupted pass left, to the same end state.
            await RetentionService.ApplyAsync(reopened, item, default);
            Assert.Equal(finalObjects, await ItemObjectsAsync(reopened));
            await RetentionTestKit.AssertEveryListedPointVerifiesAsync(reopened, item);
        }
        output.WriteLine($"interrupted at each of {crashes} mutations");
        // 2 rebases × (full map + manifest), 4 manifests, 6 indexes, 3 packs.
        Assert.Equal(2 * 2 + 4 + 6 + 3, crashes);
        Assert.True(sawRebasedWithPrunedStillListed, "no interruption fell between a rebase and the deletes");
    }

    [Fact]
    public async Task PointsADrillOrAFailoverUses_AreNeverPruned_EvenWhenTheCallerPassesAStaleItem()
    {
        var (h, _, sha) = await SixPointsAsync(null);
        using var _h = h;
        var stale = await h.Vault.GetItemAsync("six", default);
        await h.Vault.UpdateItemAsync(stale.Id, i =>
        {
            i.TestFailover = new TestFailoverRecord { Id = Guid.NewGuid(), RecoveryPointSequence = 2 };
            i.Failover = new FailoverRecord { RecoveryPointSequence = 4 };
        }, default);

        RetentionResult result;
        using (h.Replication.AcquireLease(stale))
            result = await RetentionService.ApplyAsync(h.Vault, stale, default);

        Assert.Equal([2, 3, 4, 6], result.KeptSequences);
        Assert.Equal([1, 5], result.PrunedSequences);
        Assert.Equal([2, 6], result.RebasedSequences);
        foreach (var p in await h.Vault.GetPointsAsync(stale, default))
            Assert.Equal(sha[p.Sequence], (await h.ExportHashesAsync(p))["six.img"]);

        // Once the drill is cleaned up and the failover cancelled, their points go like any other.
        await h.Vault.UpdateItemAsync(stale.Id, i => { i.TestFailover = null; i.Failover = null; }, default);
        var later = await ApplyRetentionAsync(h, "six");
        Assert.Equal([3, 6], later.KeptSequences);
        Assert.Equal([2, 4], later.PrunedSequences);
    }
}
