using System.Management.Automation;
using AsrModule.Engine.Items;
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
}
