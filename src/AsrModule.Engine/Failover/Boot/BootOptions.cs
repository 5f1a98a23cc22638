using System.Text.RegularExpressions;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Failover.Boot;

/// <summary>The disk controller a drilled machine's disks are attached to (what its operating system has drivers for).</summary>
public enum BootDiskBus { Virtio, Ide, Sata }

/// <summary>
/// How a drilled machine is booted and when it counts as ready: a console line (<see cref="ReadyPattern"/>), a guest TCP
/// port answering through a host forward (<see cref="ReadyPort"/>), or both (both must hold). Validated before any job.
/// </summary>
public sealed record BootOptions
{
    public const int DefaultTimeoutSeconds = 300;
    public const int DefaultMemoryMiB = 1024;
    public static readonly IReadOnlyList<string> NicModels = ["virtio-net-pci", "e1000", "rtl8139"];

    /// <summary>A regular expression matched against the serial console (ttyS0); the machine is ready once a line matches.</summary>
    public string? ReadyPattern { get; init; }

    /// <summary>A guest TCP port that must answer through its host forward (a banner, or a reply to an HTTP HEAD).</summary>
    public int? ReadyPort { get; init; }

    /// <summary>More guest TCP ports forwarded to 127.0.0.1 for the check (ReadyPort is always forwarded).</summary>
    public IReadOnlyList<int> ForwardPorts { get; init; } = [];

    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(DefaultTimeoutSeconds);
    public int MemoryMiB { get; init; } = DefaultMemoryMiB;
    public int Cpus { get; init; } = 1;
    public BootDiskBus DiskBus { get; init; } = BootDiskBus.Virtio;
    public string NicModel { get; init; } = "virtio-net-pci";

    /// <summary>Every guest port forwarded, ReadyPort first.</summary>
    public IReadOnlyList<int> GuestPorts => (ReadyPort is { } p ? [p] : Array.Empty<int>()).Concat(ForwardPorts).Distinct().ToList();

    /// <summary>The console pattern, compiled with a match timeout (the pattern is the caller's, the console the guest's).</summary>
    public Regex? CompiledPattern() => ReadyPattern is null ? null
        : new Regex(ReadyPattern, RegexOptions.Multiline | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    /// <summary>Throws BootSettingInvalid (InvalidArgument) naming the setting and what is allowed.</summary>
    public void Validate()
    {
        if (string.IsNullOrEmpty(ReadyPattern) && ReadyPort is null)
            throw Invalid("ReadyPattern", "A boot needs a readiness signal: give -ReadyPattern (a console line, e.g. 'login:') and/or -ReadyPort (a guest TCP port, e.g. 22).");
        if (ReadyPattern is not null)
        {
            try { _ = CompiledPattern(); }
            catch (ArgumentException ex) { throw Invalid("ReadyPattern", $"-ReadyPattern '{ReadyPattern}' is not a valid regular expression: {ex.Message}"); }
        }
        foreach (int port in GuestPorts)
            if (port is < 1 or > 65535) throw Invalid("ReadyPort", $"Guest port {port} is not a TCP port (1-65535).");
        if (GuestPorts.Count > 16) throw Invalid("ForwardPort", "At most 16 guest ports can be forwarded.");
        if (Timeout < TimeSpan.FromSeconds(5) || Timeout > TimeSpan.FromHours(2))
            throw Invalid("BootTimeoutSeconds", $"-BootTimeoutSeconds {Timeout.TotalSeconds:0} is outside 5-7200.");
        if (MemoryMiB is < 64 or > 65536) throw Invalid("MemoryMiB", $"-MemoryMiB {MemoryMiB} is outside 64-65536.");
        if (Cpus is < 1 or > 64) throw Invalid("Cpus", $"-Cpus {Cpus} is outside 1-64.");
        if (!NicModels.Contains(NicModel)) throw Invalid("NicModel", $"-NicModel '{NicModel}' is not one of {string.Join(", ", NicModels)}.");
    }

    private static AsrException Invalid(string setting, string message) =>
        new(AsrErrorIds.BootSettingInvalid, AsrErrorKind.InvalidArgument, message + " Nothing was started.", setting);
}
