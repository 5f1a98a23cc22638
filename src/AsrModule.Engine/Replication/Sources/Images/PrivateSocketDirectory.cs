using System.Runtime.InteropServices;
using System.Text;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// A directory only this user can enter (mode 0700, made by mkdtemp), for the unix socket a qemu-nbd child
/// listens on: the socket serves a whole disk, and nobody else must be able to connect to it. Deleted with what
/// it holds on dispose.
/// </summary>
internal sealed class PrivateSocketDirectory : IDisposable
{
    // sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
    private const int MaximumUnixSocketPath = 107;
    private const string Prefix = "asr-qemu-nbd-";

    private PrivateSocketDirectory(string path) => Path = path;

    public string Path { get; }

    /// <summary>The full path of <paramref name="name"/> inside the directory.</summary>
    public string this[string name] => System.IO.Path.Combine(Path, name);

    /// <summary>
    /// Makes the directory in the temp directory, or in /tmp when a long TMPDIR would make the path of
    /// <paramref name="socketName"/> too long for a unix socket.
    /// </summary>
    public static PrivateSocketDirectory Create(string socketName, string prefix = Prefix)
    {
        string parent = System.IO.Path.GetTempPath();
        // mkdtemp's "XXXXXX" plus the separators.
        if (System.IO.Path.Combine(parent, prefix + "XXXXXX", socketName).Length > MaximumUnixSocketPath) parent = "/tmp";
        if (OperatingSystem.IsWindows())
            return new PrivateSocketDirectory(Directory.CreateTempSubdirectory(prefix).FullName);
        byte[] template = Encoding.UTF8.GetBytes(System.IO.Path.Combine(parent, prefix + "XXXXXX") + "\0");
        if (mkdtemp(template) == IntPtr.Zero)
            throw new IOException($"Cannot create a private directory in '{parent}' for qemu-nbd's socket (errno {Marshal.GetLastPInvokeError()}).");
        return new PrivateSocketDirectory(Encoding.UTF8.GetString(template, 0, template.Length - 1));
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (DirectoryNotFoundException) { }
        catch (IOException) { /* a socket qemu-nbd still holds; the temp directory's cleaner removes it */ }
        catch (UnauthorizedAccessException) { }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern IntPtr mkdtemp(byte[] template);
}
