using AsrModule.Engine.Errors;
using Azure.Storage;
using Azure.Storage.Blobs;

namespace AsrModule.Engine.Azure;

/// <summary>
/// Where a blob vault is and how to authenticate to it: a container URI and one credential. It opens
/// <see cref="BlobVaultStore"/>s, and hands its credential to a child process (the agent) through environment
/// variables, never its command line. <see cref="ToString"/> and <see cref="Location"/> never show a secret.
/// </summary>
public sealed class BlobVaultConnection
{
    /// <summary>A storage connection string (the Azure CLI's variable); used only for a URI in the same account.</summary>
    public const string ConnectionStringVariable = "AZURE_STORAGE_CONNECTION_STRING";
    /// <summary>A SAS token (the Azure CLI's variable).</summary>
    public const string SasTokenVariable = "AZURE_STORAGE_SAS_TOKEN";
    /// <summary>The account key (the Azure CLI's variable).</summary>
    public const string AccountKeyVariable = "AZURE_STORAGE_KEY";
    /// <summary>The account the key or connection string belongs to (the Azure CLI's variable); checked when set.</summary>
    public const string AccountNameVariable = "AZURE_STORAGE_ACCOUNT";
    /// <summary>Forces a credential kind in an agent's environment: ManagedIdentity or ServicePrincipal.</summary>
    public const string CredentialVariable = "ASR_VAULT_CREDENTIAL";
    /// <summary>The client id of a user-assigned managed identity (with ASR_VAULT_CREDENTIAL=ManagedIdentity).</summary>
    public const string ManagedIdentityClientIdVariable = "ASR_VAULT_MANAGED_IDENTITY_CLIENT_ID";
    private const string TenantIdVariable = "AZURE_TENANT_ID", ClientIdVariable = "AZURE_CLIENT_ID", ClientSecretVariable = "AZURE_CLIENT_SECRET";

    private static readonly string[] ForwardedVariables =
    [
        ConnectionStringVariable, SasTokenVariable, AccountKeyVariable, AccountNameVariable, CredentialVariable, ManagedIdentityClientIdVariable,
    ];

    private readonly Uri _containerUri;
    private readonly string? _secret;
    private readonly string? _tenantId;
    private readonly string? _clientId;
    private readonly DateTimeOffset _tokenExpiresOn;

    private BlobVaultConnection(Uri containerUri, BlobVaultAuthentication authentication, string? secret = null, string? tenantId = null,
        string? clientId = null, DateTimeOffset tokenExpiresOn = default)
    {
        _containerUri = containerUri;
        Authentication = authentication;
        _secret = secret;
        _tenantId = tenantId;
        _clientId = clientId;
        _tokenExpiresOn = tokenExpiresOn;
    }

    public BlobVaultAuthentication Authentication { get; }

    /// <summary>The container URI without query: what may be shown, logged and stored.</summary>
    public string Location => BlobVaultStore.LocationOf(_containerUri);

    public override string ToString() => $"{Location} ({Authentication})";

    // ---- the credentials ----

    /// <summary>DefaultAzureCredential: an environment service principal, workload or managed identity, or an Azure CLI / Azure PowerShell sign-in.</summary>
    public static BlobVaultConnection WithDefaultCredential(Uri containerUri) =>
        new(ContainerUriWithoutQuery(containerUri), BlobVaultAuthentication.DefaultAzureCredential);

    /// <summary>The system-assigned managed identity, or the user-assigned one with <paramref name="clientId"/>.</summary>
    public static BlobVaultConnection WithManagedIdentity(Uri containerUri, string? clientId = null) =>
        new(ContainerUriWithoutQuery(containerUri), BlobVaultAuthentication.ManagedIdentity, clientId: string.IsNullOrWhiteSpace(clientId) ? null : clientId.Trim());

    /// <summary>A Microsoft Entra application (service principal) with a client secret.</summary>
    public static BlobVaultConnection WithServicePrincipal(Uri containerUri, string tenantId, string clientId, string clientSecret)
    {
        var uri = ContainerUriWithoutQuery(containerUri);
        if (string.IsNullOrWhiteSpace(tenantId) || string.IsNullOrWhiteSpace(clientId) || string.IsNullOrEmpty(clientSecret))
            throw Invalid(uri, "a service principal needs a tenant id, a client (application) id and a client secret");
        // Azure.Identity's own rule for a tenant id (a GUID or a domain name), checked here for a clear error.
        if (!tenantId.Trim().All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.'))
            throw Invalid(uri, $"'{tenantId.Trim()}' is not a tenant id: use the directory's GUID or its domain name (contoso.onmicrosoft.com)");
        return new(uri, BlobVaultAuthentication.ServicePrincipal, clientSecret, tenantId.Trim(), clientId.Trim());
    }

    /// <summary>A bearer token for Azure Storage obtained elsewhere; used until it expires (its 'exp' claim, else one hour).</summary>
    public static BlobVaultConnection WithAccessToken(Uri containerUri, string accessToken)
    {
        var uri = ContainerUriWithoutQuery(containerUri);
        if (string.IsNullOrWhiteSpace(accessToken)) throw Invalid(uri, "the access token is empty");
        string token = accessToken.Trim();
        if (token.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) token = token[7..].Trim();
        return new(uri, BlobVaultAuthentication.AccessToken, token, tokenExpiresOn: JwtExpiry.TryRead(token, out var expiresOn) ? expiresOn : DateTimeOffset.UtcNow.AddHours(1));
    }

    /// <summary>A SAS token (with or without the leading '?'); it needs read, add, create, write, delete and list on the container.</summary>
    public static BlobVaultConnection WithSasToken(Uri containerUri, string sasToken)
    {
        var uri = ContainerUriWithoutQuery(containerUri);
        string sas = (sasToken ?? "").Trim().TrimStart('?');
        if (!sas.Contains("sig=", StringComparison.OrdinalIgnoreCase))
            throw Invalid(uri, "the SAS token has no signature ('sig' parameter)");
        return new(uri, BlobVaultAuthentication.SasToken, sas);
    }

    /// <summary>The key of the storage account named in the URI.</summary>
    public static BlobVaultConnection WithAccountKey(Uri containerUri, string accountKey)
    {
        var uri = ContainerUriWithoutQuery(containerUri);
        if (string.IsNullOrWhiteSpace(accountKey)) throw Invalid(uri, "the account key is empty");
        Span<byte> decoded = stackalloc byte[accountKey.Length];
        if (!Convert.TryFromBase64String(accountKey.Trim(), decoded, out _))
            throw Invalid(uri, "the account key is not base64 (copy key1 or key2 from the storage account's access keys)");
        return new(uri, BlobVaultAuthentication.AccountKey, accountKey.Trim());
    }

    /// <summary>A container in the account of a storage connection string.</summary>
    public static BlobVaultConnection WithConnectionString(string connectionString, string containerName)
    {
        CheckContainerName(containerName);
        if (string.IsNullOrWhiteSpace(connectionString))
            throw new AsrException(AsrErrorIds.VaultNotFound, AsrErrorKind.InvalidArgument, "The storage connection string is empty.", containerName);
        Uri containerUri;
        try
        {
            containerUri = new BlobContainerClient(connectionString, containerName).Uri;
        }
        catch (Exception ex) when (BlobVaultStore.IsConnectionStringError(ex))
        {
            throw BlobVaultStore.InvalidConnectionString(ex, containerName);
        }
        return new(containerUri, BlobVaultAuthentication.ConnectionString, connectionString);
    }

    /// <summary>
    /// The credential the environment provides for <paramref name="containerUri"/>, as the agent and a plain
    /// <c>Connect-AsrVault &lt;url&gt;</c> find it: a SAS in the URI; ASR_VAULT_CREDENTIAL=ManagedIdentity or
    /// ServicePrincipal; AZURE_STORAGE_CONNECTION_STRING when it names the URI's account; AZURE_STORAGE_SAS_TOKEN;
    /// AZURE_STORAGE_KEY; otherwise DefaultAzureCredential.
    /// </summary>
    public static BlobVaultConnection FromEnvironment(Uri containerUri, Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        string? Get(string name) => environment(name) is { Length: > 0 } v ? v : null;
        var checkedUri = BlobVaultStore.CheckContainerUri(containerUri);
        if (checkedUri.Query.Contains("sig=", StringComparison.OrdinalIgnoreCase)) return WithSasToken(checkedUri, checkedUri.Query);
        var uri = ContainerUriWithoutQuery(checkedUri);
        switch (Get(CredentialVariable))
        {
            case null: break;
            case var c when c.Equals(nameof(BlobVaultAuthentication.ManagedIdentity), StringComparison.OrdinalIgnoreCase):
                return WithManagedIdentity(uri, Get(ManagedIdentityClientIdVariable));
            case var c when c.Equals(nameof(BlobVaultAuthentication.ServicePrincipal), StringComparison.OrdinalIgnoreCase):
                return WithServicePrincipal(uri, Get(TenantIdVariable) ?? "", Get(ClientIdVariable) ?? "", Get(ClientSecretVariable) ?? "");
            case var c:
                throw Invalid(uri, $"{CredentialVariable} is '{c}'; it can be ManagedIdentity or ServicePrincipal");
        }
        string account = new BlobUriBuilder(uri).AccountName;
        bool accountMatches = Get(AccountNameVariable) is not { } named || named.Equals(account, StringComparison.OrdinalIgnoreCase);
        if (Get(ConnectionStringVariable) is { } connectionString && SameAccount(connectionString, uri))
            return WithConnectionString(connectionString, new BlobUriBuilder(uri).BlobContainerName);
        if (Get(SasTokenVariable) is { } sas) return WithSasToken(uri, sas);
        if (Get(AccountKeyVariable) is { } key && accountMatches) return WithAccountKey(uri, key);
        return WithDefaultCredential(uri);
    }

    /// <summary>Whether a connection string's blob endpoint is the account the container URI is in.</summary>
    private static bool SameAccount(string connectionString, Uri containerUri)
    {
        try
        {
            string service = new BlobServiceClient(connectionString).Uri.GetLeftPart(UriPartial.Path).TrimEnd('/');
            string mine = BlobVaultStore.LocationOf(containerUri);
            return mine.StartsWith(service + "/", StringComparison.OrdinalIgnoreCase) && mine.IndexOf('/', service.Length + 1) < 0;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException or InvalidOperationException)
        {
            return false;
        }
    }

    // ---- opening ----

    /// <summary>A store on this container (the container itself is not checked or created here).</summary>
    public BlobVaultStore OpenStore(BlobVaultStoreOptions? options = null)
    {
        options ??= new BlobVaultStoreOptions();
        var store = Authentication switch
        {
            BlobVaultAuthentication.DefaultAzureCredential => BlobVaultStore.FromDefaultCredential(_containerUri, options),
            BlobVaultAuthentication.ManagedIdentity => BlobVaultStore.FromManagedIdentity(_containerUri, _clientId, options),
            BlobVaultAuthentication.ServicePrincipal => BlobVaultStore.FromTokenCredential(_containerUri,
                new global::Azure.Identity.ClientSecretCredential(_tenantId, _clientId, _secret), options),
            BlobVaultAuthentication.AccessToken => BlobVaultStore.FromTokenCredential(_containerUri, new FixedAccessTokenCredential(_secret!, _tokenExpiresOn), options),
            BlobVaultAuthentication.SasToken => BlobVaultStore.FromSasUri(new UriBuilder(_containerUri) { Query = _secret }.Uri, options),
            BlobVaultAuthentication.AccountKey => BlobVaultStore.FromSharedKey(_containerUri,
                new StorageSharedKeyCredential(new BlobUriBuilder(_containerUri).AccountName, _secret), options),
            BlobVaultAuthentication.ConnectionString => BlobVaultStore.FromConnectionString(_secret!, new BlobUriBuilder(_containerUri).BlobContainerName, options),
            _ => throw new InvalidOperationException(Authentication.ToString()),
        };
        store.Connection = this;
        return store;
    }

    /// <summary>Sets what a child process needs to open this vault the same way (see <see cref="FromEnvironment"/>).</summary>
    public void ForwardTo(IDictionary<string, string?> environment)
    {
        if (Authentication == BlobVaultAuthentication.AccessToken)
            throw new AsrException(AsrErrorIds.VaultCredentialNotForwardable, AsrErrorKind.InvalidOperation,
                $"The vault at '{Location}' was connected with -AccessToken, a token that expires and that an agent cannot renew. " +
                "Connect with a managed identity, a service principal (-Credential), DefaultAzureCredential, a SAS, an account key or a connection string to start an agent.",
                Location);
        foreach (var name in ForwardedVariables) environment.Remove(name);
        switch (Authentication)
        {
            case BlobVaultAuthentication.ManagedIdentity:
                environment[CredentialVariable] = nameof(BlobVaultAuthentication.ManagedIdentity);
                if (_clientId is not null) environment[ManagedIdentityClientIdVariable] = _clientId;
                break;
            case BlobVaultAuthentication.ServicePrincipal:
                environment[CredentialVariable] = nameof(BlobVaultAuthentication.ServicePrincipal);
                environment[TenantIdVariable] = _tenantId;
                environment[ClientIdVariable] = _clientId;
                environment[ClientSecretVariable] = _secret;
                break;
            case BlobVaultAuthentication.SasToken:
                environment[SasTokenVariable] = _secret;
                break;
            case BlobVaultAuthentication.AccountKey:
                environment[AccountKeyVariable] = _secret;
                break;
            case BlobVaultAuthentication.ConnectionString:
                environment[ConnectionStringVariable] = _secret;
                break;
        }
    }

    // ---- checks ----

    /// <summary>Whether <paramref name="location"/> is a blob container URL rather than a local path.</summary>
    public static bool IsContainerUrl(string? location) =>
        location is not null && Uri.TryCreate(location, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp);

    private static Uri ContainerUriWithoutQuery(Uri uri)
    {
        var clean = new Uri(BlobVaultStore.LocationOf(BlobVaultStore.CheckContainerUri(uri)));
        var parts = new BlobUriBuilder(clean);
        if (string.IsNullOrEmpty(parts.BlobContainerName) || !string.IsNullOrEmpty(parts.BlobName))
            throw Invalid(clean, "it must name a container and nothing below it (https://<account>.blob.core.windows.net/<container>)");
        CheckContainerName(parts.BlobContainerName);
        return clean;
    }

    private static void CheckContainerName(string name)
    {
        // The service's rule: 3-63 characters, lowercase letters, digits and single hyphens, starting and ending alphanumeric.
        bool valid = name is { Length: >= 3 and <= 63 } && char.IsAsciiLetterOrDigit(name[0]) && char.IsAsciiLetterOrDigit(name[^1])
                     && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-') && !name.Contains("--", StringComparison.Ordinal);
        if (!valid)
            throw new AsrException(AsrErrorIds.VaultNotFound, AsrErrorKind.InvalidArgument,
                $"'{name}' is not a valid container name: use 3-63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.", name);
    }

    private static AsrException Invalid(Uri uri, string why) =>
        new(AsrErrorIds.VaultNotFound, AsrErrorKind.InvalidArgument, $"'{BlobVaultStore.LocationOf(uri)}' cannot be used: {why}.", BlobVaultStore.LocationOf(uri));
}
