using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Opens a vault and makes it this session's default.</summary>
[Cmdlet(VerbsCommunications.Connect, "AsrVault", DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrVault))]
public sealed class ConnectAsrVaultCommand : AsrCmdlet
{
    private const string ByPath = "ByPath";
    private const string ByObject = "ByObject";

    // No "Location" alias: a piped vault object must bind as a whole (it carries its key), not by its path.
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByPath, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ByObject, ValueFromPipeline = true)]
    public AsrVault InputObject { get; set; } = null!;

    [Parameter(ParameterSetName = ByPath)]
    [SecureStringTransformation]
    public SecureString? EncryptionKey { get; set; }

    /// <summary>Also writes the vault to the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        AsrVault vault;
        try
        {
            vault = ParameterSetName == ByObject
                ? InputObject
                : Await(ct => AsrVault.OpenLocalAsync(SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path), PlainText(EncryptionKey), null, ct));
        }
        catch (AsrException ex)
        {
            ThrowTerminating(ex, Path);
            return;
        }
        VaultSession.SetDefault(vault);
        if (PassThru) WriteObject(vault);
    }
}
