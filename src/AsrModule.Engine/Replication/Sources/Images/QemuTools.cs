using System.Diagnostics;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// Finds and runs QEMU's command-line tools (qemu-img, qemu-nbd). Arguments go through
/// <see cref="ProcessStartInfo.ArgumentList"/>, never a shell, so no path or name can inject anything; a tool that
/// fails becomes <see cref="AsrErrorIds.DiskImageFailed"/> carrying its stderr.
/// </summary>
public static class QemuTools
{
    public const string QemuImg = "qemu-img";
    public const string QemuNbd = "qemu-nbd";

    /// <summary>Longest wait for a command that only reads or edits metadata (info, bitmap, create).</summary>
    public static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(120);

    // The system's directories come before PATH: the agent runs as root, and a PATH entry someone else can write
    // to must not decide which binary gets the disks.
    private static readonly string[] SystemDirectories = ["/usr/bin", "/usr/local/bin", "/bin", "/usr/sbin", "/sbin"];

    /// <summary>The full path of <paramref name="tool"/>, or <see cref="AsrErrorIds.DiskImageToolMissing"/>.</summary>
    public static string Locate(string tool)
    {
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var directory in SystemDirectories.Concat(path.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)))
        {
            if (!Path.IsPathFullyQualified(directory)) continue;
            string candidate = Path.Combine(directory, tool);
            if (File.Exists(candidate) && IsExecutable(candidate)) return candidate;
        }
        throw new AsrException(AsrErrorIds.DiskImageToolMissing, AsrErrorKind.ResourceUnavailable,
            $"{tool} is not installed, and disk images other than raw (qcow2, VMDK, VHDX, VDI, VHD) are read and written with QEMU's tools. " +
            "Install the Debian package qemu-utils (apt-get install qemu-utils) and try again.", tool);
    }

    private static bool IsExecutable(string path) =>
        OperatingSystem.IsWindows() || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    /// <summary>
    /// Runs <paramref name="tool"/> with <paramref name="arguments"/> and returns its stdout. A non-zero exit code
    /// becomes <paramref name="failure"/>'s exception; running past <paramref name="timeout"/> (Infinite for none)
    /// or cancellation kills the tool.
    /// </summary>
    public static async Task<string> RunAsync(string tool, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken cancellationToken) =>
        await RunAsync(tool, arguments, new QemuToolFailure(tool, $"run {string.Join(' ', arguments)}", AsrErrorKind.InvalidOperation, "See the tool's message."),
            timeout, cancellationToken).ConfigureAwait(false);

    internal static async Task<string> RunAsync(string tool, IReadOnlyList<string> arguments, QemuToolFailure failure, TimeSpan timeout, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var process = new Process { StartInfo = StartInfo(Locate(tool), arguments) };
        try
        {
            process.Start();
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new AsrException(AsrErrorIds.DiskImageToolMissing, AsrErrorKind.ResourceUnavailable,
                $"{tool} could not be started ({ex.Message}). Reinstall the Debian package qemu-utils and try again.", tool, ex);
        }
        // Nothing is ever typed into a tool: a closed stdin makes one that would prompt fail instead of hanging.
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout != Timeout.InfiniteTimeSpan) timer.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timer.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill(process);
            cancellationToken.ThrowIfCancellationRequested();
            throw new AsrException(AsrErrorIds.DiskImageFailed, AsrErrorKind.OperationTimeout,
                $"{tool} did not {failure.Action} within {timeout.TotalSeconds:0} s and was stopped. Check that '{failure.Target}' and its file system respond (a hung NFS mount, a failing disk) and try again.",
                failure.Target);
        }
        string output = await stdout.ConfigureAwait(false);
        string errors = await stderr.ConfigureAwait(false);
        // Most tools report on stderr; some (qemu-io) print their errors with their output.
        if (process.ExitCode != 0) throw failure.ToException(tool, errors.Trim().Length > 0 ? errors : Tail(output), process.ExitCode);
        return output;
    }

    private static string Tail(string text, int length = 4096) => text.Length <= length ? text : "..." + text[^length..];

    internal static ProcessStartInfo StartInfo(string executable, IReadOnlyList<string> arguments)
    {
        var psi = new ProcessStartInfo(executable)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments) psi.ArgumentList.Add(argument);
        return psi;
    }

    /// <summary>Kills the process and waits (briefly) until it is gone, so that it no longer holds the image.</summary>
    internal static void Kill(Process process)
    {
        try
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit(TimeSpan.FromSeconds(10));
        }
        catch (InvalidOperationException) { /* already exited */ }
        catch (System.ComponentModel.Win32Exception) { /* exited meanwhile */ }
    }
}
