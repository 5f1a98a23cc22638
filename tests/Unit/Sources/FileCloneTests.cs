using AsrModule.Engine.Replication.Sources.Linux;
using static AsrModule.Tests.Unit.Sources.SourceTestFiles;

namespace AsrModule.Tests.Unit.Sources;

public sealed class FileCloneTests
{
    [RequiresLoopMount("mkfs.xfs")]
    public void Clone_OnXfs_IsAPointInTimeCopy()
    {
        if (OperatingSystem.IsLinux()) CloneIsAPointInTimeCopy("xfs");
    }

    [RequiresLoopMount("mkfs.btrfs")]
    public void Clone_OnBtrfs_IsAPointInTimeCopy()
    {
        if (OperatingSystem.IsLinux()) CloneIsAPointInTimeCopy("btrfs");
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static void CloneIsAPointInTimeCopy(string type)
    {
        using var fileSystem = LoopFileSystem.Create(type);
        Assert.Equal(type, FileClone.FileSystemName(fileSystem.MountPoint));
        string source = fileSystem.PathOf("source.img"), clone = fileSystem.PathOf("clone.img");
        CreateRandom(source, 8 * MiB, seed: 1);
        string original = Sha256(source);

        Assert.True(FileClone.TryClone(source, clone, out string? whyNot), whyNot);
        Assert.Null(whyNot);
        Assert.Equal(original, Sha256(clone));
        Assert.Equal(Convert.ToInt32("600", 8), (int)File.GetUnixFileMode(clone));

        WriteRandomAt(source, 3 * MiB + 123, 64 * KiB, seed: 2);
        Assert.NotEqual(original, Sha256(source));
        Assert.Equal(original, Sha256(clone));

        // A write still in the page cache (no fsync) is in the next clone: FICLONE writes the source back first.
        using (var handle = File.OpenHandle(source, FileMode.Open, FileAccess.Write))
            RandomAccess.Write(handle, new byte[4 * KiB], 5 * MiB);
        string unsynced = Sha256(source);
        string second = fileSystem.PathOf("clone-2.img");
        Assert.True(FileClone.TryClone(source, second, out whyNot), whyNot);
        Assert.Equal(unsynced, Sha256(second));
        Assert.Equal(original, Sha256(clone));
    }

    [RequiresLoopMount("mkfs.ext4")]
    public void Clone_OnExt4_FailsWithTheReasonAndLeavesNoFile()
    {
        using var fileSystem = LoopFileSystem.Create("ext4");
        Assert.Equal("ext4", FileClone.FileSystemName(fileSystem.MountPoint));
        string source = fileSystem.PathOf("source.img"), clone = fileSystem.PathOf("clone.img");
        CreateRandom(source, MiB, seed: 1);

        Assert.False(FileClone.TryClone(source, clone, out string? whyNot));

        Assert.Contains("cannot clone files (reflink)", whyNot);
        Assert.Contains("ext4", whyNot);
        Assert.Contains("EOPNOTSUPP", whyNot);
        Assert.False(File.Exists(clone));
    }

    [RequiresLoopMount("mkfs.xfs")]
    public void Clone_IntoAnotherFileSystem_FailsWithExdevAndLeavesNoFile()
    {
        using var fileSystem = LoopFileSystem.Create("xfs");
        string source = fileSystem.PathOf("source.img");
        CreateRandom(source, MiB, seed: 1);
        string otherDirectory = Directory.CreateTempSubdirectory("asr-clone-").FullName;
        try
        {
            string clone = Path.Combine(otherDirectory, "clone.img");

            Assert.False(FileClone.TryClone(source, clone, out string? whyNot));

            Assert.Contains("EXDEV", whyNot);
            Assert.Contains("clone directory is on another file system", whyNot);
            Assert.False(File.Exists(clone));
        }
        finally
        {
            Directory.Delete(otherDirectory, recursive: true);
        }
    }

    [Fact]
    public void Clone_NeverReplacesAnExistingFile()
    {
        if (!OperatingSystem.IsLinux()) return;
        string directory = Directory.CreateTempSubdirectory("asr-clone-").FullName;
        try
        {
            string source = Path.Combine(directory, "source.img"), clone = Path.Combine(directory, "clone.img");
            File.WriteAllText(source, "source");
            File.WriteAllText(clone, "precious");

            Assert.False(FileClone.TryClone(source, clone, out string? whyNot));

            Assert.Contains("already exists", whyNot);
            Assert.Equal("precious", File.ReadAllText(clone));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Clone_OfADirectory_FailsWithoutOpeningIt()
    {
        if (!OperatingSystem.IsLinux()) return;
        string directory = Directory.CreateTempSubdirectory("asr-clone-").FullName;
        try
        {
            string clone = Path.Combine(directory, "clone.img");

            Assert.False(FileClone.TryClone(directory, clone, out string? whyNot));

            Assert.Contains("a directory", whyNot);
            Assert.False(File.Exists(clone));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}
