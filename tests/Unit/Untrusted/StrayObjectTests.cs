using AsrModule.Engine.Jobs;
using AsrModule.Engine.Retention;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// Files under an item's folders whose names are not the engine's own are not ours: a cycle and retention
/// ignore them with a warning instead of failing, and never delete them (issue #12, D).
/// </summary>
public class StrayObjectTests
{
    [Fact]
    public async Task Stray_files_are_ignored_with_a_warning_and_left_untouched_by_cycles_and_retention()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("m", 1 << 20, 61);
        string id = item.Id;
        var strays = new[]
        {
            $"items/{id}/packs/junk.txt",
            $"items/{id}/packs/999999999999-junk.pack",        // starts like a leftover of a later sequence
            $"items/{id}/packs/nested/000000000099-0000.pack", // named like ours, but not where ours are
            $"items/{id}/packs/000000000001-0000.pack.orig",
            $"items/{id}/index/notes",
            $"items/{id}/index/000000000001-disk0.idx.bak",    // starts like a pruned point's index
            $"items/{id}/index/1-disk0.idx",                   // not zero-padded as ours are
            $"items/{id}/tracker/README",
            $"items/{id}/tracker/disk0-abc.hashes",
            $"items/{id}/points/notes.json",
            $"pins/{id}/notes.txt",
        };
        foreach (var key in strays) VaultTamper.Plant(h, key, "stray: " + key);

        var logger = new ListLogger();
        var vault = await AsrVault.OpenLocalAsync(h.Dir["vault"], null, logger);
        var replication = new Engine.Replication.ReplicationService(vault);
        TestDisks.ScatterWrites(disk, 0.05, 62);
        using (await replication.PrepareCycleAsync(item, false, default))
        {
            var result = await replication.RunCycleAsync(item, false, new JobContext(new AsrJob { Id = Guid.NewGuid() }, default, null, logger));
            Assert.Equal(2, result.RecoveryPointSequence);
        }
        await RetentionService.ApplyAsync(vault, await vault.GetItemAsync("m", default), default);

        Assert.DoesNotContain(logger.Warnings, w => w.Contains("Retention of", StringComparison.Ordinal));
        foreach (var key in strays)
        {
            Assert.True(File.Exists(VaultTamper.PathOf(h, key)), $"{key} was deleted");
            Assert.Equal("stray: " + key, File.ReadAllText(VaultTamper.PathOf(h, key)));
        }
        foreach (var key in strays.Where(k => !k.Contains("/points/")))
            Assert.Contains(logger.Warnings, w => w.Contains(key, StringComparison.Ordinal));
        Assert.Equal([1L, 2L], (await vault.GetPointsAsync(item, default)).Select(p => p.Sequence));
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync((await vault.GetPointsAsync(item, default))[^1]))["d.img"]);
    }

    [Theory]
    [InlineData("items/0123456789abcdef/packs/000000000001-0000.pack", 1)]
    [InlineData("items/0123456789abcdef/packs/000000000012-12345.pack", 12)]
    [InlineData("items/0123456789abcdef/index/000000000003-disk0.idx", 3)]
    [InlineData("items/0123456789abcdef/index/000000000003-disk0.g0002.map", 3)]
    [InlineData("items/0123456789abcdef/tracker/disk1-000000000004.hashes", 4)]
    [InlineData("items/0123456789abcdef/tracker/disk-1-000000000004.hashes", 4)]
    // Named per cycle attempt (points with an attempt id in their manifest).
    [InlineData("items/0123456789abcdef/packs/000000000001.0a1b2c3d-0000.pack", 1, "0a1b2c3d")]
    [InlineData("items/0123456789abcdef/index/000000000003.ffffffff-disk0.idx", 3, "ffffffff")]
    [InlineData("items/0123456789abcdef/tracker/disk-1-000000000004.01234567.hashes", 4, "01234567")]
    public void The_engines_own_names_parse(string key, long sequence, string? attempt = null)
    {
        Assert.True(VaultLayout.TryParseObjectSequence(key, out long parsed));
        Assert.Equal(sequence, parsed);
        Assert.Equal(sequence, VaultLayout.SequenceOf(key));
        Assert.True(VaultLayout.TryParseObjectKey(key, out _, out string? parsedAttempt));
        Assert.Equal(attempt, parsedAttempt);
    }

    [Fact]
    public void Names_are_built_as_they_parse()
    {
        Assert.Equal("items/i/packs/000000000007.0a1b2c3d-0002.pack", VaultLayout.Pack("i", 7, "0a1b2c3d", 2));
        Assert.Equal("items/i/packs/000000000007-0002.pack", VaultLayout.Pack("i", 7, null, 2));
        Assert.Equal("items/i/index/000000000007.0a1b2c3d-disk0.idx", VaultLayout.PointIndex("i", 7, "0a1b2c3d", "disk0"));
        Assert.Equal("items/i/tracker/disk0-000000000007.0a1b2c3d.hashes", VaultLayout.Tracker("i", "disk0", 7, "0a1b2c3d"));
        Assert.True(VaultLayout.IsValidAttemptId(VaultLayout.NewAttemptId()));
    }

    [Theory]
    [InlineData("items/0123456789abcdef/packs/junk.txt")]
    [InlineData("items/0123456789abcdef/packs/-1-0000.pack")]
    [InlineData("items/0123456789abcdef/packs/+00000000001-0000.pack")]
    [InlineData("items/0123456789abcdef/packs/000000000000-0000.pack")]
    [InlineData("items/0123456789abcdef/packs/000000000001-0000.pack.tmp")]
    [InlineData("items/0123456789abcdef/packs/sub/000000000001-0000.pack")]
    [InlineData("items/0123456789abcdef/index/000000000001-.idx")]
    [InlineData("items/0123456789abcdef/index/000000000001-disk0.g.map")]
    [InlineData("items/0123456789abcdef/index/000000000001-disk0")]
    [InlineData("items/0123456789abcdef/tracker/-000000000001.hashes")]
    [InlineData("items/0123456789abcdef/tracker/disk0-1.hashes")]
    [InlineData("items/0123456789abcdef/points/000000000001.json")]
    [InlineData("items/0123456789abcdef/packs/000000000001.0A1B2C3D-0000.pack")] // attempt ids are lowercase hex
    [InlineData("items/0123456789abcdef/packs/000000000001.0a1b2c3-0000.pack")]  // of 8 digits
    [InlineData("items/0123456789abcdef/packs/000000000001.-0000.pack")]
    [InlineData("items/0123456789abcdef/index/000000000001.0a1b2c3d-disk0.g0001.map")] // full maps carry none
    [InlineData("pins/0123456789abcdef/000000000001-0000.pack")]
    public void Anything_else_does_not(string key) => Assert.False(VaultLayout.TryParseObjectSequence(key, out _));
}
