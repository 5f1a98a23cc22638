using System.Buffers.Binary;
using System.Runtime.InteropServices;
using AsrModule.Engine.Errors;
using Microsoft.Win32.SafeHandles;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>Detection, QEMU names and user spellings of <see cref="DiskImageFormat"/>s.</summary>
public static class DiskImageFormats
{
    private const int HeaderLength = 512;
    private const int VpcFooterLength = 512;
    private const int VdiSignatureOffset = 64;
    private const uint VdiSignature = 0xbeda107f;

    private static readonly byte[] Qcow2Magic = [(byte)'Q', (byte)'F', (byte)'I', 0xfb];
    private static readonly byte[] VmdkSparseMagic = "KDMV"u8.ToArray();
    // ESX 2.x "COW disk" sparse extents; QEMU's vmdk driver reads them too.
    private static readonly byte[] VmdkCowdMagic = "COWD"u8.ToArray();
    private static readonly byte[] VmdkDescriptorMagic = "# Disk DescriptorFile"u8.ToArray();
    private static readonly byte[] VhdxMagic = "vhdxfile"u8.ToArray();
    private static readonly byte[] VpcMagic = "conectix"u8.ToArray();

    /// <summary>The spellings <see cref="Parse"/> accepts, for messages.</summary>
    public const string AcceptedNames = "raw, qcow2, vmdk, vhdx, vdi, vhd";

    /// <summary>
    /// The format of the image at <paramref name="path"/>, from the magic bytes of its header (and, for a legacy
    /// VHD, its footer) only. Anything unrecognised is <see cref="DiskImageFormat.Raw"/>.
    /// </summary>
    /// <remarks>
    /// <para>Why magic bytes and not <c>qemu-img info</c>: QEMU's own probing opens the file with every driver's
    /// probe and, for a format, follows what the header says (a backing file, VMDK extents). A raw disk's first
    /// bytes belong to its guest, so a guest can write a qcow2 header naming <c>/etc/shadow</c> as its backing
    /// file; probing would then read host files into the replica. Reading a few magic bytes here opens nothing
    /// the header names.</para>
    /// <para>This detection is only as trustworthy as the file at the moment it runs: a raw disk whose guest wrote
    /// "QFI\xfb" at offset 0 is reported as qcow2. The defence is that the format is detected once, when the disk
    /// is protected (shown to and confirmable by the user), stored with the protected disk, and passed explicitly
    /// (<c>--format</c>/<c>driver=</c>) on every later open: it is never probed again, so what a guest writes
    /// afterwards cannot change how the host reads the disk.</para>
    /// </remarks>
    public static DiskImageFormat Detect(string path)
    {
        var file = DiskImageFile.Existing(path, forWriting: false);
        try
        {
            using SafeFileHandle handle = File.OpenHandle(file.FullPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            long length = file.IsBlockDevice ? DeviceLength(handle) : RandomAccess.GetLength(handle);
            var header = new byte[(int)Math.Min(HeaderLength, Math.Max(0, length))];
            ReadFully(handle, header, 0);
            if (FromHeader(header) is { } format) return format;
            // A fixed VHD is the raw disk followed by a 512-byte footer; a dynamic one also starts with a copy of it.
            if (length >= VpcFooterLength)
            {
                var footer = new byte[VpcMagic.Length];
                ReadFully(handle, footer, length - VpcFooterLength);
                if (footer.AsSpan().SequenceEqual(VpcMagic)) return DiskImageFormat.Vpc;
            }
            return DiskImageFormat.Raw;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new AsrException(AsrErrorIds.DiskUnreadable, AsrErrorKind.ReadError,
                $"The header of disk image '{path}' cannot be read to tell its format: {ex.Message}. Check that the file is readable by the user the engine runs as.", path, ex);
        }
    }

    /// <summary>The format whose magic begins <paramref name="header"/>, or null (raw, or a VHD told by its footer).</summary>
    internal static DiskImageFormat? FromHeader(ReadOnlySpan<byte> header)
    {
        if (header.StartsWith(Qcow2Magic)) return DiskImageFormat.Qcow2;
        if (header.StartsWith(VmdkSparseMagic) || header.StartsWith(VmdkCowdMagic) || header.StartsWith(VmdkDescriptorMagic)) return DiskImageFormat.Vmdk;
        if (header.StartsWith(VhdxMagic)) return DiskImageFormat.Vhdx;
        if (header.Length >= VdiSignatureOffset + 4 && BinaryPrimitives.ReadUInt32LittleEndian(header[VdiSignatureOffset..]) == VdiSignature) return DiskImageFormat.Vdi;
        if (header.StartsWith(VpcMagic)) return DiskImageFormat.Vpc;
        return null;
    }

    /// <summary>The name QEMU's tools take for the format (<c>--format</c>, <c>-f</c>, <c>-O</c>, <c>driver=</c>).</summary>
    public static string QemuName(DiskImageFormat format) => format switch
    {
        DiskImageFormat.Raw => "raw",
        DiskImageFormat.Qcow2 => "qcow2",
        DiskImageFormat.Vmdk => "vmdk",
        DiskImageFormat.Vhdx => "vhdx",
        DiskImageFormat.Vdi => "vdi",
        DiskImageFormat.Vpc => "vpc",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "Unknown disk image format."),
    };

    /// <summary>The name users know the format by (VHD rather than QEMU's "vpc"), for messages.</summary>
    public static string DisplayName(DiskImageFormat format) => format switch
    {
        DiskImageFormat.Vmdk => "VMDK",
        DiskImageFormat.Vhdx => "VHDX",
        DiskImageFormat.Vdi => "VDI",
        DiskImageFormat.Vpc => "VHD",
        _ => QemuName(format),
    };

    /// <summary>
    /// A format as a user spells it (case-insensitive: raw, qcow2, vmdk, vhdx, vdi, vhd; QEMU's "vpc" too).
    /// Anything else is <see cref="AsrErrorIds.DiskFormatUnsupported"/>.
    /// </summary>
    public static DiskImageFormat Parse(string name) => name?.Trim().ToLowerInvariant() switch
    {
        "raw" => DiskImageFormat.Raw,
        "qcow2" => DiskImageFormat.Qcow2,
        "vmdk" => DiskImageFormat.Vmdk,
        "vhdx" => DiskImageFormat.Vhdx,
        "vdi" => DiskImageFormat.Vdi,
        "vhd" or "vpc" => DiskImageFormat.Vpc,
        _ => throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
            $"Disk image format '{name}' is not supported. Use one of: {AcceptedNames}.", name),
    };

    /// <summary>
    /// Whether images of the format can be written (converted to, created, written back into). Legacy VHD is read
    /// only: its fixed-geometry size rounding makes a written disk's size differ from the source's.
    /// </summary>
    public static bool IsWritable(DiskImageFormat format) => format != DiskImageFormat.Vpc;

    /// <summary>Throws <see cref="AsrErrorIds.DiskFormatUnsupported"/> when <paramref name="format"/> cannot be written.</summary>
    internal static void EnsureWritable(DiskImageFormat format, string path)
    {
        if (!Enum.IsDefined(format))
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                $"Disk image format {(int)format} of '{path}' is not supported. Use one of: {AcceptedNames}.", path);
        if (!IsWritable(format))
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                $"'{path}' cannot be written as {DisplayName(format)}: legacy VHD is supported for reading only. Write VHDX (Hyper-V) or raw instead.", path);
    }

    private static void ReadFully(SafeFileHandle handle, Span<byte> buffer, long offset)
    {
        for (int done = 0; done < buffer.Length;)
        {
            int n = RandomAccess.Read(handle, buffer[done..], offset + done);
            if (n == 0) throw new IOException($"the file ended at {offset + done} bytes");
            done += n;
        }
    }

    /// <summary>A block device's size: fstat reports 0 for devices, lseek(SEEK_END) the device's size.</summary>
    private static long DeviceLength(SafeFileHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            long size = lseek((int)handle.DangerousGetHandle(), 0, 2 /* SEEK_END */);
            if (size < 0) throw new IOException($"lseek failed (errno {Marshal.GetLastPInvokeError()})");
            return size;
        }
        finally
        {
            if (added) handle.DangerousRelease();
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern long lseek(int fd, long offset, int whence);
}
