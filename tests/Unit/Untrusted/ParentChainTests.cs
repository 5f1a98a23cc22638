using AsrModule.Engine.Errors;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// A manifest naming itself or a newer point as its parent must not make a chain walk loop forever: the walk
/// stops with VaultDataCorrupt naming the point (issue #12, B). Each call is given a token that cancels after
/// a while only so that code which loops fails the test instead of hanging the run; the engine never needs it.
/// </summary>
public class ParentChainTests
{
    private static async Task<(EngineHarness H, string ItemId)> ThreePointsAsync()
    {
        var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("m", 1 << 20, 51);
        for (int i = 0; i < 2; i++)
        {
            TestDisks.ScatterWrites(disk, 0.05, 52 + i);
            await h.CycleAsync("m");
        }
        return (h, item.Id);
    }

    public static TheoryData<string> Loops => new() { "self-parent", "two-cycle" };

    private static void Plant(EngineHarness h, string itemId, string loop)
    {
        if (loop == "self-parent")
        {
            VaultTamper.EditJson(h, VaultLayout.PointManifest(itemId, 3), m => m["parentSequence"] = 3);
        }
        else
        {
            // 3 → 2 → 3 → 2 → ...
            VaultTamper.EditJson(h, VaultLayout.PointManifest(itemId, 2), m => m["parentSequence"] = 3);
        }
    }

    [Theory]
    [MemberData(nameof(Loops))]
    public async Task Walking_a_looping_chain_stops_with_VaultDataCorrupt_naming_the_point(string loop)
    {
        var (h, itemId) = await ThreePointsAsync();
        using var _h = h;
        Plant(h, itemId, loop);
        using var safetyStop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var point = await h.Vault.GetPointAsync(itemId, 3, default);

        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetPointChainAsync(point, safetyStop.Token));

        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidData, ex.Kind);
        Assert.Contains("m@3", ex.Message);
    }

    [Theory]
    [MemberData(nameof(Loops))]
    public async Task Export_and_verify_of_a_point_on_a_looping_chain_fail_with_VaultDataCorrupt(string loop)
    {
        var (h, itemId) = await ThreePointsAsync();
        using var _h = h;
        Plant(h, itemId, loop);
        using var safetyStop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var point = await h.Vault.GetPointAsync(itemId, 3, default);

        var export = await Assert.ThrowsAsync<AsrException>(() =>
            RecoveryPointExporter.ExportAsync(h.Vault, point, h.Dir["dest"], false, null, JobContext.Detached(safetyStop.Token)));
        var verify = await RecoveryPointVerifier.VerifyAsync(h.Vault, point, safetyStop.Token);

        Assert.Equal(AsrErrorIds.VaultDataCorrupt, export.ErrorId);
        Assert.False(verify.Verified);
        Assert.All(verify.Disks, d => Assert.Contains("parent chain", d.Error));
        Assert.Contains("m@3", export.Message);
        Assert.False(Directory.Exists(h.Dir["dest"]) && Directory.EnumerateFileSystemEntries(h.Dir["dest"]).Any());
    }

    [Fact]
    public async Task A_point_object_naming_itself_as_parent_is_refused_without_reading_the_vault_forever()
    {
        var (h, itemId) = await ThreePointsAsync();
        using var _h = h;
        var point = await h.Vault.GetPointAsync(itemId, 3, default);
        point.ParentSequence = 3; // a caller's copy, not what the vault holds
        using var safetyStop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetPointChainAsync(point, safetyStop.Token));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
    }

    [Fact]
    public async Task An_intact_chain_still_walks_base_first()
    {
        var (h, itemId) = await ThreePointsAsync();
        using var _h = h;
        var chain = await h.Vault.GetPointChainAsync(await h.Vault.GetPointAsync(itemId, 3, default), default);
        Assert.Equal([1L, 2L, 3L], chain.Select(p => p.Sequence));
    }
}
