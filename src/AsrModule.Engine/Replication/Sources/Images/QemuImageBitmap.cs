namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>A persistent dirty bitmap stored in a qcow2 image, as <c>qemu-img info</c> reports it.</summary>
/// <param name="Name">The bitmap's name (what <c>qemu-nbd --bitmap</c> and the NBD context "qemu:dirty-bitmap:NAME" use).</param>
/// <param name="Granularity">Bytes one bit covers: a write anywhere in a granule marks all of it.</param>
/// <param name="Enabled">Whether writes mark it (QEMU's "auto" flag); a disabled bitmap is frozen.</param>
/// <param name="InUse">
/// QEMU's "in-use" flag. QEMU sets it while it has the image open for writing and clears it when it closes the
/// image; on a stopped image it means a QEMU died (crash, SIGKILL, power loss) with the image open, so writes
/// may be missing from the bitmap. Such a bitmap cannot be used or cleared, only removed and added again (the
/// next copy then reads the whole disk).
/// </param>
public sealed record QemuImageBitmap(string Name, long Granularity, bool Enabled, bool InUse)
{
    /// <summary>True when the bitmap can be trusted to hold every write since it was added or cleared.</summary>
    public bool IsConsistent => !InUse;
}
