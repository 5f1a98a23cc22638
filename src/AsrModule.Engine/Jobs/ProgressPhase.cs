namespace AsrModule.Engine.Jobs;

/// <summary>
/// One phase of a job's progress: the phase reports its own 0..100, which lands in its slice
/// [<see cref="Start"/>, <see cref="End"/>] of the job's 0..100. A planned failover, for example, is a
/// final sync, a check of the source and an export, each a phase: the export's 0% is the job's 55%, not 0%.
/// Phases nest (a cycle's checksum step is a phase of the cycle, which is a phase of a failover).
/// </summary>
public sealed class ProgressPhase : IProgress<JobProgress>
{
    private readonly IProgress<JobProgress> _job;

    public ProgressPhase(IProgress<JobProgress> job, int start, int end)
    {
        if (start < 0 || end > 100 || start > end)
            throw new ArgumentOutOfRangeException(nameof(start), $"A phase is a slice of 0..100; [{start}, {end}] is not.");
        _job = job;
        Start = start;
        End = end;
    }

    public int Start { get; }
    public int End { get; }

    /// <summary>Where the phase's <paramref name="percent"/> lands in the job's 0..100.</summary>
    public int ToJobPercent(int percent) => Start + (End - Start) * Math.Clamp(percent, 0, 100) / 100;

    public void Report(JobProgress value) => _job.Report(value with { PercentComplete = ToJobPercent(value.PercentComplete) });
}
