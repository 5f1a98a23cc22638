using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// Disk names read from the vault become file names under a destination: a planted name must be refused
/// (VaultDataCorrupt naming the record and the name) before anything is written, and nothing may appear
/// outside the destination (issue #12, A).
/// </summary>
public class DiskNameTests
{
    /// <summary>A bad name by label (xunit shows labels; some names are not printable).</summary>
    private static string BadName(string label, EngineHarness h) => label switch
    {
        "parent" => "../escape.img",
        "absolute" => Path.Combine(h.Dir["outside"], "abs.img"),
        "dotdot" => "..",
        "dot" => ".",
        "empty" => "",
        "subfolder" => "sub/dir.img",
        "backslash" => "..\\escape.img",
        "nul" => "nul\0.img",
        "newline" => "line\nfeed.img",
        "too long" => new string('x', 256),
        "too long in UTF-8" => new string('é', 128),
        _ => throw new ArgumentException(label),
    };

    public static TheoryData<string> BadNames => new()
    {
        "parent", "absolute", "dotdot", "dot", "empty", "subfolder", "backslash", "nul", "newline", "too long", "too long in UTF-8",
    };

    private static async Task<(EngineHarness H, AsrProtectedItem Item, AsrRecoveryPoint Point, string Key)> PlantedAsync(string label)
    {
        var h = await EngineHarness.CreateAsync();
        Directory.CreateDirectory(h.Dir["outside"]);
        var (_, item) = await h.NewMachineAsync("m", 1 << 20, 31);
        var point = (await h.Vault.GetPointsAsync(item, default)).Single();
        string key = VaultLayout.PointManifest(item.Id, point.Sequence);
        VaultTamper.EditJson(h, key, m => m["disks"]![0]!["name"] = BadName(label, h));
        return (h, item, point, key);
    }

    [Theory]
    [MemberData(nameof(BadNames))]
    public async Task Export_refuses_a_planted_disk_name_and_writes_nothing_outside_the_destination(string label)
    {
        var (h, _, point, key) = await PlantedAsync(label);
        using var _h = h;
        string dest = h.Dir["dest"];
        var before = VaultTamper.FilesOutside(h, dest);

        var ex = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointExporter.ExportAsync(h.Vault, point, dest, false, null, JobContext.Detached()));

        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidData, ex.Kind);
        Assert.Contains(key, ex.Message);
        Assert.Contains(VaultRecordChecks.Printable(BadName(label, h)), ex.Message);
        Assert.Equal(before, VaultTamper.FilesOutside(h, dest));
    }

    [Theory]
    [InlineData("parent")]
    [InlineData("absolute")]
    public async Task Listing_and_reading_the_planted_point_report_the_record(string label)
    {
        var (h, item, point, key) = await PlantedAsync(label);
        using var _h = h;
        foreach (var read in new Func<Task>[]
        {
            () => h.Vault.GetPointsAsync(item, default),
            () => h.Vault.GetPointAsync(item.Id, point.Sequence, default),
        })
        {
            var ex = await Assert.ThrowsAsync<AsrException>(read);
            Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
            Assert.Contains(key, ex.Message);
        }
        // Verification reports the damaged manifest in its result instead of throwing.
        var result = await RecoveryPointVerifier.VerifyAsync(h.Vault, point, default);
        Assert.False(result.Verified);
        Assert.Contains(key, result.Error);
        // The listing shows the damaged point as its error and goes on.
        var entry = Assert.Single(await h.Vault.Catalog.ListPointsAsync(item.Id, default), e => e.Key == key);
        Assert.True(entry.IsDamaged);
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, entry.Error!.ErrorId);
    }

    [Fact]
    public void Plan_refuses_a_bad_name_on_a_point_object_that_was_not_read_from_the_vault()
    {
        using var dir = new TempDir();
        var point = new AsrRecoveryPoint
        {
            ItemId = "0123456789abcdef", ItemName = "m", Sequence = 7,
            Disks = [new RecoveryPointDisk { DiskId = "disk0", Name = "../escape.img", SizeBytes = 4096, BlockSize = 4096 }],
        };
        var ex = Assert.Throws<AsrException>(() => RecoveryPointExporter.Plan(point, dir["dest"], false, null));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains(VaultLayout.PointManifest("0123456789abcdef", 7), ex.Message);
        Assert.Contains("../escape.img", ex.Message);
    }

    [Fact]
    public void JoinInside_keeps_a_plain_name_inside_and_refuses_the_rest()
    {
        using var dir = new TempDir();
        string dest = dir["dest"];
        Assert.Equal(Path.Combine(dest, "d.img.overlay"), VaultRecordChecks.JoinInside(dest, "d.img", ".overlay", "k"));
        Assert.Equal(Path.Combine(dest, "..d.img"), VaultRecordChecks.JoinInside(dest, "..d.img", "", "k")); // a name, not a parent
        foreach (var bad in new[] { "..", ".", "", "a/b", "/etc/passwd", "a\\b", "a\0b", "a\tb", new string('x', 256) })
            Assert.Equal(AsrErrorIds.VaultDataCorrupt, Assert.Throws<AsrException>(() => VaultRecordChecks.JoinInside(dest, bad, "", "k")).ErrorId);
        Assert.Null(VaultRecordChecks.FileNameProblem(new string('x', 255)));
        Assert.NotNull(VaultRecordChecks.FileNameProblem("bad\uD800surrogate"));
    }

    [Fact]
    public async Task An_item_record_with_a_planted_disk_name_is_refused_on_read()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("m", 1 << 20, 32);
        string key = VaultLayout.Item(item.Id);
        VaultTamper.EditJson(h, key, i => i["disks"]![0]!["name"] = "../../escape.img");
        var listed = Assert.Single(await h.Vault.Catalog.ListItemsAsync(default));
        foreach (var ex in new[] { await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetItemAsync("m", default)), listed.Error! })
        {
            Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
            Assert.Contains(key, ex.Message);
            Assert.Contains("'m'", ex.Message); // named by its name claim
            Assert.Contains("../../escape.img", ex.Message);
        }
        Assert.Empty(await h.Vault.GetItemsAsync(default)); // the engine's own users (agent, plans) skip it
    }

    [Fact]
    public async Task An_item_record_with_a_disk_id_that_is_not_a_key_segment_is_refused_on_read()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("m", 1 << 20, 33);
        VaultTamper.EditJson(h, VaultLayout.Item(item.Id), i => i["disks"]![0]!["diskId"] = "../disk0");
        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetItemAsync("m", default));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains("../disk0", ex.Message);
    }

    [Fact]
    public async Task A_manifest_stored_under_another_point_or_item_is_refused()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("m", 1 << 20, 34);
        string key = VaultLayout.PointManifest(item.Id, 1);
        VaultTamper.EditJson(h, key, m => m["sequence"] = 5);
        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetPointAsync(item.Id, 1, default));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains(key, ex.Message);
    }

    [Fact]
    public async Task A_failover_from_a_planted_point_fails_and_writes_nothing_outside_its_machine_directory()
    {
        var (h, item, _, key) = await PlantedAsync("parent");
        using var _h = h;
        var target = new AsrLocalTarget(h.Dir["target"]);
        string machineDir = target.MachineDirectory(item.Name);
        var before = VaultTamper.FilesOutside(h, machineDir);

        var ex = await Assert.ThrowsAsync<AsrException>(() =>
            new FailoverService(h.Vault).FailoverAsync(item, FailoverType.Unplanned, RecoveryPointChoice.LatestProcessed, target, JobContext.Detached()));

        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains(key, ex.Message);
        Assert.Equal(before, VaultTamper.FilesOutside(h, machineDir));
        var after = await h.Vault.GetItemAsync("m", default);
        Assert.Equal(ProtectedItemState.Protected, after.State);
        Assert.Null(after.ExclusiveOperation);
    }

    [Fact]
    public async Task A_drill_from_a_planted_point_fails_and_leaves_nothing_behind()
    {
        var (h, item, _, key) = await PlantedAsync("parent");
        using var _h = h;
        string drills = h.Dir["drills"];
        var before = VaultTamper.FilesOutside(h, h.Dir["none"]);

        var ex = await Assert.ThrowsAsync<AsrException>(() =>
            new TestFailoverService(h.Vault).StartAsync(item, RecoveryPointChoice.LatestProcessed, new AsrLocalTarget(drills), null, JobContext.Detached()));

        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains(key, ex.Message);
        Assert.Equal(before, VaultTamper.FilesOutside(h, h.Dir["none"]));
        Assert.Equal(ProtectedItemState.Protected, (await h.Vault.GetItemAsync("m", default)).State);
    }
}
