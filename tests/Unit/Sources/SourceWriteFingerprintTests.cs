using Xunit.Abstractions;
using AsrModule.Engine.Replication.Sources.Linux;
using static AsrModule.Tests.Unit.Sources.SourceTestFiles;

namespace AsrModule.Tests.Unit.Sources;

public sealed class SourceWriteFingerprintTests(ITestOutputHelper output)
{
    [Fact]
    public void File_NotWritten_IsTheSame()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var file = new TempFile(MiB);
        var before = SourceWriteFingerprint.Take(file.Path);
        var after = SourceWriteFingerprint.Take(file.Path);

        Assert.Equal(FingerprintedSourceKind.RegularFile, before.Kind);
        Assert.True(before.SameAs(after, out string? difference), difference);
        Assert.Null(difference);
        output.WriteLine(before.Describe());
    }

    [Fact]
    public void File_OverwrittenInPlace_DiffersInItsTimes()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var file = new TempFile(MiB);
        // An old mtime makes the write's new one differ whatever the clock's granularity on this kernel.
        File.SetLastWriteTimeUtc(file.Path, new DateTime(2020, 1, 1, 0, 0, 0, DateTimeKind.Utc));
        var before = SourceWriteFingerprint.Take(file.Path);

        WriteRandomAt(file.Path, 4096, 4096, seed: 2);
        var after = SourceWriteFingerprint.Take(file.Path);

        Assert.False(before.SameAs(after, out string? difference));
        output.WriteLine(difference);
        Assert.Contains("mtime changed from 2020-01-01T00:00:00.000000000Z to ", difference);
        Assert.DoesNotContain("size", difference);
    }

    [Fact]
    public void File_Appended_DiffersInSize()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var file = new TempFile(MiB);
        var before = SourceWriteFingerprint.Take(file.Path);

        WriteRandomAt(file.Path, MiB, 4096, seed: 2);
        var after = SourceWriteFingerprint.Take(file.Path);

        Assert.False(before.SameAs(after, out string? difference));
        output.WriteLine(difference);
        Assert.Contains($"size changed from {MiB} to {MiB + 4096}", difference);
    }

    [Fact]
    public void File_ReplacedByRename_DiffersInInode()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var file = new TempFile(MiB);
        using var replacement = new TempFile(MiB);
        var before = SourceWriteFingerprint.Take(file.Path);

        File.Move(replacement.Path, file.Path, overwrite: true);
        var after = SourceWriteFingerprint.Take(file.Path);

        Assert.False(before.SameAs(after, out string? difference));
        Assert.Contains("now names another file", difference);
    }

    [Fact]
    public void Directory_OrMissingPath_CannotBeShownQuiet()
    {
        if (!OperatingSystem.IsLinux()) return;
        string directory = Directory.CreateTempSubdirectory("asr-fingerprint-").FullName;
        try
        {
            var fingerprint = SourceWriteFingerprint.Take(directory);
            Assert.Equal(FingerprintedSourceKind.Unknown, fingerprint.Kind);
            Assert.False(fingerprint.SameAs(SourceWriteFingerprint.Take(directory), out string? difference));
            Assert.Contains("a directory", difference);

            var missing = SourceWriteFingerprint.Take(Path.Combine(directory, "missing"));
            Assert.False(missing.SameAs(missing, out difference));
            Assert.Contains("ENOENT", difference);
        }
        finally { Directory.Delete(directory); }
    }

    [RequiresLoopMount("losetup")]
    public void LoopDevice_IdleIsTheSame_WrittenDiffers()
    {
        using var image = new TempFile(16 * MiB);
        string device = ExternalCommand.Run("losetup", "-f", "--show", image.Path).Trim();
        try
        {
            var before = SourceWriteFingerprint.Take(device);
            Assert.Equal(FingerprintedSourceKind.BlockDevice, before.Kind);
            output.WriteLine(before.Describe());
            var idle = SourceWriteFingerprint.Take(device);
            Assert.True(before.SameAs(idle, out string? difference), difference);

            using (var handle = File.OpenHandle(device, FileMode.Open, FileAccess.Write))
            {
                RandomAccess.Write(handle, new byte[4096], 8192);
                RandomAccess.FlushToDisk(handle);
            }
            var written = SourceWriteFingerprint.Take(device);
            output.WriteLine(written.Describe());

            Assert.False(idle.SameAs(written, out difference));
            output.WriteLine(difference);
            Assert.Matches($@"\d+ writes completed on {device} \(\d+:\d+\) during the read", difference);
        }
        finally
        {
            ExternalCommand.TryRun("losetup", "-d", device);
        }
    }

    [RequiresLoopMount("losetup")]
    public void LoopDevice_BufferedWriteNotYetSynced_StillDiffers()
    {
        // The write stays in the device's page cache; the fingerprint writes it back before counting.
        using var image = new TempFile(16 * MiB);
        string device = ExternalCommand.Run("losetup", "-f", "--show", image.Path).Trim();
        try
        {
            var before = SourceWriteFingerprint.Take(device);
            using (var handle = File.OpenHandle(device, FileMode.Open, FileAccess.ReadWrite))
            {
                RandomAccess.Write(handle, new byte[4096], 4096);
                var after = SourceWriteFingerprint.Take(device);
                Assert.False(before.SameAs(after, out string? difference));
                output.WriteLine(difference);
            }
        }
        finally
        {
            ExternalCommand.TryRun("losetup", "-d", device);
        }
    }

    /// <summary>A random file in the temp directory, deleted on dispose.</summary>
    private sealed class TempFile : IDisposable
    {
        public TempFile(long size)
        {
            Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"asr-fingerprint-{Guid.NewGuid():N}.img");
            CreateRandom(Path, size, seed: 1);
        }

        public string Path { get; }

        public void Dispose() => File.Delete(Path);
    }
}
