using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using AsrModule.Engine.Items;
using AsrModule.Engine.Retention;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Retention;

/// <summary>
/// Retention gives space back inside packs (issue #15, item 5): after thinning, the live extents of mostly-dead packs
/// are copied into new packs, the kept points' maps are pointed at them, and the old packs go, so the item's vault
/// bytes stay within 1.3x of the live data of its kept points; an interruption at any step leaves every listed point
/// verifying and a re-run finishes the job.
/// </summary>
public class RepackTests(ITestOutputHelper output)
{
    private const double Bound = 1.3;

    /// <summary>
    /// Twelve points 10 minutes apart (00:05 … 01:55) on a 1 MiB random disk, each rewriting 128 random blocks, judged
    /// at 03:58 (every point older than 2 hours): hour 0 keeps point 6, hour 1 keeps point 12, everything else goes. The pruned points' packs are still
    /// read in places (blocks not rewritten before the kept point), so the sweep alone keeps all of them whole. Point 6
    /// is rebased to a full map (no kept ancestor), point 12 to a map relative to 6: the repack rewrites both kinds.
    /// </summary>
    private static async Task<(EngineHarness H, ManualClock Clock, Dictionary<long, string> Sha)> ChurnedVaultAsync(string? key)
    {
        var h = await EngineHarness.CreateAsync(key);
        var clock = new ManualClock(new DateTimeOffset(2025, 3, 3, 0, 5, 0, TimeSpan.Zero));
        h.Vault.Clock = clock;
        string disk = h.Dir["churn.img"];
        TestDisks.CreateRandom(disk, 1 << 20, 5);
        await h.Replication.RegisterAsync("churn", [disk], "default", default);
        var rng = new Random(17);
        var sha = new Dictionary<long, string>();
        for (int i = 0; i < 12; i++)
        {
            if (i > 0)
            {
                clock.Advance(TimeSpan.FromMinutes(10));
                RetentionTestKit.RewriteBlocks(disk, rng, count: 128, hotBlocks: 256);
            }
            await h.CycleAsync("churn");
            sha[(await RetentionTestKit.LatestPointAsync(h.Vault, "churn")).Sequence] = TestDisks.Sha256(disk);
        }
        clock.Set(new DateTimeOffset(2025, 3, 3, 3, 58, 0, TimeSpan.Zero));
        return (h, clock, sha);
    }

    /// <summary>
    /// The live data of the listed points, from their maps as the readers build them: the stored length of every
    /// extent a map segment reads, each once (a partly overwritten extent is live whole: its ciphertext cannot be cut).
    /// </summary>
    internal static async Task<long> LiveBytesAsync(AsrVault vault, AsrProtectedItem item)
    {
        var extents = new Dictionary<(string Pack, long Offset), int>();
        foreach (var point in await vault.GetPointsAsync(item, default))
            foreach (var disk in point.Disks)
            {
                using var reader = await RecoveryPointDiskReader.OpenAsync(vault, point, disk.DiskId, default);
                foreach (var segment in reader.Map.Segments)
                {
                    var extent = reader.Map.Extents[segment.ExtentRef];
                    extents[(reader.PackKey(segment.ExtentRef), extent.Record.PackOffset)] = extent.Record.StoredLength;
                }
            }
        return extents.Values.Sum(n => (long)n);
    }

    /// <summary>Everything the vault stores for the item: packs, indexes, full maps, manifests, its record.</summary>
    internal static async Task<long> ItemBytesAsync(AsrVault vault, AsrProtectedItem item) =>
        (await vault.Store.ListAsync(VaultLayout.ItemPrefix(item.Id), default)).Sum(o => o.Length);

    [Theory]
    [InlineData(null)]
    [InlineData("repack key")]
    public async Task ThinningThatLeavesPacksMostlyDead_IsRepacked_ToWithinTheBound_AndEveryKeptPointExportsExactly(string? key)
    {
        var (h, _, sha) = await ChurnedVaultAsync(key);
        using var _h = h;
        var item = await h.Vault.GetItemAsync("churn", default);
        long before = await ItemBytesAsync(h.Vault, item);

        RetentionResult result;
        using (h.Replication.AcquireLease(item))
            result = await RetentionService.ApplyAsync(h.Vault, item, default);

        Assert.Equal([6, 12], result.KeptSequences);
        Assert.NotEmpty(result.RepackedSequences);
        Assert.Equal([6, 12], result.RepackRewrittenSequences);
        // Point 12's relative map read moved extents: rewritten under the next generation, still relative to 6.
        var twelve = await h.Vault.GetPointAsync(item.Id, 12, default);
        Assert.True(twelve.IndexRelativeToParent && twelve.ParentSequence == 6 && twelve.IndexGeneration == 2);
        long live = await LiveBytesAsync(h.Vault, item);
        long after = await ItemBytesAsync(h.Vault, item);
        output.WriteLine($"{(key is null ? "plain" : "encrypted")}: item bytes {before:N0} before retention, {after:N0} after; live {live:N0}: " +
            $"{(double)after / live:F3}x (packs {(double)await RetentionTestKit.PackBytesAsync(h.Vault, item) / live:F3}x); " +
            $"repacked points {string.Join(",", result.RepackedSequences)}, copied {result.RepackCopiedBytes:N0} bytes, deleted {result.DeletedPacks.Count} packs");
        Assert.True(before > Bound * live, $"the scenario does not leave packs mostly dead: {before} vs live {live}");
        Assert.True(after <= Bound * live, $"item bytes {after} > {Bound} x live {live}");

        // Nothing but what the kept points read is left, and every kept point exports the source's bytes at its time.
        Assert.Equal(await RetentionTestKit.PacksReferencedByListedPointsAsync(h.Vault, item), await RetentionTestKit.PacksInStoreAsync(h.Vault, item));
        foreach (var point in await h.Vault.GetPointsAsync(item, default))
            Assert.Equal(sha[point.Sequence], (await h.ExportHashesAsync(point))["churn.img"]);
        await RetentionTestKit.AssertEveryListedPointVerifiesAsync(h.Vault, item);

        // Repacked packs are 100% live: a second pass has nothing to move.
        using (h.Replication.AcquireLease(item))
            result = await RetentionService.ApplyAsync(h.Vault, item, default);
        Assert.Empty(result.RepackedSequences);
        Assert.Empty(result.DeletedPacks);

        // The next cycle chains on the repacked point as usual.
        RetentionTestKit.RewriteFirstBlocks(h.Dir["churn.img"], seed: 3, count: 2);
        await h.CycleAsync("churn");
        var next = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(12, next.ParentSequence);
        Assert.Equal(TestDisks.Sha256(h.Dir["churn.img"]), (await h.ExportHashesAsync(next))["churn.img"]);
    }

    /// <summary>
    /// A reader pinning a kept point holds its map: nothing it reads is moved while the pin lasts (the points stay
    /// readable through the map it already holds); once released, the next pass repacks.
    /// </summary>
    [Fact]
    public async Task APinnedPoint_KeepsItsPacksWhereTheyAre_UntilReleased()
    {
        var (h, _, sha) = await ChurnedVaultAsync(null);
        using var _h = h;
        var item = await h.Vault.GetItemAsync("churn", default);
        var twelve = await h.Vault.GetPointAsync(item.Id, 12, default);
        RetentionResult result;
        await using (var pin = await PointPin.AcquireAsync(h.Vault, twelve, "test", default))
        {
            using var held = await RecoveryPointDiskReader.OpenAsync(h.Vault, pin.Point, "disk0", default);
            using (h.Replication.AcquireLease(item))
                result = await RetentionService.ApplyAsync(h.Vault, item, default);
            Assert.DoesNotContain(12L, result.RepackRewrittenSequences);
            // The map the reader opened before retention still reads the exact bytes.
            var table = await held.ComputeBlockHashesAsync(default);
            Assert.Equal(pin.Point.Disks[0].ContentDigest, AsrModule.Engine.Replication.TrackerTables.HashSegments.DigestOf(table, pin.Point.Disks[0]));
        }
        using (h.Replication.AcquireLease(item))
            result = await RetentionService.ApplyAsync(h.Vault, item, default);
        Assert.Contains(12L, result.RepackRewrittenSequences);
        foreach (var point in await h.Vault.GetPointsAsync(item, default))
            Assert.Equal(sha[point.Sequence], (await h.ExportHashesAsync(point))["churn.img"]);
        long live = await LiveBytesAsync(h.Vault, item);
        Assert.True(await ItemBytesAsync(h.Vault, item) <= Bound * live);
    }

    /// <summary>
    /// The store "dies" before its Nth mutation, for every N up to the last one retention with a repack makes: after
    /// each, a fresh process lists only points that read and verify; a normal re-run then finishes the job (old packs
    /// and leftover copies gone, the item within the bound, every point exporting the source's bytes).
    /// </summary>
    [Fact]
    public async Task AnInterruptionAtAnyStepOfARepack_LeavesEveryListedPointVerifying_AndARerunEndsWithinTheBound()
    {
        const string key = "repack crash key";
        var (h, clock, sha) = await ChurnedVaultAsync(key);
        using var _h = h;
        string pristine = h.Dir["vault"];
        var item = await h.Vault.GetItemAsync("churn", default);

        async Task<AsrVault> OpenCopyAsync(string name, int failAtMutation)
        {
            string copy = h.Dir[name];
            RetentionTestKit.CopyDirectory(pristine, copy);
            var vault = await AsrVault.OpenAsync(new FaultyStore(new LocalDirectoryStore(copy), failAtMutation), key, null, default);
            vault.Clock = clock;
            return vault;
        }

        int crashes = 0, crashesMidRepack = 0;
        for (int failAt = 1; ; failAt++)
        {
            var vault = await OpenCopyAsync($"crash-{failAt}", failAt);
            try
            {
                var done = await RetentionService.ApplyAsync(vault, item, default);
                Assert.NotEmpty(done.RepackedSequences);
                break; // past the last mutation: nothing left to interrupt
            }
            catch (SimulatedCrashException)
            {
                crashes++;
            }

            var reopened = await AsrVault.OpenAsync(new LocalDirectoryStore(h.Dir[$"crash-{failAt}"]), key, null, default);
            reopened.Clock = clock;
            if (await AfterInterruptionAsync(reopened, item, $"crash at mutation {failAt}")) crashesMidRepack++;
            Directory.Delete(h.Dir[$"crash-{failAt}"], recursive: true);
        }
        output.WriteLine($"interrupted at each of {crashes} mutations, {crashesMidRepack} of them after a repacked manifest was written");
        Assert.True(crashesMidRepack > 0, "no interruption fell inside the repack's manifest replacements");
        Assert.True(crashes > 30, $"only {crashes} mutations");

        // The exports of the pristine vault's points after a full pass are exact (bit for bit, by hash).
        using (h.Replication.AcquireLease(item))
            await RetentionService.ApplyAsync(h.Vault, item, default);
        foreach (var point in await h.Vault.GetPointsAsync(item, default))
            Assert.Equal(sha[point.Sequence], (await h.ExportHashesAsync(point))["churn.img"]);
    }

    /// <summary>
    /// What must hold after an interrupted pass, in a fresh process: every listed point reads and verifies; a normal
    /// re-run then leaves exactly the kept points, only the packs and maps they read, the item within the bound, and
    /// nothing for a further pass to move. Returns whether the interruption came after a repacked manifest was written.
    /// </summary>
    private static async Task<bool> AfterInterruptionAsync(AsrVault reopened, AsrProtectedItem item, string what)
    {
        await RetentionTestKit.AssertEveryListedPointVerifiesAsync(reopened, item);
        bool afterARepackedManifest = (await reopened.GetPointsAsync(item, default)).Any(p => p.IndexGeneration > 1);

        await RetentionService.ApplyAsync(reopened, item, default);
        Assert.Equal([6, 12], await RetentionTestKit.ListedSequencesAsync(reopened, item));
        var twelve = await reopened.GetPointAsync(item.Id, 12, default);
        Assert.True(twelve.IndexRelativeToParent && twelve.ParentSequence == 6, $"{what}: point 12 is not relative to 6 after the re-run");
        Assert.Equal(await RetentionTestKit.PacksReferencedByListedPointsAsync(reopened, item), await RetentionTestKit.PacksInStoreAsync(reopened, item));
        var indexes = (await reopened.Store.ListAsync(VaultLayout.IndexPrefix(item.Id), default)).Select(o => o.Key).Order(StringComparer.Ordinal);
        var points = await reopened.GetPointsAsync(item, default);
        Assert.Equal(points.SelectMany(p => p.Disks.Select(d => VaultLayout.PointFullMap(item.Id, p.Sequence, d.DiskId, p.IndexGeneration))).Order(StringComparer.Ordinal), indexes);
        long live = await LiveBytesAsync(reopened, item), bytes = await ItemBytesAsync(reopened, item);
        Assert.True(bytes <= Bound * live, $"{what}: after the re-run the item holds {bytes} bytes for {live} live");
        await RetentionTestKit.AssertEveryListedPointVerifiesAsync(reopened, item);
        // A re-run after the re-run has nothing left to move.
        Assert.Empty((await RetentionService.ApplyAsync(reopened, item, default)).RepackedSequences);
        return afterARepackedManifest;
    }

    /// <summary>
    /// A real kill -9: a child process runs the retention pass and kills itself (SIGKILL) at its Nth store mutation,
    /// before it starts or while it runs (the write or delete started, then the kill: a torn write, for a local vault a
    /// temporary file). N spans the pass (42 mutations here): 1-4 the rebases (6's full map and manifest, then 12's
    /// relative map and manifest), 5-14 the pruned manifests, 15-26 the first sweep, 27-31 the five copies, 32-35 point
    /// 6's map and manifest then point 12's (relative), 36-42 the second sweep (old maps and packs). Then as after a
    /// simulated crash.
    /// </summary>
    [Theory]
    [InlineData(3, "before")]
    [InlineData(3, "during")]
    [InlineData(4, "during")]
    [InlineData(8, "during")]
    [InlineData(20, "during")]
    [InlineData(24, "during")]
    [InlineData(28, "during")]
    [InlineData(30, "before")]
    [InlineData(31, "during")]
    [InlineData(33, "during")]
    [InlineData(34, "before")]
    [InlineData(35, "during")]
    [InlineData(38, "during")]
    public async Task ARetentionProcessKilledMidPass_LeavesEveryListedPointVerifying_AndARerunEndsWithinTheBound(int killAtMutation, string when)
    {
        const string key = "repack kill key";
        var (h, clock, _) = await ChurnedVaultAsync(key);
        using var _h = h;
        var item = await h.Vault.GetItemAsync("churn", default);
        string child = Path.GetFullPath(typeof(RepackTests).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "RetentionChildAssembly").Value!);
        Assert.True(File.Exists(child), $"The retention child is not built: {child} (build AsrModule.sln).");

        string copy = h.Dir["killed"];
        RetentionTestKit.CopyDirectory(h.Dir["vault"], copy);
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { child, copy, key, "churn", clock.GetUtcNow().ToString("O", CultureInfo.InvariantCulture), killAtMutation.ToString(CultureInfo.InvariantCulture), when })
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        string said = (await stdout + await stderr).Trim();
        output.WriteLine($"child exit code {process.ExitCode} ({(process.ExitCode == 137 ? "SIGKILL" : "?")}): {said}");
        Assert.True(process.ExitCode == 137, $"the retention child was not killed at mutation {killAtMutation}: exit code {process.ExitCode}: {said}");

        var reopened = await AsrVault.OpenAsync(new LocalDirectoryStore(copy), key, null, default);
        reopened.Clock = clock;
        bool afterARepackedManifest = await AfterInterruptionAsync(reopened, item, $"kill -9 {when} mutation {killAtMutation}");
        long live = await LiveBytesAsync(reopened, item);
        output.WriteLine($"after the re-run: item {await ItemBytesAsync(reopened, item):N0} bytes, live {live:N0}; killed after a repacked manifest: {afterARepackedManifest}");
    }
}
