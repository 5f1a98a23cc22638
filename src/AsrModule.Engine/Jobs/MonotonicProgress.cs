namespace AsrModule.Engine.Jobs;

/// <summary>
/// The last guard before a job's progress is shown or saved: the percentage never goes down within one job.
/// Phases already report in order; this catches what they cannot, such as reports from parallel reads
/// that arrive out of order. A report below the high-water mark keeps its status text and takes the mark
/// as its percentage (status texts carry no percentage of their own, so text and number always agree).
/// One instance per job: a new job starts from its record's percentage (0 for a new record).
/// </summary>
public sealed class MonotonicProgress : IProgress<JobProgress>
{
    private readonly IProgress<JobProgress> _inner;
    private readonly object _gate = new();
    private int _highest;

    public MonotonicProgress(IProgress<JobProgress> inner, int startPercent = 0)
    {
        _inner = inner;
        _highest = Math.Clamp(startPercent, 0, 100);
    }

    public void Report(JobProgress value)
    {
        // Under the lock, so two threads cannot pass each other between the comparison and the report.
        lock (_gate)
        {
            _highest = Math.Max(_highest, Math.Clamp(value.PercentComplete, 0, 100));
            _inner.Report(value with { PercentComplete = _highest });
        }
    }
}
