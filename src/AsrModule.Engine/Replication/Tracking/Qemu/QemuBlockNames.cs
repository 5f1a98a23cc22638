using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace AsrModule.Engine.Replication.Tracking.Qemu;

/// <summary>
/// Names of everything the tracker creates inside QEMU for one item. All start with "asr-" and carry a
/// tag of the item, so leftovers of a killed agent can be found again and told apart from the
/// objects of other tools and other items.
/// </summary>
internal sealed partial class QemuBlockNames
{
    // QEMU keeps node names in a 32-byte buffer: 31 characters at most, "-file" suffix included.
    private const int MaximumReadableDiskIdLength = 10;

    public QemuBlockNames(string itemId)
    {
        ItemId = itemId;
        Tag = ShortHash(itemId);
    }

    public string ItemId { get; }

    /// <summary>8 hex digits standing for the item where QEMU's length limits do not allow its id.</summary>
    public string Tag { get; }

    /// <summary>
    /// The bitmap holding "changes since point <paramref name="sequence"/>". Bitmap names have no short
    /// limit, so they spell the item and disk out for whoever reads query-named-block-nodes.
    /// </summary>
    public string Bitmap(string diskId, long sequence) => BitmapPrefix(diskId) + sequence.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public bool TryParseBitmap(string diskId, string? bitmapName, out long sequence)
    {
        sequence = 0;
        string prefix = BitmapPrefix(diskId);
        return bitmapName is not null && bitmapName.StartsWith(prefix, StringComparison.Ordinal)
            && long.TryParse(bitmapName.AsSpan(prefix.Length), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out sequence);
    }

    private string BitmapPrefix(string diskId) => $"asr-{ItemId}-{diskId}-";

    public string FleeceNodePrefix => $"asr-fl-{Tag}-";
    public string FleeceJobPrefix => $"asr-job-{Tag}-";
    public string CreateJobPrefix => $"asr-mk-{Tag}-";
    public string ExportIdPrefix => $"asr-ex-{Tag}-";

    /// <summary>The qcow2 overlay holding the point-in-time view (backing: the disk's node).</summary>
    public string FleeceNode(string diskId) => FleeceNodePrefix + DiskPart(diskId);

    /// <summary>The protocol node of the overlay's scratch file; deleted after <see cref="FleeceNode"/>.</summary>
    public string FleeceFileNode(string diskId) => FleeceNode(diskId) + FileNodeSuffix;

    public const string FileNodeSuffix = "-file";

    public string FleeceJob(string diskId) => FleeceJobPrefix + DiskPart(diskId);
    public string CreateJob(string diskId, string step) => $"{CreateJobPrefix}{DiskPart(diskId)}-{step}";
    public string ExportId(string diskId) => ExportIdPrefix + DiskPart(diskId);

    /// <summary>The NBD export name (what a client asks for), readable since it has no short limit.</summary>
    public string ExportName(string diskId) => $"asr-{ItemId}-{diskId}";

    public string ScratchFileName(string diskId) => $".asr-fleece-{Tag}-{DiskPart(diskId)}.qcow2";
    public string ScratchFilePattern => $".asr-fleece-{Tag}-*.qcow2";

    /// <summary>Marks "this agent paused the guest" so that a restarted agent can resume a guest its killed predecessor left paused.</summary>
    public string PauseMarkerFileName => $".asr-paused-{Tag}";

    /// <summary>The NBD server's socket: one per QEMU, so named after the QMP socket rather than the item.</summary>
    public static string NbdSocketFileName(string qmpSocketPath) => $"asr-nbd-{ShortHash(Path.GetFullPath(qmpSocketPath))}.sock";

    private static string DiskPart(string diskId) =>
        diskId.Length <= MaximumReadableDiskIdLength && NodeNameSafe().IsMatch(diskId) ? diskId : ShortHash(diskId);

    private static string ShortHash(string value) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(value)))[..8];

    [GeneratedRegex("^[A-Za-z0-9_.]+$")]
    private static partial Regex NodeNameSafe();
}
