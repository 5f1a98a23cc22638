using System.Management.Automation;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Clears this session's default vault.</summary>
[Cmdlet(VerbsCommunications.Disconnect, "AsrVault")]
[OutputType(typeof(void))]
public sealed class DisconnectAsrVaultCommand : PSCmdlet
{
    protected override void EndProcessing() => VaultSession.ClearDefault();
}
