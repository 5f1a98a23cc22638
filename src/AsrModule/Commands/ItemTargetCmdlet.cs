using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Base of cmdlets that act on protected items: by object from the pipeline, or by name.</summary>
public abstract class ItemTargetCmdlet : AsrCmdlet
{
    protected const string ByObject = "ByObject";
    protected const string ByName = "ByName";

    [Parameter(Mandatory = true, ParameterSetName = ByObject, ValueFromPipeline = true)]
    public AsrProtectedItem InputObject { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByName, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(ProtectedItemNameCompleter))]
    [Alias("ItemName")]
    public string Name { get; set; } = "";

    protected override void ProcessRecord()
    {
        string name = ParameterSetName == ByObject ? InputObject.Name : Name;
        var vault = ResolveVault(ParameterSetName == ByObject ? InputObject.VaultLocation : null);
        // Always act on the vault's current record, not on a possibly stale piped copy.
        ForItem(name, () => ProcessItem(vault, GetItem(vault, name)));
    }

    protected abstract void ProcessItem(AsrVault vault, AsrProtectedItem item);

    /// <summary>Starts an operation on an item as a job that owns <paramref name="lease"/> (released when it ends).</summary>
    protected void RunItemJob(AsrVault vault, AsrProtectedItem item, string operation, IDisposable? lease,
        Func<JobContext, Task<AsrJobResult>> body, bool asJob)
    {
        RunningJob running;
        try
        {
            var record = JobRunner.NewRecord(operation, item.Name, item.Id);
            // The item points at its running job, so any session sees the operation and its progress.
            Await(ct => vault.UpdateItemAsync(item.Id, i => i.LastJobId = record.Id, ct));
            running = StartJob(vault, record, async ctx =>
            {
                using (lease) return await body(ctx).ConfigureAwait(false);
            }, asJob);
        }
        catch
        {
            lease?.Dispose();
            throw;
        }
        CompleteJob(running, asJob);
    }

    /// <summary>
    /// The common shape of a lifecycle operation: check the state machine, confirm, take the item's
    /// lock (released when the job ends), run <paramref name="beforeJob"/> (e.g. a hook) under it, start the job.
    /// </summary>
    protected void RunLockedOperation(AsrVault vault, AsrProtectedItem item, ItemOperation operation, string jobOperation, string action,
        Func<JobContext, Task<AsrJobResult>> body, bool asJob, Action? beforeJob = null)
    {
        ItemStateMachine.EnsureAllowed(item, operation);
        if (!ShouldProcess(item.Name, action)) return;
        var lease = new Engine.Replication.ReplicationService(vault).AcquireLease(item);
        try
        {
            beforeJob?.Invoke();
        }
        catch
        {
            lease.Dispose();
            throw;
        }
        RunItemJob(vault, item, jobOperation, lease, body, asJob);
    }

    /// <summary>
    /// Runs a user's source-side hook (e.g. stop the VM) on the pipeline thread, with the item as its
    /// argument; a hook that fails stops the operation before anything changed.
    /// </summary>
    protected void InvokeHook(ScriptBlock? hook, AsrProtectedItem item, string what)
    {
        if (hook is null) return;
        WriteVerbose($"Running the {what} hook for '{item.Name}'");
        try
        {
            hook.Invoke(item);
        }
        catch (RuntimeException ex)
        {
            throw new AsrException(AsrErrorIds.HookFailed, AsrErrorKind.InvalidOperation,
                $"The {what} hook for '{item.Name}' failed, so nothing was changed: {ex.Message}", item.Name, ex);
        }
    }
}

/// <summary>An item cmdlet whose operation is a job: waits in the foreground, or returns it at once with -AsJob.</summary>
public abstract class ItemJobCmdlet : ItemTargetCmdlet
{
    /// <summary>Returns the job at once (also as a PowerShell job) instead of waiting for it.</summary>
    [Parameter]
    public SwitchParameter AsJob { get; set; }
}
