using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Opens a vault (local directory or blob container) and makes it this session's default.</summary>
[Cmdlet(VerbsCommunications.Connect, "AsrVault", DefaultParameterSetName = ByObject)]
[OutputType(typeof(AsrVault))]
public sealed class ConnectAsrVaultCommand : VaultLocationCmdlet
{
    private const string ByObject = "ByObject";

    // A piped vault object binds as a whole (it carries its key and credential), never by its location.
    [Parameter(Mandatory = true, ParameterSetName = ByObject, ValueFromPipeline = true)]
    public AsrVault InputObject { get; set; } = null!;

    [Parameter(ParameterSetName = ByPath)]
    [Parameter(ParameterSetName = ByContainerUri)]
    [Parameter(ParameterSetName = ByServicePrincipal)]
    [Parameter(ParameterSetName = ByAccessToken)]
    [Parameter(ParameterSetName = BySasToken)]
    [Parameter(ParameterSetName = ByAccountKey)]
    [Parameter(ParameterSetName = ByConnectionString)]
    [SecureStringTransformation]
    public SecureString? EncryptionKey { get; set; }

    /// <summary>Also writes the vault to the pipeline.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        AsrVault vault;
        object target = ParameterSetName == ByObject ? InputObject : SafeTarget();
        try
        {
            vault = ParameterSetName == ByObject
                ? InputObject
                : Await(ct => AsrVault.OpenAsync(OpenStore(BlobConnection()), PlainText(EncryptionKey), null, ct));
        }
        catch (AsrException ex)
        {
            ThrowTerminating(ex, target);
            return;
        }
        VaultSession.SetDefault(vault);
        if (PassThru) WriteObject(vault);
    }
}
