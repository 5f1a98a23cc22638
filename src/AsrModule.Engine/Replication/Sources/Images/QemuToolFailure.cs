using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// How a failure of a QEMU tool is reported: which image it was about, what the engine was doing, what kind of
/// error it is and what the user can do. The tool's own words (its stderr) go into the message verbatim.
/// </summary>
/// <param name="Target">The image (path or URI) the message and <see cref="AsrException.Target"/> name.</param>
/// <param name="Action">What failed, completing "qemu-img could not ...": "add bitmap 'x' to '/a.qcow2'".</param>
/// <param name="Kind">The error kind when nothing more specific is recognised in the tool's output.</param>
/// <param name="Advice">The way forward when nothing more specific is recognised.</param>
internal sealed record QemuToolFailure(string Target, string Action, AsrErrorKind Kind, string Advice)
{
    /// <summary>The <see cref="AsrErrorIds.DiskImageFailed"/> for a tool that failed with <paramref name="stderr"/>.</summary>
    public AsrException ToException(string tool, string stderr, int? exitCode = null)
    {
        string said = stderr.Trim();
        if (said.Length == 0) said = exitCode is { } code ? $"exit code {code}, no message" : "no message";
        var (kind, advice) = Recognise(said);
        return new AsrException(AsrErrorIds.DiskImageFailed, kind, $"{tool} could not {Action}: {said}. {advice}", Target);
    }

    private (AsrErrorKind Kind, string Advice) Recognise(string said)
    {
        // QEMU's image locking: another QEMU (a running VM) holds the image.
        if (said.Contains("Failed to get", StringComparison.Ordinal) && said.Contains("lock", StringComparison.Ordinal))
            return (AsrErrorKind.ResourceBusy,
                $"Another process, most likely the running VM, has '{Target}' open: shut the VM down (or detach the disk) and try again.");
        // A persistent bitmap a QEMU had open when it died (the "in-use" flag): its contents cannot be trusted.
        if (said.Contains("is inconsistent and cannot be used", StringComparison.Ordinal))
            return (AsrErrorKind.InvalidData,
                $"A QEMU that stopped without closing '{Target}' left the dirty bitmap in use, so it may have missed writes: remove the bitmap and add it again (the next copy then reads the whole disk).");
        if (said.Contains("No space left on device", StringComparison.Ordinal) || said.Contains("Disk quota exceeded", StringComparison.Ordinal))
            return (AsrErrorKind.ResourceUnavailable, "Free space on the destination's file system and try again.");
        if (said.Contains("Permission denied", StringComparison.Ordinal))
            return (AsrErrorKind.SecurityError, $"Check that the user the engine runs as may access '{Target}' and every file it refers to (backing file, extents).");
        return (Kind, Advice);
    }
}
