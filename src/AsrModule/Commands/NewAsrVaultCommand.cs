using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Creates a vault in a local directory.</summary>
[Cmdlet(VerbsCommon.New, "AsrVault", SupportsShouldProcess = true)]
[OutputType(typeof(AsrVault))]
public sealed class NewAsrVaultCommand : AsrCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    [Parameter]
    [SecureStringTransformation]
    public SecureString? EncryptionKey { get; set; }

    protected override void ProcessRecord()
    {
        string full = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        if (!ShouldProcess(full, "Create vault")) return;
        ForItem(full, () =>
        {
            var vault = Await(ct => AsrVault.CreateLocalAsync(full, PlainText(EncryptionKey), null, ct));
            VaultSession.Remember(vault);
            WriteObject(vault);
        });
    }
}
