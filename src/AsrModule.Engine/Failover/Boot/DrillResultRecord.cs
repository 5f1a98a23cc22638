using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Failover.Boot;

/// <summary>
/// One boot verification of a drill, kept in the vault's drill history of the item (<see cref="VaultLayout.DrillResult"/>)
/// after the drill is cleaned up: what the health report shows. The screenshot travels inside it (a few KiB of PNG), so
/// the history reads the same from any machine. Vault data: <see cref="Validate"/> before use.
/// </summary>
public sealed class DrillResultRecord
{
    /// <summary>Largest screenshot kept in the history (a 720x400 console screen is ~5 KiB; a busy 1024x768 desktop ~100 KiB).</summary>
    public const int MaximumScreenshotBytes = 512 * 1024;
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public string ItemId { get; set; } = "";
    public string ItemName { get; set; } = "";
    public Guid DrillId { get; set; }
    public Guid JobId { get; set; }
    public long RecoveryPointSequence { get; set; }
    public DateTimeOffset RecoveryPointTimeUtc { get; set; }
    public BootVerificationResult Boot { get; set; } = new();
    /// <summary>The screenshot as PNG bytes, or null.</summary>
    public byte[]? Screenshot { get; set; }

    public static bool IsPng(ReadOnlySpan<byte> data) => data.Length > PngSignature.Length && data[..PngSignature.Length].SequenceEqual(PngSignature);

    /// <summary>Throws VaultDataCorrupt naming <paramref name="key"/> when the record is not one of <paramref name="itemId"/> or its screenshot is not a PNG.</summary>
    public void Validate(string key, string itemId)
    {
        string? why = ItemId != itemId ? $"it names item '{ItemId}'"
            : Screenshot is { } s && (s.Length > MaximumScreenshotBytes || !IsPng(s)) ? "its screenshot is not a PNG image of at most 512 KiB"
            : Boot is null ? "it has no boot result"
            : Boot.Outcome is not (BootVerificationResult.Passed or BootVerificationResult.NotReady or BootVerificationResult.CheckFailed) ? $"its outcome '{Boot.Outcome}' is unknown"
            : null;
        if (why is not null)
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"The drill result '{key}' is not valid: {why}. It is skipped.", key);
    }
}
