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
        var policies = Await(ct => vault.GetPoliciesAsync(ct)).Where(p => pattern is null || pattern.IsMatch(p.Name)).ToList();
        if (policies.Count == 0 && Name is not null && !WildcardPattern.ContainsWildcardCharacters(Name))
        {
            WriteError(ErrorMapping.ToErrorRecord(new AsrException(AsrErrorIds.PolicyNotFound, AsrErrorKind.ObjectNotFound,
                $"No policy named '{Name}' in the vault at '{vault.Location}'.", Name), Name));
            return;
        }
        WriteObject(policies, enumerateCollection: true);
    }
}
