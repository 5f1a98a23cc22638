namespace AsrModule.Engine.Failover.Boot;

/// <summary>What the item's check gets once the drilled machine is ready.</summary>
public sealed class BootCheckInput
{
    public string ItemName { get; init; } = "";
    public long RecoveryPointSequence { get; init; }
    /// <summary>Everything the machine wrote to its serial console so far (at most the last MiB).</summary>
    public string ConsoleLog { get; init; } = "";
    /// <summary>Guest TCP port → port on 127.0.0.1 that reaches it.</summary>
    public IReadOnlyDictionary<int, int> ForwardedPorts { get; init; } = new Dictionary<int, int>();
    public double ReadyAfterSeconds { get; init; }
    /// <summary>The screenshot taken when the machine became ready (PNG), or null.</summary>
    public string? ScreenshotPath { get; init; }

    /// <summary>The host port that reaches <paramref name="guestPort"/> (for checks: <c>$input.HostPort(8080)</c>).</summary>
    public int HostPort(int guestPort) => ForwardedPorts.TryGetValue(guestPort, out int p) ? p
        : throw new ArgumentException($"Guest port {guestPort} is not forwarded; forward it with -ForwardPort {guestPort}.");
}

/// <summary>The check's verdict: passed or not, and what it said.</summary>
public sealed record BootCheckOutcome(bool Passed, string Message);

/// <summary>
/// The item's check, run once the machine is ready. The engine does not know PowerShell: the cmdlet turns a script block
/// into this (run on the pipeline thread, or in a runspace of its own under -AsJob).
/// </summary>
public delegate Task<BootCheckOutcome> BootCheck(BootCheckInput input, CancellationToken cancellationToken);
