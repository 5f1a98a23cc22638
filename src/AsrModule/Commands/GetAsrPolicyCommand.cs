using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Policies;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Lists replication policies.</summary>
[Cmdlet(VerbsCommon.Get, "AsrPolicy")]
[OutputType(typeof(AsrPolicy))]
public sealed class GetAsrPolicyCommand : AsrCmdlet
{
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(PolicyNameCompleter))]
    public string? Name { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        var pattern = Wildcard(Name);
        // A damaged policy is a non-terminating VaultDataCorrupt error in its place; the other policies still list.
        var entries = Await(ct => vault.Catalog.ListPoliciesAsync(ct)).Where(e => pattern is null || pattern.IsMatch(e.Name ?? "")).ToList();
        if (entries.Count == 0 && Name is not null && !WildcardPattern.ContainsWildcardCharacters(Name))
        {
            WriteError(ErrorMapping.ToErrorRecord(new AsrException(AsrErrorIds.PolicyNotFound, AsrErrorKind.ObjectNotFound,
                $"No policy named '{Name}' in the vault at '{vault.Location}'.", Name), Name));
            return;
        }
        WriteEntries(entries);
    }
}
