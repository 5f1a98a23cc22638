namespace AsrModule.Engine.Jobs;

/// <summary>
/// A job running in this process: its live record, its completion and its cancellation. Progress is
/// kept as "latest value" so a waiting cmdlet can show it from the pipeline thread at its own pace.
/// </summary>
public sealed class RunningJob
{
    private readonly CancellationTokenSource _cts;
    private JobProgress _latest;
    private int _progressVersion;

    internal RunningJob(AsrJob job, CancellationTokenSource cts)
    {
        Job = job;
        _cts = cts;
    }

    public AsrJob Job { get; }
    public Task Completion { get; internal set; } = Task.CompletedTask;
    public CancellationToken CancellationToken => _cts.Token;

    /// <summary>Increments whenever progress changes; lets a waiter detect news without locks.</summary>
    public int ProgressVersion => Volatile.Read(ref _progressVersion);

    public JobProgress LatestProgress
    {
        get { lock (this) return _latest; }
    }

    internal void SetProgress(JobProgress p)
    {
        lock (this) _latest = p;
        Interlocked.Increment(ref _progressVersion);
    }

    public void Cancel()
    {
        try { _cts.Cancel(); }
        catch (ObjectDisposedException) { /* the job has already ended */ }
    }
}
