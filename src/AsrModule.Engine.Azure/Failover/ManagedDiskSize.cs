using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// The size rules of an Azure managed disk created for direct upload (<c>createOption: Upload</c>): the upload is a
/// fixed VHD, that is the disk's bytes (the payload) followed by a 512-byte footer, and Azure requires the payload
/// to be a whole number of MiB, at least 20 MiB and at most 32 TiB (<c>uploadSizeBytes</c> between 20 MiB + 512 and
/// 32 TiB + 512).
/// <para>
/// A disk whose size is not such a number is uploaded as the point's bytes followed by zeros up to the payload
/// size: the recovered managed disk is the recovery point's disk plus zero padding to the next MiB (or to
/// 20 MiB). The padding reads as zeros (those pages are never written; a page blob's unwritten pages read as
/// zeros), so a guest sees its disk unchanged, followed by unpartitioned space.
/// </para>
/// </summary>
public static class ManagedDiskSize
{
    /// <summary>Azure's alignment of an uploaded VHD's payload.</summary>
    public const long Alignment = 1L << 20;

    /// <summary>Smallest payload Azure accepts for an upload (20 MiB).</summary>
    public const long MinPayloadBytes = 20L << 20;

    /// <summary>Largest payload Azure accepts for an upload (32 TiB).</summary>
    public const long MaxPayloadBytes = 32L << 40;

    /// <summary>Size of the fixed VHD footer that follows the payload.</summary>
    public const int FooterBytes = FixedVhdFooter.Size;

    /// <summary>
    /// The VHD payload for a disk of <paramref name="diskBytes"/> bytes: rounded up to a whole MiB and to at least
    /// 20 MiB. Bytes from <paramref name="diskBytes"/> to this size are zeros.
    /// </summary>
    public static long PayloadBytes(long diskBytes)
    {
        if (diskBytes <= 0)
            throw new AsrException(ManagedDiskErrorIds.ManagedDiskUploadSizeInvalid, AsrErrorKind.InvalidArgument,
                $"A disk of {diskBytes} bytes cannot be uploaded: a disk has at least one byte.", diskBytes);
        if (diskBytes > MaxPayloadBytes)
            throw new AsrException(ManagedDiskErrorIds.ManagedDiskUploadSizeInvalid, AsrErrorKind.InvalidArgument,
                $"A disk of {diskBytes:N0} bytes cannot be uploaded to an Azure managed disk: the largest upload is 32 TiB ({MaxPayloadBytes:N0} bytes).", diskBytes);
        long rounded = (diskBytes + Alignment - 1) / Alignment * Alignment;
        return Math.Max(rounded, MinPayloadBytes);
    }

    /// <summary>
    /// What the control plane passes as <c>creationData.uploadSizeBytes</c> when it creates the disk, and so the
    /// size of the page blob the write SAS addresses: <see cref="PayloadBytes"/> + 512 (the footer).
    /// </summary>
    public static long UploadSizeBytes(long diskBytes) => PayloadBytes(diskBytes) + FooterBytes;

    /// <summary>Offset of the footer in the upload: the payload size.</summary>
    public static long FooterOffset(long diskBytes) => PayloadBytes(diskBytes);
}
