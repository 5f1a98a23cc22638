using System.Text.Json;

namespace AsrModule.Engine.Replication.Tracking.Qemu;

/// <summary>A dirty bitmap as query-named-block-nodes reports it.</summary>
internal sealed record QemuDirtyBitmap(string? Name, bool Recording, bool Busy, long Granularity, long DirtyBytes);

/// <summary>One node of QEMU's block graph as query-named-block-nodes (flat) reports it.</summary>
internal sealed record QemuBlockNode(string NodeName, string Driver, string? FileName, long VirtualSize, IReadOnlyList<QemuDirtyBitmap> Bitmaps)
{
    // Filters sit above a disk's node (a backup job's copy-before-write among them) and report its file name too.
    private static readonly HashSet<string> FilterDrivers = new(StringComparer.Ordinal)
    {
        "copy-before-write", "snapshot-access", "throttle", "copy-on-read", "preallocate", "compress",
        "blkdebug", "blkverify", "blklogwrites", "blkreplay", "replication", "quorum",
    };

    // Protocol nodes carry the bytes of the file under a format node; the format node is the disk the guest sees.
    private static readonly HashSet<string> ProtocolDrivers = new(StringComparer.Ordinal)
    {
        "file", "host_device", "host_cdrom", "nbd", "iscsi", "rbd", "gluster", "nfs", "ssh", "nvme",
        "http", "https", "ftp", "ftps", "null-co", "null-aio",
    };

    public static IReadOnlyList<QemuBlockNode> Parse(JsonElement namedBlockNodes) =>
        namedBlockNodes.EnumerateArray().Select(n => new QemuBlockNode(
            n.GetProperty("node-name").GetString() ?? "",
            n.TryGetProperty("drv", out var drv) ? drv.GetString() ?? "" : "",
            n.TryGetProperty("file", out var file) ? file.GetString() : null,
            n.TryGetProperty("image", out var image) && image.TryGetProperty("virtual-size", out var size) ? size.GetInt64() : 0,
            n.TryGetProperty("dirty-bitmaps", out var bitmaps)
                ? bitmaps.EnumerateArray().Select(b => new QemuDirtyBitmap(
                    b.TryGetProperty("name", out var name) ? name.GetString() : null,
                    b.TryGetProperty("recording", out var recording) && recording.GetBoolean(),
                    b.TryGetProperty("busy", out var busy) && busy.GetBoolean(),
                    b.TryGetProperty("granularity", out var granularity) ? granularity.GetInt64() : 0,
                    b.TryGetProperty("count", out var count) ? count.GetInt64() : 0)).ToList()
                : []))
        .ToList();

    /// <summary>
    /// The node through which the guest reads and writes the image at <paramref name="sourcePath"/>:
    /// matched by full path (links resolved), else by file name when that is unique (QEMU may have opened
    /// the image through another path, e.g. a bind mount). Format nodes win over protocol nodes; filters
    /// and the tracker's own nodes never match. Null when QEMU does not have the image open.
    /// </summary>
    public static QemuBlockNode? FindImage(IReadOnlyList<QemuBlockNode> nodes, string sourcePath)
    {
        var candidates = nodes.Where(n => n.FileName is not null && !n.NodeName.StartsWith("asr-", StringComparison.Ordinal) && !FilterDrivers.Contains(n.Driver)).ToList();
        string wanted = Canonical(sourcePath);
        var byPath = candidates.Where(n => Canonical(n.FileName!) == wanted).ToList();
        if (byPath.Count == 0)
        {
            string name = Path.GetFileName(sourcePath);
            byPath = candidates.Where(n => Path.GetFileName(n.FileName!) == name).ToList();
            // Two images of the same name in different folders: guessing could track the wrong disk.
            if (byPath.Select(n => n.FileName).Distinct(StringComparer.Ordinal).Count() != 1) return null;
        }
        return byPath.FirstOrDefault(n => !ProtocolDrivers.Contains(n.Driver)) ?? byPath.FirstOrDefault();
    }

    private static string Canonical(string path)
    {
        try
        {
            string full = Path.GetFullPath(path);
            return File.ResolveLinkTarget(full, returnFinalTarget: true)?.FullName ?? full;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return path;
        }
    }
}
