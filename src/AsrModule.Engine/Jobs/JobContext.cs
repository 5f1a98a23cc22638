using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Jobs;

/// <summary>
/// A progress report: what the job is doing and how far it is. The status says what and where (phase,
/// disk, bytes); the percentage is only in <see cref="PercentComplete"/>, so the two cannot disagree.
/// </summary>
public readonly record struct JobProgress(int PercentComplete, string StatusMessage);

/// <summary>What a running job's body gets: its token, a progress sink and a logger.</summary>
public sealed class JobContext
{
    public JobContext(AsrJob job, CancellationToken cancellationToken, IProgress<JobProgress>? progress, ILogger logger)
    {
        Job = job;
        CancellationToken = cancellationToken;
        Progress = progress;
        Logger = logger;
    }

    public AsrJob Job { get; }
    public CancellationToken CancellationToken { get; }
    public IProgress<JobProgress>? Progress { get; }
    public ILogger Logger { get; }

    /// <summary>Reports how far this context's work is (0..100 of the job, or of the phase when this is a phase).</summary>
    public void Report(int percent, string status) => Progress?.Report(new JobProgress(Math.Clamp(percent, 0, 100), status));

    /// <summary>
    /// A context for one phase of this work: same job, token and logger; its 0..100 is this context's
    /// [<paramref name="start"/>, <paramref name="end"/>]. Give each phase of a multi-phase job its own, in
    /// order, so the job's percentage only goes up.
    /// </summary>
    public JobContext Phase(int start, int end) =>
        new(Job, CancellationToken, Progress is null ? null : new ProgressPhase(Progress, start, end), Logger);

    /// <summary>A context for calling engine operations directly (tests, tools) without a job record.</summary>
    public static JobContext Detached(CancellationToken cancellationToken = default) =>
        new(new AsrJob { Id = Guid.NewGuid(), Operation = "Direct" }, cancellationToken, null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
}
