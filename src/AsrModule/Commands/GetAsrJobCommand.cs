using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Jobs;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Lists jobs recorded in the vault (from any session), oldest first.</summary>
[Cmdlet(VerbsCommon.Get, "AsrJob")]
[OutputType(typeof(AsrJob))]
public sealed class GetAsrJobCommand : AsrCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(JobIdCompleter))]
    public Guid[]? Id { get; set; }

    /// <summary>Only jobs on this target (wildcards allowed).</summary>
    [Parameter]
    [SupportsWildcards]
    public string? TargetName { get; set; }

    [Parameter]
    public AsrJobState[]? State { get; set; }

    [Parameter]
    [SupportsWildcards]
    public string? Operation { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        if (Id is { Length: > 0 })
        {
            foreach (var id in Id) ForItem(id, () => WriteObject(Await(ct => vault.Jobs.GetAsync(id, ct))));
            return;
        }
        var target = Wildcard(TargetName);
        var operation = Wildcard(Operation);
        // A damaged job record is a non-terminating VaultDataCorrupt error (after the jobs that read); the filters
        // cannot tell whether it would match, so it is reported whatever they are.
        var entries = Await(ct => vault.Catalog.ListJobsAsync(ct)).Where(e => e.Value is not { } j ||
            (target is null || target.IsMatch(j.TargetName)) &&
            (operation is null || operation.IsMatch(j.Operation)) &&
            (State is null || State.Contains(j.State)));
        WriteEntries(entries);
    }
}
