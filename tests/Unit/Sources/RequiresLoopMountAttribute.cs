using System.Runtime.InteropServices;

namespace AsrModule.Tests.Unit.Sources;

/// <summary>
/// A <see cref="FactAttribute"/> for tests that make and mount file systems on loop devices: skipped unless
/// the process is root on Linux with loop devices and the named programs (mkfs.xfs, losetup, …) installed.
/// </summary>
/// <remarks>
/// CI runs as root with xfsprogs, btrfs-progs and util-linux installed: there (CI=true) nothing is skipped,
/// so a missing tool or permission fails the test instead of hiding it.
/// </remarks>
public sealed class RequiresLoopMountAttribute : FactAttribute
{
    [DllImport("libc")]
    private static extern uint geteuid();

    public RequiresLoopMountAttribute(params string[] tools)
    {
        if (Environment.GetEnvironmentVariable("CI") == "true") return;
        if (!OperatingSystem.IsLinux())
        {
            Skip = "Loop-mounted file systems need Linux.";
            return;
        }
        if (geteuid() != 0)
        {
            Skip = "Mounting loop file systems needs root.";
            return;
        }
        if (!File.Exists("/dev/loop-control"))
        {
            Skip = "No loop devices (/dev/loop-control is missing).";
            return;
        }
        var missing = tools.Append("mount").Append("umount").Where(t => ExternalCommand.PathOf(t) is null).ToArray();
        if (missing.Length > 0)
            Skip = $"Not installed: {string.Join(", ", missing)} (apt-get install xfsprogs btrfs-progs e2fsprogs util-linux)";
    }
}
