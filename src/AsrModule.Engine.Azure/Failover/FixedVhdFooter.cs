using System.Buffers.Binary;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The 512-byte footer that makes raw disk bytes a fixed VHD (Microsoft's Virtual Hard Disk Image Format
/// Specification 1.0, "Hard Disk Footer Format"), the format Azure's direct upload takes. All integers are
/// big-endian.
/// <list type="table">
/// <item><term>0, 8</term><description>cookie "conectix"</description></item>
/// <item><term>8, 4</term><description>features: 2 (the reserved bit, always set)</description></item>
/// <item><term>12, 4</term><description>file format version 0x00010000</description></item>
/// <item><term>16, 8</term><description>data offset 0xFFFFFFFFFFFFFFFF (a fixed disk has no header)</description></item>
/// <item><term>24, 4</term><description>time stamp: seconds since 2000-01-01 00:00:00 UTC</description></item>
/// <item><term>28, 4</term><description>creator application "win "</description></item>
/// <item><term>32, 4</term><description>creator version (major &lt;&lt; 16 | minor)</description></item>
/// <item><term>36, 4</term><description>creator host OS "Wi2k"</description></item>
/// <item><term>40, 8 / 48, 8</term><description>original size, current size: the payload in bytes</description></item>
/// <item><term>56, 4</term><description>geometry: cylinders (2), heads (1), sectors per track (1)</description></item>
/// <item><term>60, 4</term><description>disk type 2 (fixed)</description></item>
/// <item><term>64, 4</term><description>checksum: one's complement of the sum of all 512 bytes with this field zero</description></item>
/// <item><term>68, 16</term><description>unique id (in the byte order of <see cref="Guid.ToByteArray()"/>, as Windows and Azure PowerShell write it)</description></item>
/// <item><term>84, 1</term><description>saved state 0</description></item>
/// <item><term>85, 427</term><description>reserved, zero</description></item>
/// </list>
/// <para>
/// Creator application "win " (what Hyper-V and Windows write), not a name of our own: the field only names the
/// writer and nothing in Azure depends on it, but QEMU sizes a VHD from a creator it does not know by its CHS
/// geometry, which is smaller than the payload, so a recovered disk downloaded from Azure and converted with
/// qemu-img would silently lose its tail (a GPT backup header, say). With "win " every reader (Azure, Hyper-V,
/// Windows, QEMU) takes the current size. Who wrote the image is recorded in the disk's tags instead.
/// </para>
/// <para>
/// Creator host OS "Wi2k" is what Azure PowerShell's own footer (Add-AzVhd, <c>VhdFooterFactory.CreateFixedDiskFooter</c>),
/// Hyper-V and QEMU write; the only other value the specification defines is "Mac ".
/// </para>
/// <para>
/// For a recovery point (<see cref="ForRecoveryPoint"/>) the footer is deterministic: the time stamp is the
/// point's time (when the image's content was taken) and the unique id is derived from the item, the disk and
/// the point, so a retried upload of the same disk of the same point writes the same 512 bytes.
/// </para>
/// </summary>
public sealed record FixedVhdFooter
{
    public const int Size = 512;
    public const string Cookie = "conectix";
    public const uint ReservedFeature = 2;
    public const uint FormatVersion = 0x0001_0000;
    public const ulong FixedDataOffset = ulong.MaxValue;
    public const uint FixedDiskType = 2;
    public const string AsrCreatorApplication = "win ";
    public const string WindowsHostOs = "Wi2k";

    /// <summary>The VHD epoch: time stamps count seconds from here.</summary>
    public static readonly DateTimeOffset Epoch = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>Namespace of the name-based (version 5) unique ids of recovery point disks.</summary>
    private static readonly Guid UniqueIdNamespace = new("3c0f1d7e-52b9-4a8e-9f57-6a1d0c2e8b41");

    public uint Features { get; init; } = ReservedFeature;
    public uint FileFormatVersion { get; init; } = FormatVersion;
    /// <summary>Creation time of the image, whole seconds since <see cref="Epoch"/>.</summary>
    public DateTimeOffset TimeStamp { get; init; } = Epoch;
    /// <summary>Four ASCII characters.</summary>
    public string CreatorApplication { get; init; } = AsrCreatorApplication;
    public uint CreatorVersion { get; init; }
    /// <summary>Four ASCII characters.</summary>
    public string CreatorHostOs { get; init; } = WindowsHostOs;
    public long OriginalSize { get; init; }
    /// <summary>The payload: bytes of disk before the footer.</summary>
    public long CurrentSize { get; init; }
    public VhdGeometry Geometry { get; init; }
    public uint DiskType { get; init; } = FixedDiskType;
    public Guid UniqueId { get; init; }
    public bool SavedState { get; init; }

    /// <summary>The version of this module's engine, as the creator version field holds it (major &lt;&lt; 16 | minor).</summary>
    public static uint ModuleCreatorVersion { get; } = CreatorVersionOf(typeof(FixedVhdFooter).Assembly.GetName().Version);

    private static uint CreatorVersionOf(Version? v) =>
        v is null ? 0 : ((uint)Math.Clamp(v.Major, 0, ushort.MaxValue) << 16) | (uint)Math.Clamp(v.Minor, 0, ushort.MaxValue);

    /// <summary>A fixed-disk footer for a payload of <paramref name="payloadBytes"/> bytes (a multiple of 512).</summary>
    public static FixedVhdFooter Create(long payloadBytes, Guid uniqueId, DateTimeOffset timeStamp)
    {
        if (payloadBytes <= 0 || payloadBytes % 512 != 0)
            throw new ArgumentOutOfRangeException(nameof(payloadBytes), payloadBytes, "A VHD payload is a positive multiple of 512 bytes.");
        if (timeStamp < Epoch || timeStamp > Epoch.AddSeconds(uint.MaxValue))
            throw new ArgumentOutOfRangeException(nameof(timeStamp), timeStamp, "A VHD time stamp lies between 2000 and 2136.");
        return new FixedVhdFooter
        {
            TimeStamp = Epoch.AddSeconds(Math.Floor((timeStamp - Epoch).TotalSeconds)),
            CreatorVersion = ModuleCreatorVersion,
            OriginalSize = payloadBytes,
            CurrentSize = payloadBytes,
            Geometry = VhdGeometry.FromSize(payloadBytes),
            UniqueId = uniqueId,
        };
    }

    /// <summary>
    /// The footer of <paramref name="disk"/> of <paramref name="point"/> as an Azure upload: payload
    /// <see cref="ManagedDiskSize.PayloadBytes"/>, the point's time, a unique id derived from item, disk and point.
    /// </summary>
    public static FixedVhdFooter ForRecoveryPoint(AsrRecoveryPoint point, RecoveryPointDisk disk)
    {
        ArgumentNullException.ThrowIfNull(point);
        ArgumentNullException.ThrowIfNull(disk);
        var time = point.RecoveryPointTimeUtc < Epoch ? Epoch : point.RecoveryPointTimeUtc;
        return Create(ManagedDiskSize.PayloadBytes(disk.SizeBytes), DeriveUniqueId(point.ItemId, disk.DiskId, point.PointId), time);
    }

    /// <summary>
    /// A name-based (RFC 4122 version 5, SHA-1) id of one disk of one point of one item: the same inputs always give
    /// the same id, different points or disks different ids.
    /// </summary>
    public static Guid DeriveUniqueId(string itemId, string diskId, Guid pointId)
    {
        ArgumentNullException.ThrowIfNull(itemId);
        ArgumentNullException.ThrowIfNull(diskId);
        string name = $"{itemId}\n{diskId}\n{pointId:D}";
        byte[] input = new byte[16 + Encoding.UTF8.GetByteCount(name)];
        UniqueIdNamespace.TryWriteBytes(input, bigEndian: true, out _);
        Encoding.UTF8.GetBytes(name, input.AsSpan(16));
#pragma warning disable CA5350 // SHA-1 is what RFC 4122 version 5 specifies; this is an identifier, not a security hash.
        Span<byte> hash = stackalloc byte[20];
        SHA1.HashData(input, hash);
#pragma warning restore CA5350
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash[..16], bigEndian: true);
    }

    /// <summary>The checksum this footer's bytes carry.</summary>
    public uint Checksum
    {
        get
        {
            Span<byte> bytes = stackalloc byte[Size];
            WriteWithoutChecksum(bytes);
            return ComputeChecksum(bytes);
        }
    }

    /// <summary>The 512 bytes of this footer.</summary>
    public byte[] ToBytes()
    {
        byte[] bytes = new byte[Size];
        Write(bytes);
        return bytes;
    }

    /// <summary>Writes the 512 bytes of this footer into <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        if (destination.Length < Size) throw new ArgumentException($"A VHD footer takes {Size} bytes.", nameof(destination));
        var bytes = destination[..Size];
        WriteWithoutChecksum(bytes);
        BinaryPrimitives.WriteUInt32BigEndian(bytes[64..], ComputeChecksum(bytes));
    }

    private void WriteWithoutChecksum(Span<byte> b)
    {
        b.Clear();
        Encoding.ASCII.GetBytes(Cookie, b);
        BinaryPrimitives.WriteUInt32BigEndian(b[8..], Features);
        BinaryPrimitives.WriteUInt32BigEndian(b[12..], FileFormatVersion);
        BinaryPrimitives.WriteUInt64BigEndian(b[16..], FixedDataOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b[24..], checked((uint)Math.Floor((TimeStamp - Epoch).TotalSeconds)));
        WriteFourCc(b[28..32], CreatorApplication, nameof(CreatorApplication));
        BinaryPrimitives.WriteUInt32BigEndian(b[32..], CreatorVersion);
        WriteFourCc(b[36..40], CreatorHostOs, nameof(CreatorHostOs));
        BinaryPrimitives.WriteInt64BigEndian(b[40..], OriginalSize);
        BinaryPrimitives.WriteInt64BigEndian(b[48..], CurrentSize);
        BinaryPrimitives.WriteUInt16BigEndian(b[56..], Geometry.Cylinders);
        b[58] = Geometry.Heads;
        b[59] = Geometry.SectorsPerTrack;
        BinaryPrimitives.WriteUInt32BigEndian(b[60..], DiskType);
        UniqueId.TryWriteBytes(b[68..84]);
        b[84] = SavedState ? (byte)1 : (byte)0;
    }

    private static void WriteFourCc(Span<byte> destination, string value, string field)
    {
        if (value.Length != 4 || !Ascii.IsValid(value))
            throw new ArgumentException($"{field} is four ASCII characters, not '{value}'.", field);
        Encoding.ASCII.GetBytes(value, destination);
    }

    /// <summary>One's complement of the sum of the footer's bytes, the checksum field (bytes 64–67) counted as zero.</summary>
    public static uint ComputeChecksum(ReadOnlySpan<byte> footer)
    {
        if (footer.Length != Size) throw new ArgumentException($"A VHD footer is {Size} bytes.", nameof(footer));
        uint sum = 0;
        for (int i = 0; i < Size; i++)
            if (i is < 64 or >= 68) sum += footer[i];
        return ~sum;
    }

    /// <summary>
    /// Reads a fixed-disk footer, or says why <paramref name="footer"/> is not one: the cookie, the checksum, the disk
    /// type (fixed), the data offset, the format version and the sizes are checked.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> footer, out FixedVhdFooter? result, out string? error)
    {
        result = null;
        error = Check(footer);
        if (error is not null) return false;
        result = new FixedVhdFooter
        {
            Features = BinaryPrimitives.ReadUInt32BigEndian(footer[8..]),
            FileFormatVersion = BinaryPrimitives.ReadUInt32BigEndian(footer[12..]),
            TimeStamp = Epoch.AddSeconds(BinaryPrimitives.ReadUInt32BigEndian(footer[24..])),
            CreatorApplication = Encoding.Latin1.GetString(footer[28..32]),
            CreatorVersion = BinaryPrimitives.ReadUInt32BigEndian(footer[32..]),
            CreatorHostOs = Encoding.Latin1.GetString(footer[36..40]),
            OriginalSize = BinaryPrimitives.ReadInt64BigEndian(footer[40..]),
            CurrentSize = BinaryPrimitives.ReadInt64BigEndian(footer[48..]),
            Geometry = new VhdGeometry(BinaryPrimitives.ReadUInt16BigEndian(footer[56..]), footer[58], footer[59]),
            DiskType = BinaryPrimitives.ReadUInt32BigEndian(footer[60..]),
            UniqueId = new Guid(footer[68..84]),
            SavedState = footer[84] != 0,
        };
        return true;
    }

    private static string? Check(ReadOnlySpan<byte> f)
    {
        if (f.Length != Size) return $"a VHD footer is {Size} bytes, not {f.Length}";
        if (!f[..8].SequenceEqual("conectix"u8)) return "the cookie is not 'conectix'";
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(f[64..]), computed = ComputeChecksum(f);
        if (stored != computed) return $"the checksum is 0x{stored:X8}, the bytes sum to 0x{computed:X8}";
        uint version = BinaryPrimitives.ReadUInt32BigEndian(f[12..]);
        if (version >> 16 != 1) return $"the file format version is 0x{version:X8}, not 1.x";
        uint type = BinaryPrimitives.ReadUInt32BigEndian(f[60..]);
        if (type != FixedDiskType) return $"the disk type is {type}, not {FixedDiskType} (fixed)";
        if (BinaryPrimitives.ReadUInt64BigEndian(f[16..]) != FixedDataOffset) return "the data offset of a fixed disk is not 0xFFFFFFFFFFFFFFFF";
        long current = BinaryPrimitives.ReadInt64BigEndian(f[48..]);
        if (current <= 0 || current % 512 != 0) return $"the current size {current} is not a positive multiple of 512";
        return null;
    }

    /// <summary>Reads a fixed-disk footer; throws <see cref="ManagedDiskErrorIds.VhdFooterInvalid"/> when it is not one.</summary>
    public static FixedVhdFooter Parse(ReadOnlySpan<byte> footer, object? target = null)
    {
        if (!TryParse(footer, out var result, out string? error))
            throw new AsrException(ManagedDiskErrorIds.VhdFooterInvalid, AsrErrorKind.InvalidData, $"Not a fixed VHD footer: {error}.", target);
        return result!;
    }

    public override string ToString() =>
        $"fixed VHD {CurrentSize:N0} bytes, CHS {Geometry}, id {UniqueId:D}, {CreatorApplication.TrimEnd()} on {CreatorHostOs.TrimEnd()}, {TimeStamp:u}";
}
