using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Retention;

namespace AsrModule.Tests.Unit.Retention;

public class RetentionPlannerTests
{
    private static readonly DateTimeOffset Now = new(2025, 3, 2, 12, 40, 0, TimeSpan.Zero);
    private static readonly HashSet<long> NoneInUse = [];

    /// <summary>One crash-consistent point every <paramref name="every"/>, the newest at <paramref name="newestAge"/> before now, oldest first.</summary>
    private static List<RetentionCandidate> Points(TimeSpan every, TimeSpan span, TimeSpan newestAge = default)
    {
        int count = (int)(span / every) + 1;
        return Enumerable.Range(0, count)
            .Select(i => new RetentionCandidate(i + 1, Now - newestAge - span + i * every, RecoveryPointConsistency.CrashConsistent))
            .ToList();
    }

    private static RetentionCandidate At(long sequence, int hour, int minute, RecoveryPointConsistency consistency = RecoveryPointConsistency.CrashConsistent) =>
        new(sequence, new DateTimeOffset(2025, 3, 2, hour, minute, 0, TimeSpan.Zero), consistency);

    private static List<long> Kept(IReadOnlyCollection<RetentionCandidate> points, int retentionHours, IReadOnlySet<long>? inUse = null) =>
        RetentionPlanner.SelectKept(points, Now, retentionHours, inUse ?? NoneInUse).Order().ToList();

    [Fact]
    public void NoPoints_KeepsNothing() => Assert.Empty(Kept([], 24));

    [Fact]
    public void EveryPointOfTheLastTwoHours_IsKept()
    {
        var points = Points(TimeSpan.FromMinutes(5), TimeSpan.FromHours(2));
        Assert.Equal(points.Select(p => p.Sequence), Kept(points, 24));
    }

    [Fact]
    public void BetweenTwoAnd24Hours_TheNewestPointOfEachClockHourIsKept()
    {
        // 10:45 … 10:15 are more than 2 h old (now 12:40); hour 10 keeps 10:35, hour 9 keeps 9:55.
        var points = new List<RetentionCandidate> { At(1, 9, 5), At(2, 9, 55), At(3, 10, 5), At(4, 10, 35), At(5, 10, 45), At(6, 11, 0), At(7, 12, 30) };
        Assert.Equal([2, 4, 5, 6, 7], Kept(points, 24));
    }

    [Fact]
    public void ABucketKeepsItsNewestAppConsistentPoint_OverNewerCrashConsistentOnes()
    {
        var points = new List<RetentionCandidate>
        {
            At(1, 8, 10, RecoveryPointConsistency.AppConsistent), At(2, 8, 20, RecoveryPointConsistency.AppConsistent), At(3, 8, 50),
            At(4, 9, 10), At(5, 9, 50), At(6, 12, 39),
        };
        Assert.Equal([2, 5, 6], Kept(points, 24));
    }

    [Fact]
    public void ABucketKeepsAConsistentPoint_OverNewerInconsistentOnes_AndAnInconsistentOneWhenItIsAllThereIs()
    {
        var points = new List<RetentionCandidate>
        {
            At(1, 8, 10), At(2, 8, 40, RecoveryPointConsistency.Inconsistent), At(3, 8, 50, RecoveryPointConsistency.Inconsistent),
            At(4, 9, 10, RecoveryPointConsistency.Inconsistent), At(5, 9, 50, RecoveryPointConsistency.Inconsistent), At(6, 12, 39),
        };
        Assert.Equal([1, 5, 6], Kept(points, 24));
    }

    [Fact]
    public void Beyond24Hours_OnePointPerEvenTwoHourBucketIsKept_UpToTheRetention()
    {
        // A point every 30 minutes over 3 days, retention 48 h.
        var points = Points(TimeSpan.FromMinutes(30), TimeSpan.FromHours(72));
        var kept = Kept(points, 48);
        var old = points.Where(p => Now - p.TimeUtc > TimeSpan.FromHours(24) && Now - p.TimeUtc <= TimeSpan.FromHours(48)).ToList();
        var expectedOld = old.GroupBy(p => (p.TimeUtc.Date, p.TimeUtc.Hour / 2)).Select(g => g.Max(p => p.Sequence)).ToHashSet();
        Assert.Equal(expectedOld.Order(), kept.Where(s => old.Any(p => p.Sequence == s)));
        // Each kept old point is the newest of its even-hour pair, so two kept old points are never in the same pair.
        var keptOld = old.Where(p => kept.Contains(p.Sequence)).ToList();
        Assert.Equal(keptOld.Count, keptOld.Select(p => (p.TimeUtc.Date, p.TimeUtc.Hour / 2)).Distinct().Count());
        Assert.DoesNotContain(kept, s => Now - points.Single(p => p.Sequence == s).TimeUtc > TimeSpan.FromHours(48));
    }

    [Fact]
    public void PointsOlderThanTheRetention_ArePruned()
    {
        var points = Points(TimeSpan.FromMinutes(30), TimeSpan.FromHours(30));
        var kept = Kept(points, 24);
        Assert.DoesNotContain(kept, s => Now - points.Single(p => p.Sequence == s).TimeUtc > TimeSpan.FromHours(24));
        Assert.Contains(kept, s => Now - points.Single(p => p.Sequence == s).TimeUtc > TimeSpan.FromHours(23));
    }

    [Fact]
    public void RetentionBetweenTheWindows_EndsTheHourlyWindowEarly()
    {
        var points = Points(TimeSpan.FromMinutes(20), TimeSpan.FromHours(20));
        var kept = Kept(points, 6);
        Assert.Equal(
            points.Where(p => Now - p.TimeUtc <= TimeSpan.FromHours(2)).Select(p => p.Sequence)
                .Concat(points.Where(p => Now - p.TimeUtc > TimeSpan.FromHours(2) && Now - p.TimeUtc <= TimeSpan.FromHours(6))
                    .GroupBy(p => (p.TimeUtc.Date, p.TimeUtc.Hour)).Select(g => g.Max(p => p.Sequence)))
                .Order(),
            kept);
    }

    [Fact]
    public void RetentionShorterThanTwoHours_KeepsOnlyPointsWithinIt()
    {
        var points = Points(TimeSpan.FromMinutes(5), TimeSpan.FromHours(3));
        var kept = Kept(points, 1);
        Assert.Equal(points.Where(p => Now - p.TimeUtc <= TimeSpan.FromHours(1)).Select(p => p.Sequence), kept);
        Assert.Equal(13, kept.Count);
    }

    [Fact]
    public void RetentionZero_KeepsOnlyTheNewestPoint()
    {
        var points = Points(TimeSpan.FromMinutes(5), TimeSpan.FromHours(1));
        Assert.Equal([points[^1].Sequence], Kept(points, 0));
    }

    [Fact]
    public void TheNewestPoint_IsKeptEvenPastTheRetention()
    {
        // Replication stopped three days ago: its last point is all the item has.
        var points = Points(TimeSpan.FromMinutes(5), TimeSpan.FromHours(1), newestAge: TimeSpan.FromHours(72));
        Assert.Equal([points[^1].Sequence], Kept(points, 24));
    }

    [Fact]
    public void InUsePoints_AreKeptWhateverTheirAge()
    {
        var points = Points(TimeSpan.FromMinutes(5), TimeSpan.FromHours(48));
        var kept = Kept(points, 24, new HashSet<long> { 1, 2, 40 });
        Assert.Contains(1L, kept);
        Assert.Contains(2L, kept);
        Assert.Contains(40L, kept);
        Assert.Equal(kept, Kept(points, 24).Concat([1L, 2L, 40L]).Distinct().Order());
    }

    [Fact]
    public void GroupMembersWithTheSamePointTimes_KeepTheSamePoints()
    {
        // Two members of a replication group: same times, different sequence numbers (one joined later).
        var first = Points(TimeSpan.FromMinutes(5), TimeSpan.FromHours(30));
        var second = first.Select(p => p with { Sequence = p.Sequence + 1000 }).ToList();
        var keptTimesFirst = Kept(first, 24).Select(s => first.Single(p => p.Sequence == s).TimeUtc);
        var keptTimesSecond = Kept(second, 24).Select(s => second.Single(p => p.Sequence == s).TimeUtc);
        Assert.Equal(keptTimesFirst, keptTimesSecond);
    }

    [Fact]
    public void TheResultDoesNotDependOnTheOrderPointsAreGivenIn()
    {
        var points = Points(TimeSpan.FromMinutes(7), TimeSpan.FromHours(30));
        var shuffled = points.OrderBy(p => HashCode.Combine(p.Sequence, 17)).ToList();
        Assert.Equal(Kept(points, 24), Kept(shuffled, 24));
    }
}
