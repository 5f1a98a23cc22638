using System.Globalization;

namespace AsrModule.Engine.Replication.Sources.Linux;

/// <summary>
/// A file time as the kernel keeps it (struct statx_timestamp): whole seconds since the Unix epoch and
/// nanoseconds. Kept exact rather than as a <see cref="DateTime"/>, whose 100 ns ticks would make two
/// different kernel times compare equal.
/// </summary>
internal readonly record struct FileTimestamp(long Seconds, uint Nanoseconds)
{
    /// <summary>"2025-03-01T12:00:00.123456789Z".</summary>
    public override string ToString()
    {
        var whole = DateTimeOffset.FromUnixTimeSeconds(Seconds).UtcDateTime;
        return whole.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture) + "." + Nanoseconds.ToString("D9", CultureInfo.InvariantCulture) + "Z";
    }
}
