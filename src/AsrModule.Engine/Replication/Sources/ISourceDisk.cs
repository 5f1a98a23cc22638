using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Engine.Replication.Sources;

/// <summary>
/// A source disk opened for reading, whatever holds it: a raw image file, a block device, or a disk image
/// of another format (qcow2, VMDK, VHDX, VDI) read through QEMU's block layer. Offsets and sizes are the
/// guest-visible ones.
/// </summary>
public interface ISourceDisk : IDisposable
{
    /// <summary>The path the disk was opened from (for messages).</summary>
    string Path { get; }

    /// <summary>The guest-visible size in bytes.</summary>
    long Size { get; }

    /// <summary>Reads exactly <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>.</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>
    /// The ranges that may hold data, sorted and non-overlapping; everything else reads as zeros and need not be
    /// read (holes of a sparse file, unallocated clusters of an image). Null when the disk cannot tell.
    /// </summary>
    ValueTask<IReadOnlyList<ByteRange>?> GetDataRangesAsync(CancellationToken cancellationToken);
}
