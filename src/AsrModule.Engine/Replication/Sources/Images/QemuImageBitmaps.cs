using System.Text.Json;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// Persistent dirty bitmaps of a STOPPED qcow2 image, managed with <c>qemu-img bitmap</c>: while the image is
/// closed, an enabled bitmap is updated by whichever QEMU next opens the image for writing (the VM, qemu-io,
/// qemu-nbd), so it records every write between two copies even across VM restarts, and the next copy reads only
/// those ranges (<see cref="QemuImageSource.DirtyRangesAsync"/>).
/// </summary>
/// <remarks>
/// These commands take QEMU's image lock, so they fail with <see cref="AsrErrorKind.ResourceBusy"/> while a VM has
/// the image open: a running VM's bitmaps belong to that QEMU and are managed over QMP. Callers pass only images
/// whose format was pinned as qcow2; the format is given to qemu-img, never probed.
/// </remarks>
public static class QemuImageBitmaps
{
    // QEMU's limit for a persistent bitmap's name (BDRV_BITMAP_MAX_NAME_SIZE).
    private const int MaximumNameLength = 1023;

    /// <summary>The image's persistent bitmaps (empty when it has none).</summary>
    public static async Task<IReadOnlyList<QemuImageBitmap>> ListAsync(string path, CancellationToken cancellationToken)
    {
        var file = DiskImageFile.Existing(path, forWriting: false);
        string json = await QemuTools.RunAsync(QemuTools.QemuImg, ["info", "--output=json", "-f", "qcow2", file.FullPath],
            Failure(path, $"read the dirty bitmaps of '{path}'", AsrErrorKind.ReadError), QemuTools.MetadataTimeout, cancellationToken).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(json);
            var bitmaps = new List<QemuImageBitmap>();
            if (doc.RootElement.TryGetProperty("format-specific", out var specific)
                && specific.TryGetProperty("data", out var data)
                && data.TryGetProperty("bitmaps", out var list))
            {
                foreach (var bitmap in list.EnumerateArray())
                {
                    var flags = bitmap.TryGetProperty("flags", out var f) ? f.EnumerateArray().Select(x => x.GetString()).ToHashSet() : [];
                    bitmaps.Add(new QemuImageBitmap(bitmap.GetProperty("name").GetString()!, bitmap.GetProperty("granularity").GetInt64(),
                        Enabled: flags.Contains("auto"), InUse: flags.Contains("in-use")));
                }
            }
            return bitmaps;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new AsrException(AsrErrorIds.DiskImageFailed, AsrErrorKind.InvalidData,
                $"qemu-img info of '{path}' gave output the engine cannot read ({ex.Message}). Check the installed qemu-utils version.", path, ex);
        }
    }

    /// <summary>
    /// Adds an enabled persistent bitmap <paramref name="name"/> with <paramref name="granularity"/> bytes per bit
    /// (a power of two, at least 512): from now on every write marks it.
    /// </summary>
    public static Task AddAsync(string path, string name, long granularity, CancellationToken cancellationToken)
    {
        ValidateName(name);
        if (granularity < 512 || granularity > (1L << 31) || (granularity & (granularity - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(granularity), granularity, "A bitmap's granularity is a power of two from 512 bytes to 2 GiB.");
        return BitmapAsync(path, name, ["--add", "-g", granularity.ToString(System.Globalization.CultureInfo.InvariantCulture)], $"add dirty bitmap '{name}' to '{path}'", cancellationToken);
    }

    /// <summary>Clears the bitmap (after a copy that read every range it marked), leaving it enabled.</summary>
    public static Task ClearAsync(string path, string name, CancellationToken cancellationToken)
    {
        ValidateName(name);
        return BitmapAsync(path, name, ["--clear"], $"clear dirty bitmap '{name}' of '{path}'", cancellationToken);
    }

    /// <summary>Removes the bitmap (also one left in use by a crashed QEMU).</summary>
    public static Task RemoveAsync(string path, string name, CancellationToken cancellationToken)
    {
        ValidateName(name);
        return BitmapAsync(path, name, ["--remove"], $"remove dirty bitmap '{name}' from '{path}'", cancellationToken);
    }

    private static async Task BitmapAsync(string path, string name, string[] action, string what, CancellationToken cancellationToken)
    {
        var file = DiskImageFile.Existing(path, forWriting: true);
        await QemuTools.RunAsync(QemuTools.QemuImg, ["bitmap", .. action, "-f", "qcow2", file.FullPath, name],
            Failure(path, what, AsrErrorKind.WriteError), QemuTools.MetadataTimeout, cancellationToken).ConfigureAwait(false);
    }

    private static QemuToolFailure Failure(string path, string what, AsrErrorKind kind) =>
        new(path, what, kind, $"Check that '{path}' is a qcow2 image (only qcow2 stores dirty bitmaps; qemu-img check -f qcow2 '{path}') and that the name is right (qemu-img info '{path}' lists the bitmaps).");

    /// <summary>
    /// A bitmap name the engine hands to QEMU: letters, digits and "-_.:", not starting with "-" (it is a
    /// positional argument of qemu-img, where a leading dash would read as an option).
    /// </summary>
    internal static void ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaximumNameLength || name[0] == '-'
            || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
            throw new ArgumentException($"'{name}' is not a usable dirty bitmap name: use 1 to {MaximumNameLength} letters, digits, '-', '_', '.' or ':', not starting with '-'.", nameof(name));
    }
}
