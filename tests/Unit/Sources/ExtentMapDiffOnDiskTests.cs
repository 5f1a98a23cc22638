using Xunit.Abstractions;
using AsrModule.Engine.Replication.Sources.Linux;
using AsrModule.Engine.Replication.Tracking;
using Microsoft.Win32.SafeHandles;
using static AsrModule.Tests.Unit.Sources.SourceTestFiles;

namespace AsrModule.Tests.Unit.Sources;

/// <summary>
/// Real reflink clones on XFS and btrfs: the extent maps of two clones of a live file, compared, must
/// cover every write made between them, stay small, and leave everything else byte-identical.
/// </summary>
public sealed class ExtentMapDiffOnDiskTests(ITestOutputHelper output)
{
    private const long FileSize = 64 * MiB;
    private const int WriteCount = 20, WriteLength = 4 * KiB;

    [RequiresLoopMount("mkfs.xfs")]
    public void ScatteredWrites_OnXfs_AreFound() => ScatteredWritesAreFound("xfs");

    [RequiresLoopMount("mkfs.btrfs")]
    public void ScatteredWrites_OnBtrfs_AreFound() => ScatteredWritesAreFound("btrfs");

    [RequiresLoopMount("mkfs.btrfs")]
    public void CompressedExtents_OnBtrfs_AreReportedChangedNotSkipped()
    {
        // A compressed extent's physical address is the start of the whole compressed run, for every piece of
        // it a file still references, so it cannot prove two offsets hold the same bytes; the diff must not skip it.
        using var fileSystem = LoopFileSystem.Create("btrfs", mountOptions: "compress-force=zstd");
        string source = fileSystem.PathOf("compressible.img");
        File.WriteAllBytes(source, System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("replication vault recovery ", 40_000))));
        long size = new FileInfo(source).Length;
        string first = Clone(source, fileSystem.PathOf("point-1.img"));
        Assert.Contains(MapOf(first), e => (e.Flags & FileExtentFlags.Encoded) != 0);

        WriteRandomAt(source, 300 * KiB, WriteLength, seed: 9);
        string second = Clone(source, fileSystem.PathOf("point-2.img"));
        var changed = Diff(first, second, size);

        output.WriteLine($"btrfs compressed: {TotalLength(changed)} of {size} bytes reported changed: {Format(changed)}");
        Assert.True(Covers(changed, 300 * KiB, WriteLength));
        AssertEqualOutside(first, second, changed);
    }

    [RequiresLoopMount("mkfs.xfs")]
    public void HolesAndGrowth_OnXfs() => HolesAndGrowth("xfs");

    [RequiresLoopMount("mkfs.btrfs")]
    public void HolesAndGrowth_OnBtrfs() => HolesAndGrowth("btrfs");

    private void ScatteredWritesAreFound(string type)
    {
        using var fileSystem = LoopFileSystem.Create(type);
        string source = fileSystem.PathOf("source.img");
        CreateRandom(source, FileSize, seed: 7);
        string first = Clone(source, fileSystem.PathOf("point-1.img"));

        // Nothing written between two clones: nothing changed.
        string same = Clone(source, fileSystem.PathOf("point-1b.img"));
        var unchanged = Diff(first, same, FileSize);
        Assert.Empty(unchanged);

        // 20 writes of 4 KiB, some block aligned, some straddling two blocks.
        var random = new Random(11);
        long slot = FileSize / WriteCount;
        var writes = Enumerable.Range(0, WriteCount)
            .Select(i => i * slot + random.NextInt64(0, slot - WriteLength))
            .Select((offset, i) => i % 2 == 0 ? offset & ~4095L : offset)
            .ToArray();
        for (int i = 0; i < writes.Length; i++) WriteRandomAt(source, writes[i], WriteLength, seed: 100 + i);
        string second = Clone(source, fileSystem.PathOf("point-2.img"));

        var changed = Diff(first, second, FileSize);

        long total = TotalLength(changed);
        output.WriteLine($"{type}: {changed.Count} changed ranges, {total} bytes ({total / WriteCount} per 4 KiB write): {Format(changed)}");
        foreach (long offset in writes)
            Assert.True(Covers(changed, offset, WriteLength), $"The write at {offset} is not in the changed ranges {Format(changed)}");
        Assert.True(total <= WriteCount * MiB, $"{total} bytes reported changed for {WriteCount} writes of 4 KiB");
        AssertEqualOutside(first, second, changed);
    }

    private void HolesAndGrowth(string type)
    {
        using var fileSystem = LoopFileSystem.Create(type);
        string source = fileSystem.PathOf("sparse.img");
        // Data in [0, 4M) and [12M, 16M), a hole in [4M, 12M).
        CreateRandom(source, 4 * MiB, seed: 3);
        WriteRandomAt(source, 12 * MiB, 4 * MiB, seed: 4);
        string first = Clone(source, fileSystem.PathOf("point-1.img"));

        // A write into the first data range and one into the hole.
        WriteRandomAt(source, MiB, WriteLength, seed: 5);
        WriteRandomAt(source, 8 * MiB, WriteLength, seed: 6);
        string second = Clone(source, fileSystem.PathOf("point-2.img"));
        var changed = Diff(first, second, 16 * MiB);
        output.WriteLine($"{type}, hole: {Format(changed)}");
        Assert.True(Covers(changed, MiB, WriteLength));
        Assert.True(Covers(changed, 8 * MiB, WriteLength));
        // The rest of the hole stayed a hole on both sides: unchanged.
        Assert.DoesNotContain(changed, r => r.Offset < 8 * MiB - MiB && r.End > 4 * MiB + MiB);
        Assert.DoesNotContain(changed, r => r.Offset < 12 * MiB && r.End > 9 * MiB);
        AssertEqualOutside(first, second, changed);

        // The file grows by 1 MiB of data: the new range is changed.
        WriteRandomAt(source, 16 * MiB, (int)MiB, seed: 8);
        string third = Clone(source, fileSystem.PathOf("point-3.img"));
        var grown = Diff(second, third, 17 * MiB);
        output.WriteLine($"{type}, growth: {Format(grown)}");
        Assert.True(Covers(grown, 16 * MiB, MiB));
        Assert.True(TotalLength(grown) <= 2 * MiB, Format(grown));
    }

    private static string Clone(string source, string clone)
    {
        Assert.True(FileClone.TryClone(source, clone, out string? whyNot), whyNot);
        return clone;
    }

    /// <summary>Both maps are read now, with both clones present: the way the engine must use them.</summary>
    private IReadOnlyList<ByteRange> Diff(string previous, string current, long size)
    {
        var before = MapOf(previous);
        var after = MapOf(current);
        var changed = ExtentMapDiff.ChangedRanges(before, after, size, out string? untrusted);
        Assert.True(changed is not null, $"Untrusted: {untrusted}\nprevious: {string.Join(", ", before)}\ncurrent: {string.Join(", ", after)}");
        return changed;
    }

    private IReadOnlyList<FileExtent> MapOf(string path)
    {
        using SafeFileHandle handle = File.OpenHandle(path);
        var map = FileExtentMap.Read(handle);
        Assert.NotEmpty(map);
        Assert.True((map[^1].Flags & FileExtentFlags.Last) != 0, $"The last extent of '{path}' is not flagged last.");
        return map;
    }
}
