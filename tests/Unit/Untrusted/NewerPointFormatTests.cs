using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Retention;
using AsrModule.Engine.Vault;
using Xunit;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// A manifest of a point format newer than this module's was written by a newer module, whose new fields JSON would drop
/// silently: it is refused as VaultFormatUnsupported naming it, listed as the one point that cannot be read; the points
/// before it stay readable, and the item's cycles and retention stop rather than work from a misread point.
/// </summary>
public class NewerPointFormatTests
{
    [Fact]
    public async Task A_point_of_a_newer_format_is_refused_alone_and_cycles_and_retention_stop()
    {
        using var h = await EngineHarness.CreateAsync(key: "newer-format-key-0123456789");
        var (disk, item) = await h.NewMachineAsync("m", 1 << 20, 61);
        TestDisks.ScatterWrites(disk, 0.05, 62);
        await h.CycleAsync("m");
        string second = TestDisks.Sha256(disk);
        TestDisks.ScatterWrites(disk, 0.05, 63);
        await h.CycleAsync("m");
        string manifest = VaultLayout.PointManifest(item.Id, 3);
        Assert.Equal(AsrRecoveryPoint.CurrentFormatVersion, (await h.Vault.GetPointAsync(item.Id, 3, default)).FormatVersion);

        // Sealed records are re-sealed by the vault's own writer: what a newer module with the key would write.
        var point = await h.Vault.GetPointAsync(item.Id, 3, default);
        point.FormatVersion = AsrRecoveryPoint.CurrentFormatVersion + 1;
        await h.Vault.Store.WriteAsync(manifest, h.Vault.Records.Serialize(manifest, point), default);

        var listed = await h.Vault.Catalog.ListPointsAsync(item.Id, default);
        Assert.Equal([1L, 2L], listed.Where(e => e.Value is not null).Select(e => e.Value!.Sequence));
        var refused = Assert.Single(listed, e => e.Value is null);
        var error = Assert.IsType<AsrException>(refused.Error);
        Assert.Equal(AsrErrorIds.VaultFormatUnsupported, error.ErrorId);
        Assert.Contains(manifest, error.Message);
        Assert.Contains($"point format {AsrRecoveryPoint.CurrentFormatVersion + 1}", error.Message);

        var two = await h.Vault.GetPointAsync(item.Id, 2, default);
        Assert.Equal(second, (await h.ExportHashesAsync(two))["d.img"]);

        TestDisks.ScatterWrites(disk, 0.05, 64);
        var cycle = await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        Assert.Equal(AsrErrorIds.VaultFormatUnsupported, cycle.ErrorId);
        var retention = await Assert.ThrowsAsync<AsrException>(async () =>
        {
            var current = await h.Vault.GetItemAsync("m", default);
            using (h.Replication.AcquireLease(current))
                await RetentionService.ApplyAsync(h.Vault, current, default);
        });
        Assert.Equal(AsrErrorIds.VaultFormatUnsupported, retention.ErrorId);
        Assert.NotNull(await h.Vault.Store.ReadAllAsync(manifest, default));
    }
}
