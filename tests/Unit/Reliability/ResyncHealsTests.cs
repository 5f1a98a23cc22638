using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;
using AsrModule.Tests.Unit.Untrusted;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Reliability;

/// <summary>
/// Resync heals the vault (#12, item 5): a point whose data is damaged (a flipped, truncated or missing pack, a damaged
/// or missing index) is repaired from the source by the resync (Resume-AsrResync's engine call): the new point reads
/// nothing damaged, verifies and exports bit-exact, and the damaged points stay listed as damaged. A plain cycle
/// never builds on damage it can see in its listings (the latest point's own objects missing or short); damage it
/// cannot see (a flipped byte, an older point's objects) is found by the next export, which marks the item for resync.
/// </summary>
public sealed class ResyncHealsTests(ITestOutputHelper output)
{
    private sealed record Setup(EngineHarness H, string Disk, AsrProtectedItem Item, AsrRecoveryPoint First, AsrRecoveryPoint Latest) : IDisposable
    {
        public void Dispose() => H.Dispose();
    }

    /// <summary>Point 1 (initial) and point 2 (a delta over it: most of its blocks live in point 1's pack) of a 4 MiB disk.</summary>
    private static async Task<Setup> TwoPointsAsync(string? passphrase = null)
    {
        var h = await EngineHarness.CreateAsync(passphrase, compressionLevel: 1);
        var (disk, item) = await h.NewMachineAsync("m", 4L << 20, 71);
        TestDisks.ScatterWrites(disk, 0.05, 72);
        Assert.Equal("Delta", (await h.CycleAsync("m")).Mode);
        var points = await h.Vault.GetPointsAsync(item, default);
        return new Setup(h, disk, await h.Vault.GetItemAsync("m", default), points[0], points[1]);
    }

    /// <summary>What was damaged: the object, and which of its extents no longer read back (by pack offset and length).</summary>
    private sealed record Damage(string Key, Func<ExtentRecord, bool> Unreadable);

    /// <summary>Damages one object.</summary>
    private static async Task<Damage> DamageAsync(Setup s, string damage)
    {
        var h = s.H;
        // A pack of point 1 that point 2 still reads (unchanged blocks), or point 2's own pack.
        string OldPack() => s.First.Packs.Single();
        string LatestPack() => s.Latest.Packs.Single();
        string key = damage switch
        {
            "flip old pack" or "truncate old pack" or "delete old pack" => OldPack(),
            "flip latest pack" or "truncate latest pack" or "delete latest pack" => LatestPack(),
            "cut latest index" or "delete latest index" => VaultLayout.PointIndex(s.Latest, "disk0"),
            "delete old index" => VaultLayout.PointIndex(s.First, "disk0"),
            _ => throw new ArgumentException(damage),
        };
        string path = VaultTamper.PathOf(h, key);
        Func<ExtentRecord, bool> unreadable = _ => true;
        if (damage.StartsWith("flip", StringComparison.Ordinal))
        {
            // An extent of that pack the latest point reads.
            using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, s.Latest, "disk0", default);
            long sequence = VaultLayout.SequenceOf(key);
            var live = reader.Map.Segments.Select(g => reader.Map.Extents[g.ExtentRef])
                .First(e => e.Sequence == sequence && e.Record.StoredLength > 64).Record;
            for (int i = 0; i < 4; i++) VaultTamper.FlipByte(path, live.PackOffset + live.StoredLength / 3 + i);
            unreadable = r => r.PackOffset == live.PackOffset;
        }
        else if (damage.StartsWith("truncate", StringComparison.Ordinal))
        {
            long length = new FileInfo(path).Length / 2;
            VaultTamper.Truncate(path, length);
            unreadable = r => r.PackOffset + r.StoredLength > length;
        }
        else if (damage.StartsWith("cut", StringComparison.Ordinal)) VaultTamper.Truncate(path, 20);
        else File.Delete(path);
        return new Damage(key, unreadable);
    }

    private async Task AssertWholeAsync(Setup s, AsrJobResult result, Damage damage)
    {
        var h = s.H;
        var point = await h.Vault.GetPointAsync(s.Item.Id, result.RecoveryPointSequence!.Value, default);
        Assert.True((await RecoveryPointVerifier.VerifyAsync(h.Vault, point, default)).Verified);
        Assert.Equal(TestDisks.Sha256(s.Disk), (await h.ExportHashesAsync(point))["d.img"]);
        // It reads nothing of the damaged object: not its index (the chain avoids it), not its pack's live extents.
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, point, "disk0", default);
        var chain = await h.Vault.GetPointChainAsync(point, default);
        Assert.DoesNotContain(chain, p => VaultLayout.PointIndex(p, "disk0") == damage.Key);
        Assert.DoesNotContain(reader.Map.Segments, g => reader.Map.Extents[g.ExtentRef] is var e
            && reader.PackKey(g.ExtentRef) == damage.Key && (e.Record.Flags & ExtentFlags.Zero) == 0 && damage.Unreadable(e.Record));
        var item = await h.Vault.GetItemAsync("m", default);
        Assert.Equal(ProtectedItemState.Protected, item.State);
        Assert.Null(item.ResyncReason);
        output.WriteLine($"{result.Mode} point {point.Sequence} (parent {point.ParentSequence?.ToString() ?? "none"}): {result.BytesStored:N0} B stored. {result.Note}");
    }

    public static TheoryData<string, string?> Damages => new()
    {
        { "flip old pack", null },
        { "truncate old pack", null },
        { "delete old pack", null },
        { "flip latest pack", "k" },
        { "truncate latest pack", null },
        { "cut latest index", null },
        { "delete latest index", "k" },
        { "delete old index", null },
    };

    [Theory]
    [MemberData(nameof(Damages))]
    public async Task Resync_after_damage_publishes_a_whole_point_and_the_damaged_points_stay_damaged(string damage, string? passphrase)
    {
        using var s = await TwoPointsAsync(passphrase);
        var damaged = await DamageAsync(s, damage);
        // The damage shows where a point is read: the latest point does not verify.
        Assert.False((await RecoveryPointVerifier.VerifyAsync(s.H.Vault, s.Latest, default)).Verified);
        TestDisks.ScatterWrites(s.Disk, 0.01, 73); // the machine goes on writing

        var result = await s.H.CycleAsync("m", resync: true);
        Assert.Equal("Resync", result.Mode);
        Assert.Contains("Repaired", result.Note);
        await AssertWholeAsync(s, result, damaged);
        // Not silently "fixed": the damaged point still fails its check, naming the object.
        var old = await RecoveryPointVerifier.VerifyAsync(s.H.Vault, s.Latest, default);
        Assert.False(old.Verified);
        Assert.Contains(damaged.Key, old.Disks.Single().Error);
        // A resync over an older base (or a full copy) is what a damaged index leaves; a damaged pack keeps the latest as the base.
        var healed = await s.H.Vault.GetPointAsync(s.Item.Id, result.RecoveryPointSequence!.Value, default);
        long? expectedParent = damage switch
        {
            "cut latest index" or "delete latest index" => s.First.Sequence,
            "delete old index" => null,
            _ => s.Latest.Sequence,
        };
        Assert.Equal(expectedParent, healed.ParentSequence);
        Assert.Contains(await s.H.Vault.Events.ListAsync(DateTimeOffset.MinValue, default), e => e.EventType == Engine.Events.AsrEventTypes.ReplicaRepaired);
        // And the next plain cycle is an ordinary delta over the healed point.
        TestDisks.ScatterWrites(s.Disk, 0.01, 74);
        var next = await s.H.CycleAsync("m");
        Assert.Equal("Delta", next.Mode);
        Assert.Equal(TestDisks.Sha256(s.Disk), (await s.H.ExportHashesAsync(await s.H.Vault.GetPointAsync(s.Item.Id, next.RecoveryPointSequence!.Value, default)))["d.img"]);
    }

    /// <summary>What a plain cycle's listings show (no extra request): the latest point's own index or pack missing or short.</summary>
    [Theory]
    [InlineData("delete latest pack")]
    [InlineData("truncate latest pack")]
    [InlineData("delete latest index")]
    public async Task A_plain_cycle_that_sees_the_latest_points_objects_missing_or_short_resyncs_instead_of_building_on_them(string damage)
    {
        using var s = await TwoPointsAsync();
        var damaged = await DamageAsync(s, damage);
        TestDisks.ScatterWrites(s.Disk, 0.01, 73);
        var result = await s.H.CycleAsync("m");
        Assert.Equal("Resync", result.Mode);
        Assert.Contains(damaged.Key, result.Note);
        await AssertWholeAsync(s, result, damaged);
    }

    /// <summary>
    /// What a plain cycle cannot see without reading old data (it trusts its tracker): a flipped byte, an index cut
    /// short but not empty. Its point is a delta over the damage, like the point before it; the first export of it fails
    /// (VaultDataCorrupt) and marks the item ResyncRequired, and the next cycle, plain as it is, resyncs and heals (over
    /// point 1 when point 2's index is the damage: point 3, built on it, does not read either).
    /// </summary>
    [Theory]
    [InlineData("flip old pack")]
    [InlineData("cut latest index")]
    public async Task Damage_a_plain_cycle_cannot_see_is_found_by_the_next_export_which_marks_the_item_and_the_next_cycle_heals(string damage)
    {
        using var s = await TwoPointsAsync();
        var damaged = await DamageAsync(s, damage);
        TestDisks.ScatterWrites(s.Disk, 0.01, 73);
        var blind = await s.H.CycleAsync("m");
        Assert.Equal("Delta", blind.Mode);
        var point = await s.H.Vault.GetPointAsync(s.Item.Id, blind.RecoveryPointSequence!.Value, default);
        var ex = await Assert.ThrowsAsync<AsrException>(() => s.H.ExportHashesAsync(point));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        var marked = await s.H.Vault.GetItemAsync("m", default);
        Assert.Equal(ProtectedItemState.ResyncRequired, marked.State);
        Assert.Contains(damaged.Key, marked.ResyncReason);
        Assert.Contains(await s.H.Vault.Events.ListAsync(DateTimeOffset.MinValue, default), e => e.EventType == Engine.Events.AsrEventTypes.ReplicaDamaged);

        var healed = await s.H.CycleAsync("m");
        Assert.Equal("Resync", healed.Mode);
        await AssertWholeAsync(s, healed, damaged);
    }

    /// <summary>An index that is damaged along the whole chain (point 1's, which every later point reads) leaves no point to compare with: the resync is a full copy.</summary>
    [Fact]
    public async Task A_damaged_index_under_every_point_makes_the_resync_a_full_copy()
    {
        using var s = await TwoPointsAsync();
        var damaged = await DamageAsync(s, "delete old index");
        var result = await s.H.CycleAsync("m", resync: true);
        var healed = await s.H.Vault.GetPointAsync(s.Item.Id, result.RecoveryPointSequence!.Value, default);
        Assert.Null(healed.ParentSequence);
        Assert.Contains("full copy", result.Note);
        await AssertWholeAsync(s, result, damaged);
        // Both older points stay listed, and damaged.
        Assert.Equal(3, (await s.H.Vault.GetPointsAsync(s.Item, default)).Count);
        foreach (var p in new[] { s.First, s.Latest })
            Assert.False((await RecoveryPointVerifier.VerifyAsync(s.H.Vault, p, default)).Verified);
    }
}
