using System.Management.Automation;
using AsrModule.Completion;
using AsrModule.Engine.Policies;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Removes a policy no protected item uses.</summary>
[Cmdlet(VerbsCommon.Remove, "AsrPolicy", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = "ByObject")]
[OutputType(typeof(void))]
public sealed class RemoveAsrPolicyCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = "ByName", ValueFromPipelineByPropertyName = true)]
    [ArgumentCompleter(typeof(PolicyNameCompleter))]
    public string Name { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = "ByObject", ValueFromPipeline = true)]
    public AsrPolicy InputObject { get; set; } = null!;

    protected override void ProcessRecord()
    {
        string name = ParameterSetName == "ByObject" ? InputObject.Name : Name;
        var vault = ResolveVault();
        if (!ShouldProcess(name, "Remove policy")) return;
        ForItem(name, () => Await(ct => vault.RemovePolicyAsync(name, ct)));
    }
}
