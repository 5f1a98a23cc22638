using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Policies;

public enum CompressionMethod { None, Zstd }

/// <summary>
/// A replication policy: how long points are kept, how often they are taken, when RPO is unhealthy
/// and how data is compressed. Ranges follow the reference service where it has one.
/// </summary>
public sealed class AsrPolicy
{
    public string Name { get; set; } = "";
    public Guid Id { get; set; }
    public DateTimeOffset CreatedUtc { get; set; }
    public int RecoveryPointRetentionHours { get; set; } = 24;
    public double CrashConsistentFrequencyMinutes { get; set; } = 5;
    /// <summary>0 disables app-consistent points; otherwise 1–12 hours.</summary>
    public int AppConsistentFrequencyHours { get; set; } = 4;
    public int RpoThresholdMinutes { get; set; } = 15;
    public CompressionMethod Compression { get; set; } = CompressionMethod.Zstd;
    /// <summary>zstd level, 1 (fastest) to 19.</summary>
    public int CompressionLevel { get; set; } = 1;

    /// <summary>The shortest crash-consistent frequency.</summary>
    public const int MinimumFrequencySeconds = 5;

    /// <summary>The crash-consistent frequency in seconds (shown by Get-AsrPolicy).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public double CrashConsistentFrequencySeconds => Math.Round(CrashConsistentFrequencyMinutes * 60, 3);

    public void Validate()
    {
        Check(IsValidName(Name), nameof(Name), $"'{Name}' is not a valid policy name: use 1–64 letters, digits, '-', '_' or '.', starting with a letter or digit.");
        Check(RecoveryPointRetentionHours is >= 0 and <= 720, nameof(RecoveryPointRetentionHours),
            $"RecoveryPointRetentionHours is {RecoveryPointRetentionHours}; allowed: 0 to 720.");
        // 5 s is what change tracking (reflink clones, QEMU bitmaps) sustains; a full scan of a large disk takes longer
        // than that, and its points simply come as fast as the scans do.
        Check(CrashConsistentFrequencyMinutes * 60 is >= MinimumFrequencySeconds - 0.001 && CrashConsistentFrequencyMinutes <= 1440, nameof(CrashConsistentFrequencyMinutes),
            $"CrashConsistentFrequencyMinutes is {CrashConsistentFrequencyMinutes}; allowed: 5 seconds (-CrashConsistentFrequencySeconds 5, or 0.0834 minutes) to 1440 minutes.");
        Check(AppConsistentFrequencyHours is >= 0 and <= 12, nameof(AppConsistentFrequencyHours),
            $"AppConsistentFrequencyHours is {AppConsistentFrequencyHours}; allowed: 0 (off) or 1 to 12.");
        Check(RpoThresholdMinutes is >= 1 and <= 1440, nameof(RpoThresholdMinutes),
            $"RpoThresholdMinutes is {RpoThresholdMinutes}; allowed: 1 to 1440.");
        Check(CompressionLevel is >= 1 and <= 19, nameof(CompressionLevel),
            $"CompressionLevel is {CompressionLevel}; allowed: 1 to 19.");
        Check(AppConsistentFrequencyHours == 0 || AppConsistentFrequencyHours <= Math.Max(RecoveryPointRetentionHours, 1) || RecoveryPointRetentionHours == 0,
            nameof(AppConsistentFrequencyHours),
            $"AppConsistentFrequencyHours ({AppConsistentFrequencyHours}) must not exceed RecoveryPointRetentionHours ({RecoveryPointRetentionHours}).");
    }

    /// <summary>1–64 letters, digits, '-', '_' or '.', starting with a letter or digit (so never '.' or '..': the name is part of a vault key).</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 64 && char.IsAsciiLetterOrDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    private void Check(bool ok, string setting, string message)
    {
        if (!ok) throw new AsrException(AsrErrorIds.PolicySettingInvalid, AsrErrorKind.InvalidArgument, message, setting);
    }
}
