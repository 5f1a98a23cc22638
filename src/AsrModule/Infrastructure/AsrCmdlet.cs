using System.Management.Automation;
using System.Runtime.InteropServices;
using System.Security;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;

namespace AsrModule.Infrastructure;

/// <summary>
/// Base of every AsrModule cmdlet: resolves the vault, runs engine calls with a token that Ctrl+C
/// (StopProcessing) cancels, waits for jobs on the pipeline thread while showing their progress, and
/// turns engine errors into ErrorRecords.
/// </summary>
public abstract class AsrCmdlet : PSCmdlet
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<RunningJob> _foregroundJobs = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<Action> _pipelineWork = new();

    /// <summary>The vault to use: a vault object, a local vault path or a blob container URL. Defaults to the one Connect-AsrVault set.</summary>
    [Parameter]
    public VaultArgument? Vault { get; set; }

    private AsrVault? _explicitVault;

    protected CancellationToken StopToken => _stopping.Token;

    /// <summary>Engine log of foreground jobs, shown as verbose/warning output by <see cref="WaitForLocalJob"/>.</summary>
    private protected PipelineLogger Log { get; } = new();

    /// <summary>Starts a job body; its engine log reaches this cmdlet's streams when it runs in the foreground.</summary>
    protected RunningJob StartJob(AsrVault vault, AsrJob job, Func<JobContext, Task<AsrJobResult?>> body, bool asJob) =>
        JobRunner.Start(vault, job, body, asJob ? null : Log);

    protected override void StopProcessing()
    {
        _stopping.Cancel();
        lock (_foregroundJobs)
            foreach (var j in _foregroundJobs) j.Cancel();
    }

    /// <summary>The vault for this call: -Vault, else the vault <paramref name="location"/> came from, else the session default.</summary>
    protected AsrVault ResolveVault(string? location = null)
    {
        if (_explicitVault is not null) return _explicitVault;
        if (location is not null)
        {
            // An object piped from a vault acts in that vault, never silently in another one.
            var known = VaultSession.Find(location);
            if (known is not null) return known;
            try
            {
                var opened = Await(ct => AsrVault.OpenAsync(VaultStores.Open(location), null, null, ct));
                VaultSession.Remember(opened);
                return opened;
            }
            catch (AsrException ex)
            {
                ThrowTerminating(ex, location);
            }
        }
        if (VaultSession.Default is { } vault) return vault;
        ThrowTerminating(new AsrException(AsrErrorIds.VaultNotConnected, AsrErrorKind.InvalidOperation,
            "No vault is connected. Run Connect-AsrVault -Path <vault> first, or pass -Vault."));
        throw new InvalidOperationException(); // unreachable: ThrowTerminatingError throws
    }

    /// <summary>Runs an engine call to completion; Ctrl+C cancels it.</summary>
    protected T Await<T>(Func<CancellationToken, Task<T>> call) => call(StopToken).GetAwaiter().GetResult();

    protected void Await(Func<CancellationToken, Task> call) => call(StopToken).GetAwaiter().GetResult();

    /// <summary>Runs a per-item action; an engine error becomes a non-terminating error for that item.</summary>
    protected void ForItem(object? target, Action action)
    {
        try
        {
            action();
        }
        catch (AsrException ex)
        {
            WriteError(ErrorMapping.ToErrorRecord(ex, target));
        }
    }

    protected void ThrowTerminating(AsrException ex, object? target = null) =>
        ThrowTerminatingError(ErrorMapping.ToErrorRecord(ex, target));

    protected override void BeginProcessing()
    {
        if (Vault is null) return;
        if (Vault.Vault is { } given)
        {
            _explicitVault = given;
        }
        else
        {
            string location = Vault.Path!;
            bool isUrl = BlobVaultConnection.IsContainerUrl(location);
            string full = isUrl ? VaultStores.NormalizeLocation(location) : System.IO.Path.GetFullPath(SessionState.Path.GetUnresolvedProviderPathFromPSPath(location));
            try
            {
                // A URL opens with the credential the environment provides (or the one the session connected with).
                _explicitVault = VaultSession.Find(full) ?? Await(ct => AsrVault.OpenAsync(VaultStores.Open(isUrl ? location : full), null, null, ct));
            }
            catch (AsrException ex)
            {
                ThrowTerminating(ex, full);
            }
        }
        VaultSession.Remember(_explicitVault!);
    }

    /// <summary>
    /// Either returns the job at once (-AsJob), or waits for it here with Write-Progress; Ctrl+C then
    /// cancels the job and waits for it to leave the vault consistent.
    /// </summary>
    protected void CompleteJob(RunningJob running, bool asJob)
    {
        if (asJob)
        {
            // Also a PowerShell job of this session: Get-Job / Wait-Job / Receive-Job / Stop-Job work on it.
            JobRepository.Add(new AsrPowerShellJob(running));
            WriteObject(JobRunner.Snapshot(running.Job));
            return;
        }
        lock (_foregroundJobs) _foregroundJobs.Add(running);
        if (_stopping.IsCancellationRequested) running.Cancel();
        try
        {
            WaitForLocalJob(running);
        }
        finally
        {
            lock (_foregroundJobs) _foregroundJobs.Remove(running);
        }
        if (_stopping.IsCancellationRequested) throw new PipelineStoppedException();
        WriteJobOutcome(JobRunner.Snapshot(running.Job));
    }

    /// <summary>Blocks until a job of this process ends, showing its progress. Returns false when the wait was stopped.</summary>
    protected bool WaitForLocalJob(RunningJob running, DateTime? deadline = null)
    {
        int activityId = Math.Abs(running.Job.Id.GetHashCode() % 100000);
        string activity = $"{running.Job.Operation} {running.Job.TargetName}";
        int seen = -1;
        bool progressShown = false;
        while (!running.Completion.Wait(100))
        {
            DrainLog();
            while (_pipelineWork.TryDequeue(out var work)) work();
            if (deadline is { } d && DateTime.UtcNow >= d) return false;
            if (_stopping.IsCancellationRequested && !_foregroundJobs.Contains(running)) return false;
            int version = running.ProgressVersion;
            if (version != seen && !_stopping.IsCancellationRequested)
            {
                seen = version;
                var p = running.LatestProgress;
                WriteProgress(new ProgressRecord(activityId, activity, string.IsNullOrEmpty(p.StatusMessage) ? "Running" : p.StatusMessage) { PercentComplete = p.PercentComplete });
                progressShown = true;
            }
        }
        DrainLog();
        if (progressShown && !_stopping.IsCancellationRequested)
            WriteProgress(new ProgressRecord(activityId, activity, "Done") { RecordType = ProgressRecordType.Completed });
        return true;
    }

    /// <summary>
    /// Runs <paramref name="work"/> on this cmdlet's pipeline thread (where script blocks of the caller's session may
    /// run) while a foreground job of it is waited for; the job awaits the returned task. Only for foreground jobs: with
    /// -AsJob nobody waits on the pipeline thread.
    /// </summary>
    protected Task<T> OnPipelineThread<T>(Func<T> work, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var registration = cancellationToken.Register(() => done.TrySetCanceled(cancellationToken));
        _pipelineWork.Enqueue(() =>
        {
            registration.Dispose();
            if (done.Task.IsCompleted) return;
            try { done.TrySetResult(work()); }
            catch (Exception ex) { done.TrySetException(ex); }
        });
        return done.Task;
    }

    private void DrainLog()
    {
        while (Log.TryDequeue(out var entry) && !_stopping.IsCancellationRequested)
        {
            if (entry.Level >= Microsoft.Extensions.Logging.LogLevel.Warning) WriteWarning(entry.Message);
            else WriteVerbose(entry.Message);
        }
    }

    /// <summary>Writes a finished job; a failed or cancelled one also writes its error (so -ErrorAction Stop works in runbooks).</summary>
    protected void WriteJobOutcome(AsrJob job)
    {
        WriteObject(job);
        if (job.State is AsrJobState.Failed or AsrJobState.Cancelled or AsrJobState.Interrupted)
            WriteError(ErrorMapping.FromJob(job));
    }

    /// <summary>
    /// Writes a listing in order: each object, and for each damaged record a non-terminating VaultDataCorrupt error
    /// (category InvalidData, target: the record's name, else its key), so the healthy objects still reach the pipeline.
    /// </summary>
    protected void WriteEntries<T>(IEnumerable<VaultListEntry<T>> entries) where T : class
    {
        foreach (var e in entries)
        {
            if (e.Value is not null) WriteObject(e.Value);
            else WriteError(ErrorMapping.ToErrorRecord(e.Error!, e.Name ?? e.Key));
        }
    }

    /// <summary>This module's manifest, for runspaces of its own (plan files, -AsJob checks) that import it.</summary>
    protected string ModuleManifest() => System.IO.Path.Combine(MyInvocation.MyCommand.Module?.ModuleBase ?? System.IO.Path.GetDirectoryName(typeof(AsrCmdlet).Assembly.Location)!, "AsrModule.psd1");

    protected AsrProtectedItem GetItem(AsrVault vault, string name) => Await(ct => vault.GetItemAsync(name, ct));

    protected static string? PlainText(SecureString? secure)
    {
        if (secure is null) return null;
        IntPtr ptr = Marshal.SecureStringToGlobalAllocUnicode(secure);
        try { return Marshal.PtrToStringUni(ptr); }
        finally { Marshal.ZeroFreeGlobalAllocUnicode(ptr); }
    }

    protected static WildcardPattern? Wildcard(string? pattern) =>
        string.IsNullOrEmpty(pattern) ? null : new WildcardPattern(pattern, WildcardOptions.IgnoreCase);
}
