using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// One damaged object affects only what it describes (issue #12, item 6): a damaged policy, item record, manifest or
/// job record is listed as its error (VaultDataCorrupt naming it) and every neighbour still lists.
/// </summary>
public class BlastRadiusTests
{
    private const string NotJson = "{ \"name\": \"half a rec";

    /// <summary>Items a (policy default) and b (policy other), one point each.</summary>
    private static async Task<(EngineHarness H, AsrProtectedItem A, AsrProtectedItem B)> TwoItemsAsync()
    {
        var h = await EngineHarness.CreateAsync();
        await h.Vault.CreatePolicyAsync(new AsrPolicy { Name = "other" }, default);
        var (_, a) = await h.NewMachineAsync("a", 1 << 20, 81, "a.img");
        TestDisks.Create(h.Dir["b.img"], 1 << 20, 82);
        await h.Replication.RegisterAsync("b", [h.Dir["b.img"]], "other", default);
        await h.CycleAsync("b");
        return (h, a, await h.Vault.GetItemAsync("b", default));
    }

    [Theory]
    [InlineData("not JSON")]
    [InlineData("a setting out of range")]
    [InlineData("another policy's name")]
    public async Task A_damaged_policy_is_listed_as_its_error_and_its_items_still_list(string damage)
    {
        var (h, a, b) = await TwoItemsAsync();
        using var _h = h;
        string key = VaultLayout.Policy("other");
        switch (damage)
        {
            case "not JSON": File.WriteAllText(VaultTamper.PathOf(h, key), NotJson); break;
            case "a setting out of range": VaultTamper.EditJson(h, key, p => p["recoveryPointRetentionHours"] = -5); break;
            default: VaultTamper.EditJson(h, key, p => p["name"] = "default"); break;
        }

        var policies = await h.Vault.Catalog.ListPoliciesAsync(default);
        Assert.Equal("default", Assert.Single(policies, e => !e.IsDamaged).Value!.Name);
        var bad = Assert.Single(policies, e => e.IsDamaged);
        Assert.Equal("other", bad.Name);
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, bad.Error!.ErrorId);
        Assert.Contains(key, bad.Error.Message);
        Assert.Equal(["default"], (await h.Vault.GetPoliciesAsync(default)).Select(p => p.Name));

        // Both items list; the one whose policy is damaged shows it (Critical, the policy named), the other is fine.
        var items = await h.Vault.Catalog.ListItemsAsync(default);
        Assert.All(items, e => Assert.False(e.IsDamaged));
        var shownB = items.Single(e => e.Name == "b").Value!;
        Assert.Equal(ReplicationHealth.Critical, shownB.ReplicationHealth);
        Assert.Contains(key, shownB.LastError);
        Assert.Equal(ReplicationHealth.Normal, items.Single(e => e.Name == "a").Value!.ReplicationHealth);
        Assert.Null(items.Single(e => e.Name == "a").Value!.LastError);

        // Reading either item's points is not stopped by the policy.
        Assert.Single(await h.Vault.GetPointsAsync(await h.Vault.GetItemAsync("b", default), default));
        Assert.Single(await h.Vault.GetPointsAsync(await h.Vault.GetItemAsync("a", default), default));
    }

    [Fact]
    public async Task A_damaged_item_record_is_listed_as_its_error_by_name_and_the_other_items_list()
    {
        var (h, a, b) = await TwoItemsAsync();
        using var _h = h;
        string key = VaultLayout.Item(a.Id);
        File.WriteAllText(VaultTamper.PathOf(h, key), NotJson);

        var items = await h.Vault.Catalog.ListItemsAsync(default);
        Assert.Equal(["a", "b"], items.Select(e => e.Name));
        var bad = items[0];
        Assert.True(bad.IsDamaged);
        Assert.Equal(key, bad.Key);
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, bad.Error!.ErrorId);
        Assert.Contains("'a'", bad.Error.Message);
        Assert.Contains(key, bad.Error.Message);
        Assert.Equal(ReplicationHealth.Normal, items[1].Value!.ReplicationHealth);
        Assert.Equal(["b"], (await h.Vault.GetItemsAsync(default)).Select(i => i.Name));
        var byName = await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetItemAsync("a", default));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, byName.ErrorId); // not ProtectedItemNotFound: it exists, damaged
    }

    [Fact]
    public async Task An_item_record_stored_under_another_id_is_damaged()
    {
        var (h, a, b) = await TwoItemsAsync();
        using var _h = h;
        VaultTamper.EditJson(h, VaultLayout.Item(a.Id), i => i["id"] = b.Id);
        var bad = Assert.Single(await h.Vault.Catalog.ListItemsAsync(default), e => e.IsDamaged);
        Assert.Contains("stored as item", bad.Error!.Message);
    }

    [Fact]
    public async Task A_damaged_manifest_is_listed_as_its_error_between_its_neighbours()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("m", 1 << 20, 83);
        for (int i = 0; i < 2; i++)
        {
            TestDisks.ScatterWrites(disk, 0.05, 90 + i);
            await h.CycleAsync("m");
        }
        string key = VaultLayout.PointManifest(item.Id, 2);
        File.WriteAllText(VaultTamper.PathOf(h, key), NotJson);

        var points = await h.Vault.Catalog.ListPointsAsync(item.Id, default);
        Assert.Equal(3, points.Count);
        Assert.Equal(1, points[0].Value!.Sequence);
        Assert.True(points[1].IsDamaged);
        Assert.Equal("2", points[1].Name);
        Assert.Contains(key, points[1].Error!.Message);
        Assert.Equal(3, points[2].Value!.Sequence);
        // The latest point is readable, so the item is shown as it is.
        var shown = await h.Vault.GetItemAsync("m", default);
        Assert.Equal(3, shown.LastPointSequence);
        // Engine paths that act on the whole chain (retention, cycles) stay strict.
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, (await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetPointsAsync(item, default))).ErrorId);
    }

    [Fact]
    public async Task A_damaged_job_record_is_listed_as_its_error_after_the_others()
    {
        using var h = await EngineHarness.CreateAsync();
        var start = DateTimeOffset.UtcNow.AddMinutes(-5);
        var jobs = Enumerable.Range(0, 3).Select(i => new AsrJob
        {
            Id = Guid.NewGuid(), Operation = "Test", TargetName = "t" + i, State = AsrJobState.Succeeded,
            StartTimeUtc = start.AddSeconds(i), EndTimeUtc = start.AddSeconds(i + 1), OwnerHost = Environment.MachineName,
        }).ToList();
        foreach (var j in jobs) await h.Vault.Jobs.SaveAsync(j, default);
        string key = VaultLayout.Job(jobs[1].Id);
        File.WriteAllText(VaultTamper.PathOf(h, key), NotJson);

        var listed = await h.Vault.Catalog.ListJobsAsync(default);
        Assert.Equal(["t0", "t2"], listed.Where(e => !e.IsDamaged).Select(e => e.Value!.TargetName));
        var bad = listed[^1];
        Assert.True(bad.IsDamaged);
        Assert.Equal(jobs[1].Id.ToString("D"), bad.Name);
        Assert.Contains(key, bad.Error!.Message);
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, (await Assert.ThrowsAsync<AsrException>(() => h.Vault.Jobs.GetAsync(jobs[1].Id, default))).ErrorId);
    }

    [Fact]
    public async Task A_damaged_record_of_the_items_last_job_does_not_hide_the_item()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("m", 1 << 20, 84);
        var jobId = Guid.NewGuid();
        await h.Vault.UpdateItemAsync(item.Id, i => { i.LastJobId = jobId; i.CycleInProgressJobId = jobId; }, default);
        VaultTamper.Plant(h, VaultLayout.Job(jobId), NotJson);
        var shown = Assert.Single(await h.Vault.Catalog.ListItemsAsync(default));
        Assert.False(shown.IsDamaged);
    }

    [Fact]
    public async Task Verification_holds_its_point_in_this_process_only_and_a_point_pruned_meanwhile_is_not_found()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("m", 1 << 20, 85);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        using (PointPin.HoldInProcess(h.Vault, point))
            Assert.Contains(point.Sequence, await PointPin.ActiveSequencesAsync(h.Vault, item.Id, default));
        Assert.DoesNotContain(point.Sequence, await PointPin.ActiveSequencesAsync(h.Vault, item.Id, default));
        Assert.False(Directory.Exists(VaultTamper.PathOf(h, VaultLayout.PinsPrefix(item.Id))));
        // Pruned by another process's retention: not "corrupt", gone.
        File.Delete(VaultTamper.PathOf(h, VaultLayout.PointManifest(item.Id, point.Sequence)));
        var ex = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointVerifier.VerifyAsync(h.Vault, point, default));
        Assert.Equal(AsrErrorIds.RecoveryPointNotFound, ex.ErrorId);
    }
}
