using System.Text.Json;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>What <c>qemu-img info</c> tells of an image whose format is known (given explicitly, never probed).</summary>
public static class QemuImageInfo
{
    /// <summary>
    /// The guest-visible size of the <paramref name="format"/> image at <paramref name="path"/>. Read without taking
    /// QEMU's image lock (the size only): a writer that follows takes the lock and reports a running VM.
    /// </summary>
    public static async Task<long> VirtualSizeAsync(string path, DiskImageFormat format, CancellationToken cancellationToken)
    {
        if (!Enum.IsDefined(format))
            throw new AsrException(AsrErrorIds.DiskFormatUnsupported, AsrErrorKind.InvalidArgument,
                $"Disk image format {(int)format} of '{path}' is not supported. Use one of: {DiskImageFormats.AcceptedNames}.", path);
        var file = DiskImageFile.Existing(path, forWriting: false);
        string json = await QemuTools.RunAsync(QemuTools.QemuImg,
            ["info", "--output=json", "--image-opts", QemuImageOptions.For(file.FullPath, file.IsBlockDevice, format, forceShare: true)],
            new QemuToolFailure(path, $"read the size of {DiskImageFormats.DisplayName(format)} image '{path}'", AsrErrorKind.ReadError,
                $"Check that '{path}' is a {DiskImageFormats.DisplayName(format)} image (qemu-img check -f {DiskImageFormats.QemuName(format)} '{path}')."),
            QemuTools.MetadataTimeout, cancellationToken).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(json);
            return doc.RootElement.GetProperty("virtual-size").GetInt64();
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
        {
            throw new AsrException(AsrErrorIds.DiskImageFailed, AsrErrorKind.InvalidData,
                $"qemu-img info of '{path}' gave output the engine cannot read ({ex.Message}). Check the installed qemu-utils version.", path, ex);
        }
    }
}
