using System.Text.Json.Nodes;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Replication.TrackerTables;
using AsrModule.Engine.Security;
using AsrModule.Engine.Vault;
using AsrModule.Tests.Unit.Untrusted;

namespace AsrModule.Tests.Unit.Replication;

/// <summary>
/// The change tracker in segments (issue #15 item 3): a cycle holds one segment of the old and new block hashes at a
/// time, writes only the segments that changed and names the others where an older cycle wrote them, so a disk of any
/// size is tracked in bounded memory; every point still exports and verifies bit-exact.
/// </summary>
public sealed class SegmentedTrackerTests
{
    /// <summary>64 KiB of 4 KiB blocks: a 4 MiB test disk has 64 segments.</summary>
    private const int SegmentBlocks = 16;
    private const int Bs = 4096;

    private static async Task<List<string>> TrackerObjectsAsync(EngineHarness h, string itemId) =>
        (await h.Vault.Store.ListAsync(VaultLayout.TrackerDirPrefix(itemId), default)).Select(o => o.Key).ToList();

    private static long SequenceOf(string key) => VaultLayout.SequenceOf(key);

    private static void WriteBlock(string path, long block, int seed)
    {
        var data = new byte[Bs];
        new Random(seed).NextBytes(data);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.Position = block * Bs;
        fs.Write(data);
    }

    private static async Task AssertVerifiesAsync(EngineHarness h, AsrRecoveryPoint point)
    {
        var verification = await RecoveryPointVerifier.VerifyAsync(h.Vault, point, default);
        Assert.True(verification.Verified, string.Join("; ", verification.Disks.Select(d => $"{d.Disk}: {d.ExpectedDigest} vs {d.ActualDigest} {d.Error}")) + verification.Error);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("segment key")]
    public async Task A_delta_writes_only_the_segments_it_changed_and_names_the_others_where_they_are(string? key)
    {
        HashSegments.UseSegmentBlocks(SegmentBlocks);
        using var h = await EngineHarness.CreateAsync(key);
        // 4 MiB: the first 2 MiB data (random, text), the last 2 MiB zeros: 32 stored segments, 32 zero ones.
        var (disk, item) = await h.NewMachineAsync("m", 4L << 20, 31);
        string pointOneSha = TestDisks.Sha256(disk);
        var first = await TrackerObjectsAsync(h, item.Id);
        Assert.Single(first, k => k.EndsWith(".trk", StringComparison.Ordinal));
        Assert.Equal(32, first.Count(k => k.EndsWith(".seg", StringComparison.Ordinal)));

        WriteBlock(disk, 5 * SegmentBlocks + 3, 1);   // a data segment
        WriteBlock(disk, 40 * SegmentBlocks + 1, 2);  // a zero segment gets data
        string pointTwoSha = TestDisks.Sha256(disk);
        var r = await h.CycleAsync("m");
        Assert.Equal("Delta", r.Mode);

        var second = await TrackerObjectsAsync(h, item.Id);
        var written = second.Where(k => k.EndsWith(".seg", StringComparison.Ordinal) && SequenceOf(k) == 2).Order().ToList();
        Assert.Equal(2, written.Count);
        Assert.EndsWith(".000005.seg", written[0]);
        Assert.EndsWith(".000040.seg", written[1]);
        // The other 31 data segments are still point 1's objects, named by the new map; point 1's map and its segment 5 are gone.
        Assert.Equal(31, second.Count(k => k.EndsWith(".seg", StringComparison.Ordinal) && SequenceOf(k) == 1));
        Assert.DoesNotContain(second, k => k.EndsWith(".trk", StringComparison.Ordinal) && SequenceOf(k) == 1);
        Assert.DoesNotContain(second, k => SequenceOf(k) == 1 && k.EndsWith(".000005.seg", StringComparison.Ordinal));

        var points = await h.Vault.GetPointsAsync(await h.Vault.GetItemAsync("m", default), default);
        Assert.All(points, p => Assert.Equal(3, p.FormatVersion));
        Assert.All(points, p => Assert.Equal(SegmentBlocks, p.Disks[0].DigestSegmentBlocks));
        Assert.Equal(pointOneSha, (await h.ExportHashesAsync(points[0])).Single().Value);
        Assert.Equal(pointTwoSha, (await h.ExportHashesAsync(points[1])).Single().Value);
        foreach (var p in points) await AssertVerifiesAsync(h, p);

        // Nothing changed: no segment is written, only the map.
        r = await h.CycleAsync("m");
        Assert.Equal(0, r.ChangedBytes);
        var third = await TrackerObjectsAsync(h, item.Id);
        Assert.DoesNotContain(third, k => k.EndsWith(".seg", StringComparison.Ordinal) && SequenceOf(k) == 3);
        Assert.Single(third, k => k.EndsWith(".trk", StringComparison.Ordinal));
        Assert.Equal(33, third.Count(k => k.EndsWith(".seg", StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("segment key")]
    public async Task A_damaged_segment_fails_the_delta_as_VaultDataCorrupt_and_the_next_cycle_resyncs_exact(string? key)
    {
        HashSegments.UseSegmentBlocks(SegmentBlocks);
        using var h = await EngineHarness.CreateAsync(key);
        var (disk, item) = await h.NewMachineAsync("m", 4L << 20, 32);
        string segment = (await TrackerObjectsAsync(h, item.Id)).Single(k => k.EndsWith(".000007.seg", StringComparison.Ordinal));
        string path = VaultTamper.PathOf(h, segment);
        VaultTamper.FlipByte(path, new FileInfo(path).Length - 20);
        TestDisks.ScatterWrites(disk, 0.02, 33);

        var ex = await Assert.ThrowsAsync<AsrException>(() => h.CycleAsync("m"));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains(segment, ex.Message);
        Assert.Contains("ResyncRequired", ex.Message);
        Assert.Equal(ProtectedItemState.ResyncRequired, (await h.Vault.GetItemAsync("m", default)).State);
        Assert.Single(await h.Vault.GetPointsAsync(await h.Vault.GetItemAsync("m", default), default)); // nothing published

        var r = await h.CycleAsync("m");
        Assert.Equal("Resync", r.Mode);
        var latest = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(latest)).Single().Value);
        await AssertVerifiesAsync(h, latest);
        Assert.Equal(ProtectedItemState.Protected, (await h.Vault.GetItemAsync("m", default)).State);
    }

    /// <summary>A vault written before segments: its latest point's tracker is one whole table, its digest over the whole table.</summary>
    [Fact]
    public async Task A_point_written_before_segments_is_the_baseline_of_the_next_delta_and_still_verifies()
    {
        HashSegments.UseSegmentBlocks(SegmentBlocks);
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("m", 4L << 20, 34);
        string pointOneSha = TestDisks.Sha256(disk);
        // Rewrite point 1 as the previous format wrote it.
        var p1 = await h.Vault.GetPointAsync(item.Id, 1, default);
        var table = (await StoredTrackers.ReadWholeAsync(h.Vault, item.Id, item.Disks[0], p1, default))!;
        string legacyKey = VaultLayout.Tracker(p1, "disk0");
        await h.Vault.Store.WriteAsync(legacyKey, MetadataSealer.Seal(table.ToBytes(), h.Vault.Key, legacyKey), default);
        foreach (var k in await TrackerObjectsAsync(h, item.Id))
            if (!k.EndsWith(".hashes", StringComparison.Ordinal)) await h.Vault.Store.DeleteAsync(k, default);
        VaultTamper.EditJson(h, VaultLayout.PointManifest(item.Id, 1), n =>
        {
            n["formatVersion"] = 2;
            var d = n["disks"]![0]!.AsObject();
            d.Remove("digestSegmentBlocks");
            d["contentDigest"] = table.Digest();
        });
        p1 = await h.Vault.GetPointAsync(item.Id, 1, default);
        Assert.Null(p1.Disks[0].DigestSegmentBlocks);
        await AssertVerifiesAsync(h, p1);

        TestDisks.ScatterWrites(disk, 0.02, 35);
        var r = await h.CycleAsync("m");
        Assert.Equal("Delta", r.Mode); // the whole table was trusted as the baseline: no resync
        var p2 = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(3, p2.FormatVersion);
        Assert.Equal(pointOneSha, (await h.ExportHashesAsync(p1)).Single().Value);
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(p2)).Single().Value);
        await AssertVerifiesAsync(h, p2);
        var objects = await TrackerObjectsAsync(h, item.Id);
        Assert.DoesNotContain(objects, k => k.EndsWith(".hashes", StringComparison.Ordinal));
        Assert.All(objects, k => Assert.Equal(2, SequenceOf(k)));
    }

    /// <summary>
    /// A disk of exactly 1 TiB (268,435,456 blocks: a whole table of 2 GiB, which no longer exists anywhere in a cycle) with
    /// a few MiB of data: the tracker stores the segments with data, the rest is zero; points verify; a delta writes only
    /// the segments it changed.
    /// </summary>
    [Fact]
    public async Task A_terabyte_sparse_disk_replicates_in_segments_and_its_points_verify()
    {
        using var h = await EngineHarness.CreateAsync("tib key");
        string disk = h.Dir["big.img"];
        const long TiB = 1L << 40;
        var data = new byte[1 << 20];
        using (var fs = new FileStream(disk, FileMode.Create, FileAccess.Write))
        {
            fs.SetLength(TiB);
            foreach (long at in new[] { 0L, 300L << 30, TiB - (1 << 20) })
            {
                new Random((int)(at >> 20)).NextBytes(data);
                fs.Position = at;
                fs.Write(data);
            }
        }
        var item = await h.EnableAsync("big", disk);
        var p1 = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(TiB, p1.Disks[0].SizeBytes);
        Assert.Equal(HashSegments.DefaultSegmentBlocks, p1.Disks[0].DigestSegmentBlocks);
        var objects = await TrackerObjectsAsync(h, item.Id);
        // Segments of 256 MiB: 0, 1200 (300 GiB) and 4095 (the last) hold data; 4,093 are zero and not stored.
        Assert.Equal(new[] { ".000000.seg", ".001200.seg", ".004095.seg" }, objects.Where(k => k.EndsWith(".seg", StringComparison.Ordinal)).Order().Select(k => k[^11..]));

        WriteBlock(disk, 3, 7);                      // in segment 0
        WriteBlock(disk, (512L << 30) / Bs, 8);      // 512 GiB: segment 2048, zero until now
        var r = await h.CycleAsync("big");
        Assert.Equal("Delta", r.Mode);
        var p2 = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        objects = await TrackerObjectsAsync(h, item.Id);
        Assert.Equal(new[] { ".000000.seg", ".002048.seg" },
            objects.Where(k => k.EndsWith(".seg", StringComparison.Ordinal) && SequenceOf(k) == 2).Order().Select(k => k[^11..]));
        Assert.Equal(2, objects.Count(k => k.EndsWith(".seg", StringComparison.Ordinal) && SequenceOf(k) == 1)); // 1200 and 4095 carried over

        // The bytes: every point's digest recomputed from what the vault holds, and the written places read back.
        await AssertVerifiesAsync(h, p1);
        await AssertVerifiesAsync(h, p2);
        using var reader = await RecoveryPointDiskReader.OpenAsync(h.Vault, p2, "disk0", default);
        using var source = new FileStream(disk, FileMode.Open, FileAccess.Read);
        foreach (long at in new[] { 0L, 300L << 30, 512L << 30, TiB - (1 << 20), 700L << 30 })
        {
            var expected = new byte[1 << 20];
            source.Position = at;
            source.ReadExactly(expected);
            var got = new byte[1 << 20];
            await reader.ReadAsync(at, got, default);
            Assert.True(expected.AsSpan().SequenceEqual(got), $"bytes at {at:N0} differ");
        }
    }

    /// <summary>
    /// After a point is published its cycle removes the tracker objects no new map names, but nothing when a later
    /// point's tracker exists (a session that took the item over while this one stalled published since, and its map
    /// may name the older segments).
    /// </summary>
    [Fact]
    public async Task Removing_old_trackers_spares_what_the_new_maps_name_and_stops_when_a_later_point_has_one()
    {
        HashSegments.UseSegmentBlocks(SegmentBlocks);
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("m", 4L << 20, 36);
        TestDisks.ScatterWrites(disk, 0.01, 37);
        await h.CycleAsync("m");
        var published = await TrackerObjectsAsync(h, item.Id);
        var point2 = new HashSet<string>(published);
        string stale = VaultLayout.TrackerSegment(item.Id, "disk0", 1, "0badcafe", 63);
        string newerMap = VaultLayout.TrackerMap(item.Id, "disk0", 3, "0badcafe");
        await h.Vault.Store.WriteAsync(stale, new byte[] { 1 }, default);
        await h.Vault.Store.WriteAsync(newerMap, new byte[] { 1 }, default);
        var log = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;

        await CycleObjects.RemoveOldTrackersAsync(h.Vault, item.Id, 2, point2, log);
        Assert.Equal(published.Append(stale).Append(newerMap).Order(), (await TrackerObjectsAsync(h, item.Id)).Order());

        await h.Vault.Store.DeleteAsync(newerMap, default);
        await CycleObjects.RemoveOldTrackersAsync(h.Vault, item.Id, 2, point2, log);
        Assert.Equal(published.Order(), (await TrackerObjectsAsync(h, item.Id)).Order());
        TestDisks.ScatterWrites(disk, 0.01, 38);
        Assert.Equal("Delta", (await h.CycleAsync("m")).Mode); // point 2's tracker is whole
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync((await h.Vault.GetLatestPointAsync(item.Id, default))!)).Single().Value);
    }

    [Fact]
    public async Task A_disk_of_8_TiB_is_refused_at_enable_as_DiskUnsupported()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["huge.img"];
        using (var fs = new FileStream(disk, FileMode.Create, FileAccess.Write)) fs.SetLength(8L << 40);
        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Replication.RegisterAsync("huge", [disk], "default", default));
        Assert.Equal(AsrErrorIds.DiskUnsupported, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains("-BlockSize", ex.Message);
        // A larger block size protects it (a quarter of the blocks).
        var item = await h.Replication.RegisterAsync("huge", [disk], "default", default, blockSize: 16384);
        Assert.Equal(8L << 40, item.Disks[0].SizeBytes);
    }

    [Fact]
    public void A_tracker_map_round_trips_and_every_malformed_field_is_refused()
    {
        long size = 100L * Bs + 100; // 101 blocks, the last one short: 7 segments of 16
        var digest = Enumerable.Range(0, 16).Select(i => (byte)i).ToArray();
        var segments = Enumerable.Range(0, 7).Select(i => i % 3 == 0 ? TrackerSegment.Zero : new TrackerSegment(TrackerSegmentKind.Stored, digest, 3, "0a0b0c0d")).ToArray();
        var bytes = new TrackerMap(size, Bs, SegmentBlocks, segments).Encode();
        var map = TrackerMap.Decode(bytes, size, Bs, 3);
        Assert.Equal(7, map.Segments.Length);
        Assert.Equal(TrackerSegmentKind.Zero, map.Segments[3].Kind);
        Assert.Equal("0a0b0c0d", map.Segments[4].WriterAttempt);
        Assert.Equal(3, map.Segments[4].WriterSequence);
        Assert.Equal("items/i/tracker/disk0-000000000003.0a0b0c0d.000004.seg", map.SegmentKeys("i", "disk0").ElementAt(2));

        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode(bytes, size + Bs, Bs, 3));      // another disk size
        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode(bytes, size, 512, 3));          // another block size
        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode(bytes, size, Bs, 2));           // a writer newer than the map
        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode(bytes[..^1], size, Bs, 3));     // truncated
        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode([.. bytes, 0], size, Bs, 3));   // trailing bytes
        var badKind = (byte[])bytes.Clone();
        badKind[28] = 9;
        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode(badKind, size, Bs, 3));
        var badSegments = (byte[])bytes.Clone();
        BitConverter.TryWriteBytes(badSegments.AsSpan(20), 12);                                      // not a power of two
        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode(badSegments, size, Bs, 3));
        var badCount = (byte[])bytes.Clone();
        BitConverter.TryWriteBytes(badCount.AsSpan(24), 6);
        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode(badCount, size, Bs, 3));

        // A one-segment disk is inline, checked against its digest.
        var hashes = Enumerable.Range(0, 7).Select(i => (ulong)i * 0x9E3779B97F4A7C15UL).ToArray();
        var inline = new TrackerMap(7L * Bs, Bs, SegmentBlocks, [new TrackerSegment(TrackerSegmentKind.Inline, HashSegments.SegmentDigest(hashes), Hashes: hashes)]).Encode();
        Assert.Equal(hashes, TrackerMap.Decode(inline, 7L * Bs, Bs, 1).Segments[0].Hashes);
        inline[^3] ^= 1;
        Assert.Throws<InvalidDataException>(() => TrackerMap.Decode(inline, 7L * Bs, Bs, 1));
    }

    [Theory]
    [InlineData("items/0123456789abcdef/tracker/disk0-000000000004.0a1b2c3d.trk", 4)]
    [InlineData("items/0123456789abcdef/tracker/disk-1-000000000004.0a1b2c3d.000017.seg", 4)]
    public void Tracker_maps_and_segments_are_the_engine_s_own_objects(string key, long sequence)
    {
        Assert.True(VaultLayout.TryParseObjectSequence(key, out long parsed));
        Assert.Equal(sequence, parsed);
    }

    [Theory]
    [InlineData("items/0123456789abcdef/tracker/disk0-000000000004.trk")]             // a map without an attempt
    [InlineData("items/0123456789abcdef/tracker/disk0-000000000004.0a1b2c3d.17.seg")] // not six digits
    [InlineData("items/0123456789abcdef/tracker/disk0-000000000004.0a1b2c3d.seg")]    // no segment number
    [InlineData("items/0123456789abcdef/tracker/disk0-000000000004.0a1b2c3d.000001.seg.bak")]
    public void Names_that_only_look_like_tracker_objects_are_not_ours(string key) =>
        Assert.False(VaultLayout.TryParseObjectSequence(key, out _));
}
