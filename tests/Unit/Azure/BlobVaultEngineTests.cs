using System.Diagnostics;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Retention;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using AsrModule.Tests.Unit.Retention;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>The whole engine on a vault in an Azurite container: cycles, exports, retention, a storage outage.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class BlobVaultEngineTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private AzuriteServer Server => azurite.Server;

    [RequiresAzurite]
    public async Task An_encrypted_vault_on_blob_replicates_and_every_point_restores_bit_exact()
    {
        var watch = Stopwatch.StartNew();
        string container = AzuriteServer.NewContainerName();
        using var h = await EngineHarness.CreateAsync("correct horse battery staple", store: await Server.NewStoreAsync(container));
        string os = h.Dir["web01-os.img"], data = h.Dir["web01-data.img"];
        TestDisks.Create(os, 24 << 20, 1);
        TestDisks.Create(data, (6 << 20) + 4096 * 3, 2);
        await h.Replication.RegisterAsync("web01", [os, data], "default", default);
        var sha = new Dictionary<long, (string Os, string Data)>();

        var initial = await h.CycleAsync("web01");
        Assert.Equal("Initial", initial.Mode);
        sha[initial.RecoveryPointSequence!.Value] = (TestDisks.Sha256(os), TestDisks.Sha256(data));

        TestDisks.ScatterWrites(os, 0.02, 3);
        TestDisks.ScatterWrites(data, 0.05, 4);
        var delta = await h.CycleAsync("web01");
        Assert.Equal("Delta", delta.Mode);
        Assert.True(delta.BytesStored < initial.BytesStored / 4, $"delta stored {delta.BytesStored} of {initial.BytesStored}");
        sha[delta.RecoveryPointSequence!.Value] = (TestDisks.Sha256(os), TestDisks.Sha256(data));

        // A checksum resync hashes the replica through ranged reads of the packs.
        TestDisks.ScatterWrites(os, 0.01, 5);
        var resync = await h.CycleAsync("web01", resync: true);
        Assert.Equal("Resync", resync.Mode);
        sha[resync.RecoveryPointSequence!.Value] = (TestDisks.Sha256(os), TestDisks.Sha256(data));

        var item = await h.Vault.GetItemAsync("web01", default);
        Assert.Equal(ProtectedItemState.Protected, item.State);
        var points = await h.Vault.GetPointsAsync(item, default);
        Assert.Equal([1L, 2, 3], points.Select(p => p.Sequence));
        foreach (var point in points)
        {
            var files = await h.ExportHashesAsync(point);
            Assert.Equal(sha[point.Sequence].Os, files["web01-os.img"]);
            Assert.Equal(sha[point.Sequence].Data, files["web01-data.img"]);
            Assert.True((await RecoveryPointVerifier.VerifyAsync(h.Vault, point, default)).Verified);
        }
        // Packs are large objects, not one blob per block.
        var packs = await h.Vault.Store.ListAsync(VaultLayout.PacksPrefix(item.Id), default);
        Assert.Equal(points.Sum(p => p.Packs.Count), packs.Count);

        // Another session (its own store instance, as another process) sees the same catalog.
        var other = await AsrVault.OpenAsync(Server.OpenStore(container), "correct horse battery staple", null, default);
        var seen = await other.GetItemAsync("web01", default);
        Assert.Equal(3, seen.LastPointSequence);
        Assert.Equal(h.Vault.Location, seen.VaultLocation);
        Assert.True((await RecoveryPointVerifier.VerifyAsync(other, (await other.GetLatestPointAsync(seen.Id, default))!, default)).Verified);

        // Disabling removes everything of the item (DeletePrefix) while holding its lease.
        await h.Replication.DisableAsync(item, default);
        Assert.Empty(await h.Vault.Store.ListAsync(VaultLayout.ItemPrefix(item.Id), default));
        Assert.Empty(await h.Vault.Store.ListAsync("names/", default));
        output.WriteLine($"initial {initial.BytesStored:N0} B stored, delta {delta.BytesStored:N0} B, resync {resync.BytesStored:N0} B; {watch.Elapsed.TotalSeconds:F1} s");
    }

    [RequiresAzurite]
    public async Task Retention_on_blob_prunes_rebases_and_sweeps_and_kept_points_restore_by_hash()
    {
        using var h = await EngineHarness.CreateAsync(store: await Server.NewStoreAsync());
        // The same six points as RetentionServiceTests on the local vault, judged at 03:55.
        var (_, sha) = await RetentionTestKit.SixPointsAsync(h);
        var item = await h.Vault.GetItemAsync("six", default);
        var before = (await h.Vault.GetPointsAsync(item, default)).ToDictionary(p => p.Sequence);
        RetentionResult result;
        using (h.Replication.AcquireLease(item))
            result = await RetentionService.ApplyAsync(h.Vault, item, default);

        Assert.Equal([1, 2, 4, 5], result.PrunedSequences);
        Assert.Equal([3, 6], result.RebasedSequences);
        Assert.Equal(new[] { 2L, 4, 5 }.Select(s => VaultLayout.Pack(item.Id, s, before[s].AttemptId, 0)), result.DeletedPacks);
        var points = await h.Vault.GetPointsAsync(item, default);
        Assert.Equal([3L, 6], points.Select(p => p.Sequence));
        foreach (var p in points)
        {
            Assert.Equal(sha[p.Sequence], (await h.ExportHashesAsync(p))["six.img"]);
            Assert.True((await RecoveryPointVerifier.VerifyAsync(h.Vault, p, default)).Verified);
        }
        Assert.Equal(await RetentionTestKit.PacksReferencedByListedPointsAsync(h.Vault, item), await RetentionTestKit.PacksInStoreAsync(h.Vault, item));
        // No pin is left behind by the exports and verifications.
        Assert.Empty(await h.Vault.Store.ListAsync(VaultLayout.PinsPrefix(item.Id), default));
    }

    /// <summary>
    /// Azurite is stopped while a cycle is storing packs and stays down past the retries: the cycle fails
    /// with VaultUnavailable; after a restart on the same port and data the vault lists only whole points,
    /// each verifies, and the next cycle publishes.
    /// </summary>
    [RequiresAzurite]
    public async Task An_outage_mid_cycle_fails_it_clearly_leaves_only_whole_points_and_the_next_cycle_succeeds()
    {
        using var server = AzuriteServer.Start(); // its own Azurite: this test stops it
        var options = new BlobVaultStoreOptions
        {
            MaxRetries = 3, RetryDelay = TimeSpan.FromMilliseconds(200), MaxRetryDelay = TimeSpan.FromSeconds(1),
            LockReleaseTimeout = TimeSpan.FromSeconds(2),
        };
        var store = await server.NewStoreAsync(options: options);
        using var h = await EngineHarness.CreateAsync(store: store);
        string disk = h.Dir["db01.img"];
        TestDisks.CreateRandom(disk, 64 << 20, 1);
        await h.Replication.RegisterAsync("db01", [disk], "default", default);
        await h.CycleAsync("db01");
        string sha1 = TestDisks.Sha256(disk);

        TestDisks.CreateRandom(disk, 64 << 20, 2); // every block changes: two 32 MiB packs
        int stoppedAt = -1;
        var progress = new EngineHarness.SyncProgress(p =>
        {
            if (stoppedAt < 0 && p.PercentComplete >= 70 && p.PercentComplete < 95)
            {
                stoppedAt = p.PercentComplete;
                server.Stop();
            }
        });
        var watch = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("db01", progress: progress));
        output.WriteLine($"stopped at {stoppedAt}%, cycle failed after {watch.Elapsed.TotalSeconds:F1} s: {ex.ErrorId}: {ex.Message}");
        Assert.True(stoppedAt >= 70);
        Assert.Equal(AsrErrorIds.VaultUnavailable, ex.ErrorId);
        Assert.Equal(AsrErrorKind.ConnectionError, ex.Kind);

        server.StartProcess();
        var item = await h.Vault.GetItemAsync("db01", default);
        var points = await h.Vault.GetPointsAsync(item, default);
        Assert.Equal([1L], points.Select(p => p.Sequence));
        Assert.False(await store.ExistsAsync(VaultLayout.PointManifest(item.Id, 2), default));
        Assert.True((await RecoveryPointVerifier.VerifyAsync(h.Vault, points[0], default)).Verified);
        Assert.Equal(sha1, (await h.ExportHashesAsync(points[0]))["db01.img"]);
        var leftovers = (await store.ListAsync(VaultLayout.PacksPrefix(item.Id), default)).Where(o => VaultLayout.SequenceOf(o.Key) == 2).ToList();
        output.WriteLine($"after restart: points [1], leftover objects of the failed cycle: {string.Join(", ", leftovers.Select(o => $"{o.Key[(o.Key.LastIndexOf('/') + 1)..]} ({o.Length:N0} B)"))}");

        var next = await h.CycleAsync("db01");
        output.WriteLine($"next cycle: {next.Mode}, point {next.RecoveryPointSequence}, {next.BytesStored:N0} B stored");
        Assert.Equal(2L, next.RecoveryPointSequence);
        var latest = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.True((await RecoveryPointVerifier.VerifyAsync(h.Vault, latest, default)).Verified);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(latest))["db01.img"]);
        // The failed cycle's leftovers were replaced or removed: the packs of 2 are exactly the point's.
        Assert.Equal(latest.Packs.Order(StringComparer.Ordinal),
            (await store.ListAsync(VaultLayout.PacksPrefix(item.Id), default)).Where(o => VaultLayout.SequenceOf(o.Key) == 2).Select(o => o.Key));
        Assert.Equal(ProtectedItemState.Protected, (await h.Vault.GetItemAsync("db01", default)).State);
    }

    /// <summary>A short outage (Azurite restarted within the retry budget) is ridden through: the cycle publishes.</summary>
    [RequiresAzurite]
    public async Task A_short_outage_mid_cycle_is_retried_through()
    {
        using var server = AzuriteServer.Start();
        var store = await server.NewStoreAsync(); // default retries: 5, 0.5 s doubling to 10 s
        using var h = await EngineHarness.CreateAsync(store: store);
        string disk = h.Dir["app01.img"];
        TestDisks.CreateRandom(disk, 48 << 20, 3);
        await h.Replication.RegisterAsync("app01", [disk], "default", default);

        Task? restart = null;
        var progress = new EngineHarness.SyncProgress(p =>
        {
            if (restart is null && p.PercentComplete >= 40 && p.PercentComplete < 95)
            {
                server.Stop();
                restart = Task.Run(async () =>
                {
                    await Task.Delay(1500);
                    server.StartProcess();
                });
            }
        });
        var watch = Stopwatch.StartNew();
        var result = await h.CycleAsync("app01", progress: progress);
        output.WriteLine($"cycle with a ~2 s outage took {watch.Elapsed.TotalSeconds:F1} s: point {result.RecoveryPointSequence}, {result.BytesStored:N0} B");
        Assert.NotNull(restart);
        await restart;
        Assert.Equal(1L, result.RecoveryPointSequence);
        var point = (await h.Vault.GetLatestPointAsync((await h.Vault.GetItemAsync("app01", default)).Id, default))!;
        Assert.True((await RecoveryPointVerifier.VerifyAsync(h.Vault, point, default)).Verified);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(point))["app01.img"]);
    }

    /// <summary>
    /// Pack upload and cycle throughput, Azurite next to the local vault (figures in the test output; best of
    /// two interleaved rounds, since Azurite and the test share the machine). Azurite keeps blobs on local disk
    /// without fsync: its figures bound the protocol's cost, not a real account's network.
    /// </summary>
    [RequiresAzurite]
    public async Task Throughput_of_pack_uploads_and_cycles_local_vs_Azurite()
    {
        using var dir = new TempDir();
        const int packs = 6, packSize = 32 << 20;
        var pack = new byte[packSize];
        new Random(1).NextBytes(pack);

        var variants = new List<(string Label, Func<Task<IVaultStore>> Open)>
        {
            ("local directory (fsync per pack)", () => Task.FromResult<IVaultStore>(new LocalDirectoryStore(dir["local-" + Guid.NewGuid().ToString("N")[..6]]))),
        };
        foreach (var (block, concurrency) in new[] { (8 << 20, 4), (4 << 20, 4), (4 << 20, 8), (64 << 20, 1) })
            variants.Add((block >= packSize ? "Azurite, one Put Blob per pack" : $"Azurite, {block >> 20} MiB blocks x {concurrency}{(block == 8 << 20 && concurrency == 4 ? " (default)" : "")}",
                async () => await Server.NewStoreAsync(options: new BlobVaultStoreOptions { UploadBlockSize = block, UploadConcurrency = concurrency })));

        var best = new double[variants.Count];
        for (int round = 0; round < 2; round++)
            for (int v = 0; v < variants.Count; v++)
            {
                var store = await variants[v].Open();
                await store.WriteAsync("warmup", pack, default);
                var watch = Stopwatch.StartNew();
                for (int i = 0; i < packs; i++)
                    await store.WriteAsync(VaultLayout.Pack("bench", 1, null, i), pack, default);
                best[v] = Math.Max(best[v], packs * (double)packSize / (1 << 20) / watch.Elapsed.TotalSeconds);
                await Cleanup(store);
            }
        output.WriteLine($"Pack uploads ({packs} x 32 MiB random, one writer as in the pipeline), best of 2:");
        for (int v = 0; v < variants.Count; v++) output.WriteLine($"  {variants[v].Label,-38} {best[v],6:F0} MiB/s");
        Assert.All(best, b => Assert.True(b > 0));

        // A whole initial cycle (scan, compress, pack, publish) and an export of a 128 MiB disk of the usual mix.
        string disk = dir["bench.img"];
        TestDisks.Create(disk, 128 << 20, 9);
        string warm = dir["warm.img"];
        TestDisks.Create(warm, 8 << 20, 10);
        using (var w = await EngineHarness.CreateAsync(store: new LocalDirectoryStore(dir["warm-vault"])))
        {
            await w.Replication.RegisterAsync("warm", [warm], "default", default);
            await w.CycleAsync("warm"); // JIT and caches, so that the first timed backend is not penalized
        }
        var cycles = new Dictionary<string, (double Cycle, double Stored, double Export)>();
        for (int round = 0; round < 2; round++)
            foreach (var name in new[] { "local", "Azurite" })
            {
                IVaultStore store = name == "local" ? new LocalDirectoryStore(dir["cycle-" + round]) : await Server.NewStoreAsync();
                using var h = await EngineHarness.CreateAsync(store: store);
                await h.Replication.RegisterAsync("bench", [disk], "default", default);
                var watch = Stopwatch.StartNew();
                var result = await h.CycleAsync("bench");
                double cycle = watch.Elapsed.TotalSeconds;
                var point = (await h.Vault.GetLatestPointAsync((await h.Vault.GetItemAsync("bench", default)).Id, default))!;
                watch.Restart();
                Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(point))["bench.img"]);
                double export = watch.Elapsed.TotalSeconds;
                var previous = cycles.GetValueOrDefault(name, (double.MaxValue, 0, double.MaxValue));
                cycles[name] = (Math.Min(previous.Cycle, cycle), (result.BytesStored ?? 0) / 1048576.0, Math.Min(previous.Export, export));
                await Cleanup(store);
            }
        output.WriteLine("Initial cycle and export of a 128 MiB disk (25% random, 25% text, 50% zeros), best of 2:");
        foreach (var (name, c) in cycles)
            output.WriteLine($"  {name,-8} cycle {c.Cycle:F2} s ({128 / c.Cycle:F0} MiB/s of disk, {c.Stored / c.Cycle:F0} MiB/s stored of {c.Stored:F0} MiB), export {c.Export:F2} s ({128 / c.Export:F0} MiB/s)");
    }

    private static async Task Cleanup(IVaultStore store)
    {
        if (store is BlobVaultStore blob) await blob.Container.DeleteIfExistsAsync();
        else if (Directory.Exists(store.Location)) Directory.Delete(store.Location, recursive: true);
    }
}
