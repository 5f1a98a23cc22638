namespace AsrModule.Tests.Unit.Images;

/// <summary>
/// Whether QEMU's image tools (Debian package qemu-utils: qemu-img, qemu-nbd, qemu-io) are installed. Tests that
/// need them are skipped where they are not, except in CI (CI=true), which installs them: there a missing tool
/// must fail the test, not hide it.
/// </summary>
internal static class QemuUtils
{
    private static readonly string[] Tools = ["qemu-img", "qemu-nbd", "qemu-io"];

    public static string? SkipReason
    {
        get
        {
            var missing = Tools.Where(t => NbdServerTests.RequiresToolAttribute.PathOf(t) is null).ToArray();
            return missing.Length > 0 && Environment.GetEnvironmentVariable("CI") != "true"
                ? $"Not installed: {string.Join(", ", missing)} (apt-get install qemu-utils)"
                : null;
        }
    }
}

/// <summary>A fact that needs qemu-utils (see <see cref="QemuUtils"/>).</summary>
public sealed class RequiresQemuFactAttribute : FactAttribute
{
    public RequiresQemuFactAttribute()
    {
        if (QemuUtils.SkipReason is { } reason) Skip = reason;
    }
}

/// <summary>A theory that needs qemu-utils (see <see cref="QemuUtils"/>).</summary>
public sealed class RequiresQemuTheoryAttribute : TheoryAttribute
{
    public RequiresQemuTheoryAttribute()
    {
        if (QemuUtils.SkipReason is { } reason) Skip = reason;
    }
}
