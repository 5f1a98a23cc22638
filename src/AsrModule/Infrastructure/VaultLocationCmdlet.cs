using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Storage;

namespace AsrModule.Infrastructure;

/// <summary>
/// The parameters that say where a vault is and how to authenticate to it, shared by New-AsrVault and
/// Connect-AsrVault: a local directory (-Path), or a blob container (-ContainerUri) with one credential.
/// No Azure.* type appears on a parameter: secrets are SecureStrings or a PSCredential, so the module's
/// Azure assemblies stay in its own load context (Az.Accounts loads other versions into the session).
/// </summary>
public abstract class VaultLocationCmdlet : AsrCmdlet
{
    protected const string ByPath = "Path";
    protected const string ByContainerUri = "ContainerUri";
    protected const string ByServicePrincipal = "ServicePrincipal";
    protected const string ByAccessToken = "AccessToken";
    protected const string BySasToken = "SasToken";
    protected const string ByAccountKey = "AccountKey";
    protected const string ByConnectionString = "ConnectionString";

    /// <summary>A local directory, or a blob container URL opened with the credential the environment provides.</summary>
    [Parameter(Mandatory = true, Position = 0, ParameterSetName = ByPath, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    public string Path { get; set; } = "";

    [Parameter(Mandatory = true, ParameterSetName = ByContainerUri)]
    [Parameter(Mandatory = true, ParameterSetName = ByServicePrincipal)]
    [Parameter(Mandatory = true, ParameterSetName = ByAccessToken)]
    [Parameter(Mandatory = true, ParameterSetName = BySasToken)]
    [Parameter(Mandatory = true, ParameterSetName = ByAccountKey)]
    public Uri ContainerUri { get; set; } = null!;

    [Parameter(ParameterSetName = ByContainerUri)]
    public SwitchParameter ManagedIdentity { get; set; }

    [Parameter(ParameterSetName = ByContainerUri)]
    [ValidateNotNullOrEmpty]
    public string? ManagedIdentityClientId { get; set; }

    [Parameter(Mandatory = true, ParameterSetName = ByServicePrincipal)]
    [ValidateNotNullOrEmpty]
    public string TenantId { get; set; } = "";

    /// <summary>The application (client) id as user name and the client secret as password.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ByServicePrincipal)]
    [Credential]
    public PSCredential Credential { get; set; } = null!;

    [Parameter(Mandatory = true, ParameterSetName = ByAccessToken)]
    [SecureStringTransformation]
    public SecureString AccessToken { get; set; } = null!;

    [Parameter(Mandatory = true, ParameterSetName = BySasToken)]
    [SecureStringTransformation]
    public SecureString SasToken { get; set; } = null!;

    [Parameter(Mandatory = true, ParameterSetName = ByAccountKey)]
    [SecureStringTransformation]
    public SecureString AccountKey { get; set; } = null!;

    [Parameter(Mandatory = true, ParameterSetName = ByConnectionString)]
    [SecureStringTransformation]
    public SecureString ConnectionString { get; set; } = null!;

    [Parameter(Mandatory = true, ParameterSetName = ByConnectionString)]
    [ValidateNotNullOrEmpty]
    public string Container { get; set; } = "";

    /// <summary>The blob connection the parameters describe, or null for a local directory path.</summary>
    protected BlobVaultConnection? BlobConnection() => ParameterSetName switch
    {
        ByPath => BlobVaultConnection.IsContainerUrl(Path) ? BlobVaultConnection.FromEnvironment(new Uri(Path)) : null,
        ByContainerUri when ManagedIdentity || ManagedIdentityClientId is not null => BlobVaultConnection.WithManagedIdentity(ContainerUri, ManagedIdentityClientId),
        ByContainerUri => BlobVaultConnection.FromEnvironment(ContainerUri),
        ByServicePrincipal => BlobVaultConnection.WithServicePrincipal(ContainerUri, TenantId, Credential.UserName, Credential.GetNetworkCredential().Password),
        ByAccessToken => BlobVaultConnection.WithAccessToken(ContainerUri, PlainText(AccessToken)!),
        BySasToken => BlobVaultConnection.WithSasToken(ContainerUri, PlainText(SasToken)!),
        ByAccountKey => BlobVaultConnection.WithAccountKey(ContainerUri, PlainText(AccountKey)!),
        ByConnectionString => BlobVaultConnection.WithConnectionString(PlainText(ConnectionString)!, Container),
        _ => null,
    };

    /// <summary>What the error records of this call name: the path, or the container without any SAS in its query.</summary>
    protected string SafeTarget() => ParameterSetName switch
    {
        ByPath => BlobVaultConnection.IsContainerUrl(Path) ? VaultStores.NormalizeLocation(Path) : Path,
        ByConnectionString => Container,
        _ => ContainerUri is { IsAbsoluteUri: true } u && BlobVaultConnection.IsContainerUrl(u.OriginalString) ? VaultStores.NormalizeLocation(u.OriginalString) : "(container URI)",
    };

    /// <summary>Where the vault is, for messages and ShouldProcess (never a secret).</summary>
    protected string TargetLocation(BlobVaultConnection? blob) =>
        blob?.Location ?? System.IO.Path.GetFullPath(SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path));

    protected IVaultStore OpenStore(BlobVaultConnection? blob) =>
        blob is not null ? blob.OpenStore() : new LocalDirectoryStore(TargetLocation(null));
}
