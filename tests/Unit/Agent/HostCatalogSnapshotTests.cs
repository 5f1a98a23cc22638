using AsrModule.Engine.Agent;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit;

namespace AsrModule.Tests.Unit.Agent;

/// <summary>
/// Issue #15 item 1: listing every item reads the agents' snapshots of the items they keep instead of each item, and
/// shows exactly what reading each item shows; an item changed since its snapshot (its marker has another version) is
/// read itself, and a snapshot is trusted no further than an item record.
/// </summary>
public sealed class HostCatalogSnapshotTests
{
    private static async Task<(EngineHarness H, CountingStore Store)> VaultAsync(int itemsPerHost, params string[] hosts)
    {
        var dir = new TempDir();
        var store = new CountingStore(new LocalDirectoryStore(dir["vault"]));
        var h = await EngineHarness.CreateAsync(key: "snapshot-test-passphrase", store: store);
        foreach (var host in hosts)
            for (int n = 0; n < itemsPerHost; n++)
            {
                string name = $"{host}-m{n}", disk = h.Dir[name + ".img"];
                TestDisks.Create(disk, 64 * 1024, n + 1);
                await h.Replication.RegisterAsync(name, [disk], "default", default, settings: new ItemReplicationSettings { AgentHost = host });
                if (n % 2 == 0) await h.CycleAsync(name);
            }
        return (h, store);
    }

    private static async Task<AgentCatalog> SnapshotAsync(EngineHarness h, string host)
    {
        var catalog = new AgentCatalog(h.Vault, host, TimeSpan.FromHours(1), NullLogger.Instance);
        await catalog.RefreshAsync(default);
        await catalog.WriteSnapshotIfDueAsync(TimeSpan.Zero, default);
        return catalog;
    }

    /// <summary>What a listing shows of each item, for comparing two listings.</summary>
    private static List<string> Shown(IEnumerable<VaultListEntry<AsrProtectedItem>> entries) =>
        entries.Select(e => e.Value is { } i
            ? $"{i.Name} {i.Id} {i.State} {i.ReplicationHealth} {i.LastPointSequence} {i.LastRecoveryPointTimeUtc:O} {i.AgentHost} {i.PolicyName} {i.LastError} {string.Join(",", i.Disks.Select(d => d.Name + ":" + d.SizeBytes))}"
            : $"damaged {e.Key}").ToList();

    [Fact]
    public async Task Listing_every_item_reads_two_objects_per_host_and_shows_what_reading_each_item_shows()
    {
        var (h, store) = await VaultAsync(6, "h1", "h2");
        using var _ = h;
        var direct = Shown(await h.Vault.Catalog.ListItemsAsync(default));
        await SnapshotAsync(h, "h1");
        await SnapshotAsync(h, "h2");

        store.Reset();
        var listed = await h.Vault.Catalog.ListItemsAsync(default, fromSnapshots: true);
        Assert.Equal(direct, Shown(listed));
        // items/ and hosts/ folders, then each host's folder and snapshot: no item, manifest or job read.
        Assert.Equal(4, store.Lists);
        Assert.Equal(2, store.Reads);
        // RPO evaluated for now, for every item that has a point.
        Assert.All(listed.Where(e => e.Value!.LastPointSequence > 0), e => Assert.NotNull(e.Value!.CurrentRpo));
    }

    [Fact]
    public async Task An_item_changed_since_its_snapshot_is_read_itself_and_shows_the_change()
    {
        var (h, store) = await VaultAsync(4, "h1");
        using var _ = h;
        await SnapshotAsync(h, "h1");
        await h.CycleAsync("h1-m1"); // a new point: the record and its marker are written
        var changed = await h.Vault.GetItemAsync("h1-m1", default);
        await h.Vault.UpdateItemAsync(changed.Id, i => i.LastError = "changed after the snapshot", default);

        store.Reset();
        var listed = await h.Vault.Catalog.ListItemsAsync(default, fromSnapshots: true);
        var shown = listed.Single(e => e.Name == "h1-m1").Value!;
        Assert.Equal(1, shown.LastPointSequence);
        Assert.Equal("changed after the snapshot", shown.LastError);
        // The snapshot, and the one changed item read itself (record, latest manifest, policy, job).
        Assert.True(store.Reads <= 5, string.Join(", ", store.ReadKeys));
        Assert.All(store.ReadKeys, k => Assert.True(k == VaultLayout.HostCatalog("h1") || k.Contains(shown.Id) || k.StartsWith("policies/") || k.StartsWith("jobs/"), k));
        Assert.Equal(Shown(await h.Vault.Catalog.ListItemsAsync(default)), Shown(listed));
    }

    [Fact]
    public async Task A_snapshot_entry_is_used_only_for_an_item_of_its_host_with_its_marker_version()
    {
        var (h, _) = await VaultAsync(2, "h1", "h2");
        using var _h = h;
        await SnapshotAsync(h, "h1");
        var key = VaultLayout.HostCatalog("h1");
        var snapshot = (await h.Vault.Records.ReadAsync<HostCatalogSnapshot>(key, default))!;
        var h2Item = await h.Vault.GetItemAsync("h2-m0", default);
        var forged = snapshot.Items[0];
        // A planted entry for another host's item (with that item's real marker version) and a forged state for one of its own.
        var markers = await h.Vault.Store.ListAsync(VaultLayout.HostItemsPrefix("h2"), default);
        h2Item.State = ProtectedItemState.Committed;
        snapshot.Items.Add(new HostCatalogEntry { Item = h2Item, MarkerVersion = markers.Single(o => o.Key.EndsWith(h2Item.Id)).Version!, RpoThresholdMinutes = 15 });
        forged.Item.LastError = "forged";
        forged.MarkerVersion = "not the marker's version";
        await h.Vault.Records.WriteAsync(key, snapshot, default);

        var listed = await h.Vault.Catalog.ListItemsAsync(default, fromSnapshots: true);
        Assert.Equal(Shown(await h.Vault.Catalog.ListItemsAsync(default)), Shown(listed));
        Assert.DoesNotContain(listed, e => e.Value?.LastError == "forged");
        Assert.NotEqual(ProtectedItemState.Committed, listed.Single(e => e.Name == "h2-m0").Value!.State);

        // A snapshot that does not open (written without the vault's key) is ignored as a whole.
        await h.Vault.Store.WriteAsync(key, System.Text.Encoding.UTF8.GetBytes("{\"host\":\"h1\",\"items\":[]}"), default);
        Assert.Equal(Shown(await h.Vault.Catalog.ListItemsAsync(default)), Shown(await h.Vault.Catalog.ListItemsAsync(default, fromSnapshots: true)));
    }

    [Fact]
    public async Task The_agent_writes_its_snapshot_only_when_what_it_keeps_changed()
    {
        var (h, store) = await VaultAsync(3, "h1");
        using var _ = h;
        var catalog = await SnapshotAsync(h, "h1");
        Assert.True(await h.Vault.Store.ExistsAsync(VaultLayout.HostCatalog("h1"), default));

        store.Reset();
        await catalog.RefreshAsync(default);
        await catalog.WriteSnapshotIfDueAsync(TimeSpan.Zero, default);
        Assert.Equal(0, store.Writes); // quiet: two listings, nothing written

        await h.CycleAsync("h1-m1");
        await catalog.RefreshAsync(default);
        store.Reset();
        await catalog.WriteSnapshotIfDueAsync(TimeSpan.FromHours(1), default); // changed, but written less than an hour ago
        Assert.Equal(0, store.Writes);
        await catalog.WriteSnapshotIfDueAsync(TimeSpan.Zero, default);
        Assert.Equal(1, store.Writes);
        var snapshot = (await h.Vault.Records.ReadAsync<HostCatalogSnapshot>(VaultLayout.HostCatalog("h1"), default))!;
        Assert.Equal(1, snapshot.Items.Single(e => e.Item.Name == "h1-m1").Item.LastPointSequence);
    }
}
