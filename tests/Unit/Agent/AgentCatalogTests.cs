using AsrModule.Engine.Agent;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace AsrModule.Tests.Unit.Agent;

/// <summary>
/// Issue #15 item 1: an agent's steady-state cost follows the items assigned to its host and what changed, not the
/// vault's size. Counted at the store: a quiet refresh is two listings and no read, a change re-reads that item only.
/// </summary>
public sealed class AgentCatalogTests
{
    private static async Task<(EngineHarness H, CountingStore Store)> VaultWithItemsAsync(params (string Name, string? Host)[] items)
    {
        var dir = new TempDir();
        var store = new CountingStore(new LocalDirectoryStore(dir["vault"]));
        var h = await EngineHarness.CreateAsync(key: "catalog-test-passphrase", store: store);
        foreach (var (name, host) in items)
        {
            string disk = h.Dir[name + ".img"];
            TestDisks.Create(disk, 64 * 1024, name.Length);
            await h.Replication.RegisterAsync(name, [disk], "default", default, settings: new ItemReplicationSettings { AgentHost = host });
        }
        return (h, store);
    }

    private static AgentCatalog CatalogOf(EngineHarness h, string host) => new(h.Vault, host, TimeSpan.FromHours(1), NullLogger.Instance);

    [Fact]
    public async Task AQuietRefreshIsTwoListingsWhateverTheVaultHolds()
    {
        var (h, store) = await VaultWithItemsAsync(("a1", "h1"), ("a2", "h1"), ("b1", "h2"), ("b2", "h2"), ("b3", "h2"), ("none", null));
        using var _ = h;
        await h.CycleAsync("a1");
        await h.CycleAsync("b1");
        var catalog = CatalogOf(h, "h1");
        await catalog.RefreshAsync(default); // the first refresh is the full read
        Assert.Equal(["a1", "a2"], catalog.Items.Select(i => i.Name));

        store.Reset();
        await catalog.RefreshAsync(default);
        Assert.Equal(0, catalog.ItemsReread);
        Assert.Equal(2, store.Total);
        Assert.Equal([VaultLayout.HostPrefix("h1"), VaultLayout.PoliciesPrefix], store.Listed);
        // Health is evaluated for now from what was read, without reading again.
        Assert.NotNull(catalog.Items.Single(i => i.Name == "a1").CurrentRpo);
        Assert.Equal(ReplicationHealth.Warning, catalog.Items.Single(i => i.Name == "a2").ReplicationHealth); // no point yet
    }

    [Fact]
    public async Task AChangedItemIsReadAgainAloneAndAnItemMovedToAnotherHostLeavesThisOne()
    {
        var (h, _) = await VaultWithItemsAsync(("a1", "h1"), ("a2", "h1"), ("b1", "h2"));
        using var _ = h;
        var h1 = CatalogOf(h, "h1");
        var h2 = CatalogOf(h, "h2");
        await h1.RefreshAsync(default);
        await h2.RefreshAsync(default);

        await h.CycleAsync("a1"); // the cycle's item updates rewrite a1's marker
        await h1.RefreshAsync(default);
        await h2.RefreshAsync(default);
        Assert.Equal(1, h1.ItemsReread);
        Assert.Equal(0, h2.ItemsReread);
        Assert.Equal(1, h1.Items.Single(i => i.Name == "a1").LastPointSequence);

        var a2 = await h.Vault.GetItemAsync("a2", default);
        await h.Vault.UpdateItemAsync(a2.Id, i => i.AgentHost = "h2", default);
        Assert.False(await h.Vault.Store.ExistsAsync(VaultLayout.HostItem("h1", a2.Id), default));
        await h1.RefreshAsync(default);
        await h2.RefreshAsync(default);
        Assert.Equal(["a1"], h1.Items.Select(i => i.Name));
        Assert.Equal(["a2", "b1"], h2.Items.Select(i => i.Name));
        Assert.Equal(1, h2.ItemsReread);

        // Removed: its marker goes with it.
        await h.Replication.DisableAsync(await h.Vault.GetItemAsync("b1", default), default);
        await h2.RefreshAsync(default);
        Assert.Equal(["a2"], h2.Items.Select(i => i.Name));
    }

    [Fact]
    public async Task AMarkerIsAHintOnlyAndAMissingOneIsWrittenByTheFullRead()
    {
        var (h, _) = await VaultWithItemsAsync(("a1", "h1"), ("b1", "h2"));
        using var _h = h;
        var b1 = await h.Vault.GetItemAsync("b1", default);
        var a1 = await h.Vault.GetItemAsync("a1", default);
        // A marker planted in h1's folder for an item the record assigns to h2: h1 does not take it.
        await h.Vault.Assignments.TouchAsync("h1", b1.Id, default);
        // a1's marker lost (a write that died between record and marker).
        await h.Vault.Store.DeleteAsync(VaultLayout.HostItem("h1", a1.Id), default);

        var h1 = CatalogOf(h, "h1");
        await h1.RefreshAsync(default);
        Assert.Equal(["a1"], h1.Items.Select(i => i.Name));
        Assert.True(await h.Vault.Store.ExistsAsync(VaultLayout.HostItem("h1", a1.Id), default));
        await h1.RefreshAsync(default); // reads a1 once by its new marker, then it is quiet
        await h1.RefreshAsync(default);
        Assert.Equal(0, h1.ItemsReread);
        Assert.Equal(["a1"], h1.Items.Select(i => i.Name));
    }

    [Fact]
    public async Task AStopRequestAndAChangedPolicyAreSeenByTheSameListings()
    {
        var (h, store) = await VaultWithItemsAsync(("a1", "h1"));
        using var _ = h;
        var h1 = CatalogOf(h, "h1");
        await h1.RefreshAsync(default);
        Assert.False(h1.StopRequested);
        await AgentDirectory.RequestStopAsync(h.Vault, "h1", default);
        var policy = await h.Vault.GetPolicyAsync("default", default);
        policy.RpoThresholdMinutes = 1;
        await h.Vault.Records.WriteAsync(VaultLayout.Policy("default"), policy, default);
        store.Reset();
        await h1.RefreshAsync(default);
        Assert.True(h1.StopRequested);
        Assert.Equal(1, h1.Policies["default"].RpoThresholdMinutes);
        // The items of a changed policy are read again: their health follows its new threshold at once.
        Assert.Equal(1, h1.ItemsReread);
        Assert.Equal(1, h1.Items.Single().HealthInputs!.RpoThresholdMinutes);
        store.Reset();
        await h1.RefreshAsync(default);
        Assert.Equal((2, 0), (store.Lists, store.Reads));
    }

    [Fact]
    public async Task EnablingAnItemOutsideAGroupReadsNoOtherItem()
    {
        var (h, store) = await VaultWithItemsAsync(("a1", "h1"), ("a2", "h1"));
        using var _ = h;
        store.Reset();
        string disk = h.Dir["a3.img"];
        TestDisks.Create(disk, 64 * 1024, 3);
        await h.Replication.RegisterAsync("a3", [disk], "default", default, settings: new ItemReplicationSettings { AgentHost = "h2" });
        Assert.DoesNotContain(store.Listed, p => p.StartsWith(VaultLayout.ItemsPrefix, StringComparison.Ordinal));
        Assert.True(await h.Vault.Store.ExistsAsync(VaultLayout.HostItem("h2", (await h.Vault.GetItemAsync("a3", default)).Id), default));
    }

    /// <summary>
    /// The full read at start: one read of each record of another host's item (only its record says whose it is), the
    /// decoration (points listing, latest manifest, ...) only for this host's items. 10 agents on a 1,000-item blob vault
    /// made ~40,000 requests when every item was decorated.
    /// </summary>
    [Fact]
    public async Task TheFullReadReadsTheRecordsOfOtherHostsItemsAndDecoratesOnlyItsOwn()
    {
        const int others = 24, mine = 3;
        var items = Enumerable.Range(0, others).Select(i => ($"b{i:00}", (string?)"h2"))
            .Concat(Enumerable.Range(0, mine).Select(i => ($"a{i}", (string?)"h1"))).ToArray();
        var (h, store) = await VaultWithItemsAsync(items);
        using var _ = h;
        await h.CycleAsync("a0");
        await h.CycleAsync("b00"); // a point of its own: decorating it would read its manifest too
        var otherIds = (await h.Vault.GetItemsAsync(default)).Where(i => i.AgentHost == "h2").Select(i => i.Id).ToList();

        store.Reset();
        var catalog = CatalogOf(h, "h1");
        await catalog.RefreshAsync(default);

        Assert.Equal(["a0", "a1", "a2"], catalog.Items.Select(i => i.Name));
        Assert.Equal(1, catalog.Items[0].LastPointSequence); // this host's items are decorated
        foreach (var id in otherIds)
        {
            string folder = $"items/{id}/";
            Assert.Equal([VaultLayout.Item(id)], store.ReadKeys.Where(k => k.StartsWith(folder, StringComparison.Ordinal)));
            Assert.DoesNotContain(store.Listed, p => p.StartsWith(folder, StringComparison.Ordinal));
        }
        // N + O(M): the records, a few requests per own item, and the listings of the host folder, policies and items.
        Assert.InRange(store.Reads + store.Lists, others + mine, others + 4 * mine + 6);
    }

    [Fact]
    public async Task TheFullReadSkipsDamagedRecordsWithAWarningAndKeepsTheRest()
    {
        var (h, _) = await VaultWithItemsAsync(("a1", "h1"), ("a2", "h1"), ("b1", "h2"));
        using var _h = h;
        var damaged = new[] { (await h.Vault.GetItemAsync("a2", default)).Id, (await h.Vault.GetItemAsync("b1", default)).Id };
        foreach (var id in damaged) await h.Vault.Store.WriteAsync(VaultLayout.Item(id), "not a record of this module\n"u8.ToArray(), default);
        var log = new Untrusted.ListLogger();
        var catalog = new AgentCatalog(h.Vault, "h1", TimeSpan.FromHours(1), log);

        await catalog.RefreshAsync(default);

        Assert.Equal(["a1"], catalog.Items.Select(i => i.Name));
        foreach (var id in damaged)
            Assert.Contains(log.Warnings, w => w.StartsWith($"Skipping damaged vault record '{VaultLayout.Item(id)}'", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheFolderListingNamesEachItemOnceWithoutListingWhatLiesBelow()
    {
        var (h, store) = await VaultWithItemsAsync(("a1", "h1"), ("a2", null));
        using var _ = h;
        await h.CycleAsync("a1");
        var folders = await ((IVaultStore)new LocalDirectoryStore(h.Vault.Location)).ListFoldersAsync(VaultLayout.ItemsPrefix, default);
        var ids = (await h.Vault.GetItemsAsync(default)).Select(i => i.Id).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(ids, folders);
        store.Reset();
        var listed = await h.Vault.GetItemsAsync(default);
        Assert.Equal(2, listed.Count);
        Assert.DoesNotContain(VaultLayout.ItemsPrefix, store.Listed); // no recursive listing of items/
    }
}

/// <summary>The agent's hourly event pruning lists the day folders, then deletes only expired days of its own naming.</summary>
public sealed class EventPruningTests
{
    [Fact]
    public async Task ExpiredDaysAreDeletedWholeAndOtherFoldersAreLeftAlone()
    {
        using var h = await EngineHarness.CreateAsync();
        var clock = new AsrModule.Tests.Unit.Retention.ManualClock(new DateTimeOffset(2026, 12, 1, 12, 0, 0, TimeSpan.Zero));
        var log = new AsrModule.Engine.Events.EventLog(h.Vault.Records, clock, NullLogger.Instance);
        for (int day = 0; day < 4; day++)
        {
            await log.WriteAsync(AsrModule.Engine.Events.AsrEventSeverity.Information, "Test", $"day {day}", cancellationToken: default);
            clock.Advance(TimeSpan.FromDays(1));
        }
        await h.Vault.Store.WriteAsync("events/notaday/x.json", new byte[] { 1 }, default);
        await log.PruneAsync(TimeSpan.FromDays(2), default); // now Dec 5 12:00: Dec 3 and later are kept
        var left = (await h.Vault.Store.ListAsync("events/", default)).Select(o => o.Key.Split('/')[1]).Distinct().Order().ToList();
        Assert.Equal(["20261203", "20261204", "notaday"], left);
    }
}
