using System.Management.Automation;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Shows the connected vault (or the one given with -Vault).</summary>
[Cmdlet(VerbsCommon.Get, "AsrVault")]
[OutputType(typeof(AsrVault))]
public sealed class GetAsrVaultCommand : AsrCmdlet
{
    protected override void EndProcessing()
    {
        var vault = Vault is not null ? ResolveVault() : VaultSession.Default;
        if (vault is not null) WriteObject(vault);
    }
}
