namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// The option string QEMU's tools take with <c>--image-opts</c>: the format driver, the protocol driver and the file
/// spelled out, so that nothing is left for QEMU to guess from the file name or contents.
/// </summary>
/// <remarks>
/// qemu-nbd 7.2 has no <c>--force-share</c> flag (only qemu-img and qemu-io have <c>-U</c>); the block layer's
/// <c>force-share=on</c> option, set here, is what those flags set, and children (a qcow2's data file, a VMDK's
/// extents) inherit it.
/// </remarks>
internal static class QemuImageOptions
{
    public static string For(string fullPath, bool isBlockDevice, DiskImageFormat format, bool forceShare)
    {
        // QEMU's "file" driver refuses block devices; "host_device" is its driver for them.
        string protocol = isBlockDevice ? "host_device" : "file";
        string options = $"driver={DiskImageFormats.QemuName(format)},file.driver={protocol},file.filename={Escape(fullPath)}";
        return forceShare ? options + ",force-share=on" : options;
    }

    /// <summary>QemuOpts separates options with commas; a comma inside a value is written twice.</summary>
    internal static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
