namespace AsrModule.Tests.Unit.Sources;

/// <summary>
/// A small, freshly made file system (xfs with reflink, btrfs or ext4) in an image file under /tmp,
/// mounted through a loop device on a temporary directory; unmounted and deleted on dispose.
/// </summary>
/// <remarks>
/// mount -o loop attaches the loop device with autoclear, so unmounting also frees the loop device. If
/// the unmount fails (something still has a file open), a lazy unmount detaches it now and lets the
/// kernel finish when the last file closes, so a failed test never leaves a mount behind.
/// </remarks>
internal sealed class LoopFileSystem : IDisposable
{
    /// <summary>Big enough for every type: XFS refuses file systems under 300 MiB.</summary>
    public const long DefaultSize = 512L << 20;

    private readonly string _image;
    private bool _mounted;

    private LoopFileSystem(string type, string image, string mountPoint)
    {
        Type = type;
        _image = image;
        MountPoint = mountPoint;
    }

    /// <summary>"xfs", "btrfs" or "ext4".</summary>
    public string Type { get; }
    public string MountPoint { get; }

    /// <summary>A path for a new file on this file system (not created).</summary>
    public string PathOf(string name) => Path.Combine(MountPoint, name);

    /// <summary>Makes and mounts a file system; <paramref name="mountOptions"/> are added to "loop" (e.g. "compress-force=zstd").</summary>
    public static LoopFileSystem Create(string type, long size = DefaultSize, string? mountOptions = null)
    {
        string image = Path.Combine(Path.GetTempPath(), $"asr-loopfs-{type}-{Guid.NewGuid():N}.img");
        string mountPoint = Directory.CreateTempSubdirectory($"asr-loopfs-{type}-").FullName;
        var fileSystem = new LoopFileSystem(type, image, mountPoint);
        try
        {
            using (var file = File.Create(image)) file.SetLength(size);
            switch (type)
            {
                case "xfs": ExternalCommand.Run("mkfs.xfs", "-q", "-f", "-m", "reflink=1", image); break;
                case "btrfs": ExternalCommand.Run("mkfs.btrfs", "-q", "-f", image); break;
                case "ext4": ExternalCommand.Run("mkfs.ext4", "-q", "-F", image); break;
                default: throw new ArgumentException($"Unknown file system type '{type}'.", nameof(type));
            }
            ExternalCommand.Run("mount", "-o", mountOptions is null ? "loop" : "loop," + mountOptions, image, mountPoint);
            fileSystem._mounted = true;
            return fileSystem;
        }
        catch
        {
            fileSystem.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        try
        {
            if (_mounted && ExternalCommand.TryRun("umount", MountPoint).ExitCode != 0)
                ExternalCommand.TryRun("umount", "-l", MountPoint);
            _mounted = false;
        }
        finally
        {
            try { Directory.Delete(MountPoint); } catch (IOException) { /* a lazily unmounted directory may still be busy */ }
            File.Delete(_image);
        }
    }
}
