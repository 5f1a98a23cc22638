namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// The on-disk format of a disk image: how the guest-visible bytes are laid out in the file. Everything but
/// <see cref="Raw"/> is read and written through QEMU's block layer (qemu-nbd, qemu-img).
/// </summary>
/// <remarks>
/// Stored with a protected disk once it is pinned, so the numeric values are part of the vault format: add new
/// formats at the end only.
/// </remarks>
public enum DiskImageFormat
{
    /// <summary>The guest's bytes as they are (a plain image file or a block device).</summary>
    Raw,

    /// <summary>QEMU/KVM's copy-on-write format; the only one that stores persistent dirty bitmaps.</summary>
    Qcow2,

    /// <summary>VMware's format: a sparse file or a text descriptor naming extent files.</summary>
    Vmdk,

    /// <summary>Hyper-V's format since Windows Server 2012.</summary>
    Vhdx,

    /// <summary>VirtualBox's format.</summary>
    Vdi,

    /// <summary>Legacy VHD (Virtual PC, older Hyper-V, Azure page blobs), which QEMU calls "vpc". Read-only here.</summary>
    Vpc,
}
