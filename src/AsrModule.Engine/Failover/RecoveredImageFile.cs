using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Engine.Failover;

/// <summary>
/// A recovered disk on this machine written in an image format other than raw (qcow2, VMDK, VHDX, VDI), read
/// through QEMU's block layer (<see cref="QemuImageSource"/>): offsets and size are the guest's, so reprotect,
/// reverse cycles and failback compare and send the bytes the recovered machine sees.
/// </summary>
public sealed class RecoveredImageFile : IRecoveredDiskReader, IDisposable
{
    private const int SectorSize = 512;
    private readonly QemuImageSource _image;

    private RecoveredImageFile(QemuImageSource image, long size)
    {
        _image = image;
        Size = size;
    }

    public long Size { get; }

    /// <summary>The image's own guest-visible size: <see cref="Size"/>, or the sector-rounded size when that was what was written.</summary>
    public long ImageSize => _image.Size;

    public string Location => _image.Path;
    public DiskImageFormat Format => _image.Format;

    /// <summary>
    /// Opens <paramref name="path"/> as <paramref name="format"/>. Image formats keep sizes in 512-byte sectors, so a disk
    /// of <paramref name="diskSize"/> bytes that is not a whole number of sectors was written rounded up (the rest reads as
    /// zeros): such an image is read as <paramref name="diskSize"/> bytes. Any other size is the image's own.
    /// </summary>
    public static async Task<RecoveredImageFile> OpenAsync(string path, DiskImageFormat format, long diskSize, CancellationToken cancellationToken)
    {
        var image = await QemuImageSource.OpenAsync(path, format, null, cancellationToken).ConfigureAwait(false);
        return new RecoveredImageFile(image, SizeOf(image.Size, diskSize));
    }

    /// <summary>The size to read a disk of <paramref name="diskSize"/> bytes as, from an image of <paramref name="imageSize"/> bytes.</summary>
    internal static long SizeOf(long imageSize, long diskSize) =>
        imageSize > diskSize && imageSize == RoundUpToSector(diskSize) ? diskSize : imageSize;

    internal static long RoundUpToSector(long size) => (size + SectorSize - 1) / SectorSize * SectorSize;

    /// <summary>Reads guest bytes at <paramref name="offset"/>; reads up to <see cref="ImageSize"/> are allowed.</summary>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) =>
        _image.ReadAsync(offset, buffer, cancellationToken);

    public void Dispose() => _image.Dispose();
}
