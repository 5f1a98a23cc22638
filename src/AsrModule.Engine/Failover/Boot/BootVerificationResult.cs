namespace AsrModule.Engine.Failover.Boot;

/// <summary>
/// What a boot verification of a drill showed; kept on the drill record (TestFailover.Boot), the job's Result.Boot and the
/// item's drill history. Outcome: Passed (ready, and the check passed or there was none), NotReady (no readiness signal
/// within the timeout, or QEMU ended), CheckFailed.
/// </summary>
public sealed class BootVerificationResult
{
    public const string Passed = "Passed";
    public const string NotReady = "NotReady";
    public const string CheckFailed = "CheckFailed";

    public string Outcome { get; set; } = NotReady;
    /// <summary>Whether the readiness signal came within the timeout.</summary>
    public bool Booted { get; set; }
    /// <summary>Seconds from QEMU's start to the readiness signal, or null when none came.</summary>
    public double? ReadyAfterSeconds { get; set; }
    /// <summary>What made it ready ("console: <line>", "port 22"), or why not.</summary>
    public string Detail { get; set; } = "";
    /// <summary>Passed, Failed or NotRun (no check given, or not ready).</summary>
    public string CheckResult { get; set; } = "NotRun";
    public string? CheckMessage { get; set; }
    /// <summary>The last lines of the serial console (control characters removed).</summary>
    public string ConsoleTail { get; set; } = "";
    /// <summary>The screenshot (PNG) in the drill's directory, or null when QEMU could not take one.</summary>
    public string? ScreenshotPath { get; set; }
    /// <summary>kvm or tcg.</summary>
    public string Accelerator { get; set; } = "";
    public DateTimeOffset StartedUtc { get; set; }
    public DateTimeOffset EndedUtc { get; set; }

    public override string ToString() => Outcome == Passed
        ? $"Passed: ready after {ReadyAfterSeconds:0.0} s ({Detail}); check {CheckResult}"
        : $"{Outcome}: {Detail}{(CheckMessage is null ? "" : "; check: " + CheckMessage)}";
}
