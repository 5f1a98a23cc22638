using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Engine.Retention;

/// <summary>
/// Which points a policy keeps, thinned the way the reference service does: every point of the last
/// 2 hours, then one per clock hour up to 24 hours, then one per 2 clock hours up to the retention;
/// older points go. A retention shorter than a window cuts that window short.
/// </summary>
public static class RetentionPlanner
{
    public static readonly TimeSpan KeepEveryPointFor = TimeSpan.FromHours(2);
    public static readonly TimeSpan HourlyUpTo = TimeSpan.FromHours(24);

    /// <summary>
    /// The sequences to keep. The newest point always stays, even past retention: an item whose
    /// replication stopped must not lose its last point. In-use points (a drill, a failover) stay
    /// whatever their age. Buckets are UTC clock hours (and even 2-hour spans), so members of a
    /// replication group, whose points share their times, keep the same points.
    /// </summary>
    public static HashSet<long> SelectKept(IReadOnlyCollection<RetentionCandidate> points, DateTimeOffset nowUtc, int retentionHours, IReadOnlySet<long> inUse)
    {
        var kept = new HashSet<long>();
        if (points.Count == 0) return kept;
        kept.Add(points.Max(p => p.Sequence));
        kept.UnionWith(points.Select(p => p.Sequence).Where(inUse.Contains));
        // Retention 0 keeps no window at all (not even points taken this instant): only the newest.
        if (retentionHours <= 0) return kept;

        var retention = TimeSpan.FromHours(retentionHours);
        var bucketWinners = new Dictionary<(long Width, long Bucket), RetentionCandidate>();
        foreach (var p in points)
        {
            var age = nowUtc - p.TimeUtc;
            if (age > retention) continue;
            if (age <= KeepEveryPointFor)
            {
                kept.Add(p.Sequence);
                continue;
            }
            // The bucket width is part of the key: an hour straddling the 24 h line keeps its best
            // point on each side of it (one in the hourly window, one in the 2-hourly one).
            long width = (age <= HourlyUpTo ? TimeSpan.FromHours(1) : TimeSpan.FromHours(2)).Ticks;
            // Tick 0 is midnight, so dividing UTC ticks gives clock hours and even-hour pairs.
            var key = (width, p.TimeUtc.UtcTicks / width);
            if (!bucketWinners.TryGetValue(key, out var best) || IsBetter(p, best))
                bucketWinners[key] = p;
        }
        kept.UnionWith(bucketWinners.Values.Select(p => p.Sequence));
        return kept;
    }

    /// <summary>
    /// A group's coordinated point beats a single-machine one (every member of a group has the same group
    /// points at the same times, so all members keep the same ones and the group point survives thinning);
    /// then a consistent point beats an Inconsistent one, an app-consistent point a crash-consistent one;
    /// otherwise the newer one wins.
    /// </summary>
    private static bool IsBetter(RetentionCandidate candidate, RetentionCandidate best)
    {
        if (candidate.IsGroupPoint != best.IsGroupPoint) return candidate.IsGroupPoint;
        // A point read while written is kept only when its hour has nothing better.
        bool candidateFuzzy = candidate.Consistency == RecoveryPointConsistency.Inconsistent;
        if (candidateFuzzy != (best.Consistency == RecoveryPointConsistency.Inconsistent)) return !candidateFuzzy;
        bool candidateApp = candidate.Consistency == RecoveryPointConsistency.AppConsistent;
        bool bestApp = best.Consistency == RecoveryPointConsistency.AppConsistent;
        if (candidateApp != bestApp) return candidateApp;
        return (candidate.TimeUtc, candidate.Sequence).CompareTo((best.TimeUtc, best.Sequence)) > 0;
    }
}
