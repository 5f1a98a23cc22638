using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// How <see cref="AsrAzureTarget"/> authenticates to Azure Resource Manager, as <see cref="BlobVaultConnection"/> does
/// to a blob vault: DefaultAzureCredential, a managed identity, a service principal with a secret, or a bearer token
/// obtained elsewhere (Get-AzAccessToken). No Azure SDK type appears in its public members (the module loads the SDK
/// in its own load context); the SDK credential is made only when the target first calls Azure, for the target's
/// cloud (its authority host). <see cref="ToString"/> never shows a secret.
/// </summary>
public sealed class AzureTargetCredential
{
    private readonly string? _secret;
    private readonly string? _tenantId;
    private readonly string? _clientId;
    private readonly DateTimeOffset _tokenExpiresOn;

    private AzureTargetCredential(string kind, string? secret = null, string? tenantId = null, string? clientId = null, DateTimeOffset tokenExpiresOn = default)
    {
        Kind = kind;
        _secret = secret;
        _tenantId = tenantId;
        _clientId = clientId;
        _tokenExpiresOn = tokenExpiresOn;
    }

    /// <summary>DefaultAzureCredential, ManagedIdentity, ServicePrincipal or AccessToken.</summary>
    public string Kind { get; }

    /// <summary>When an <see cref="AccessToken"/> credential stops working (its 'exp' claim, else one hour after it was given); null for the others.</summary>
    public DateTimeOffset? ExpiresOn => Kind == AccessTokenKind ? _tokenExpiresOn : null;

    private const string DefaultKind = "DefaultAzureCredential", ManagedIdentityKind = "ManagedIdentity",
        ServicePrincipalKind = "ServicePrincipal", AccessTokenKind = "AccessToken";

    /// <summary>DefaultAzureCredential (environment service principal, workload or managed identity, Azure CLI or Azure PowerShell sign-in) at the cloud's authority host.</summary>
    public static AzureTargetCredential Default() => new(DefaultKind);

    /// <summary>The system-assigned managed identity, or the user-assigned one with <paramref name="clientId"/>.</summary>
    public static AzureTargetCredential ManagedIdentity(string? clientId = null) =>
        new(ManagedIdentityKind, clientId: string.IsNullOrWhiteSpace(clientId) ? null : clientId.Trim());

    /// <summary>A Microsoft Entra application (service principal) with a client secret.</summary>
    public static AzureTargetCredential ServicePrincipal(string tenantId, string clientId, string clientSecret)
    {
        if (string.IsNullOrWhiteSpace(tenantId) || string.IsNullOrWhiteSpace(clientId) || string.IsNullOrEmpty(clientSecret))
            throw Invalid("A service principal needs a tenant id, a client (application) id and a client secret.", clientId ?? "");
        // Azure.Identity's own rule for a tenant id (a GUID or a domain name), checked here for a clear error.
        if (!tenantId.Trim().All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.'))
            throw Invalid($"'{tenantId.Trim()}' is not a tenant id: use the directory's GUID or its domain name (contoso.onmicrosoft.com).", tenantId);
        return new(ServicePrincipalKind, clientSecret, tenantId.Trim(), clientId.Trim());
    }

    /// <summary>
    /// A bearer token for Azure Resource Manager obtained elsewhere (Get-AzAccessToken), sent as it is and not renewed,
    /// until it expires (its 'exp' claim when it is a JWT, else one hour). A leading "Bearer " is tolerated.
    /// </summary>
    public static AzureTargetCredential AccessToken(string token)
    {
        if (string.IsNullOrWhiteSpace(token)) throw Invalid("The access token is empty.", "AccessToken");
        string t = token.Trim();
        if (t.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) t = t[7..].Trim();
        if (t.Length == 0 || t.Equals("Bearer", StringComparison.OrdinalIgnoreCase)) throw Invalid("The access token is empty.", "AccessToken");
        return new(AccessTokenKind, t, tokenExpiresOn: JwtExpiry.TryRead(t, out var expiresOn) ? expiresOn : DateTimeOffset.UtcNow.AddHours(1));
    }

    /// <summary>The SDK credential for <paramref name="cloud"/> (its authority host; the scope asked for is the cloud's audience).</summary>
    internal global::Azure.Core.TokenCredential Create(AzureCloud cloud)
    {
        ArgumentNullException.ThrowIfNull(cloud);
        return Kind switch
        {
            DefaultKind => new global::Azure.Identity.DefaultAzureCredential(
                new global::Azure.Identity.DefaultAzureCredentialOptions { AuthorityHost = cloud.AuthorityHost }),
            ManagedIdentityKind => _clientId is null
                ? new global::Azure.Identity.ManagedIdentityCredential(global::Azure.Identity.ManagedIdentityId.SystemAssigned)
                : new global::Azure.Identity.ManagedIdentityCredential(global::Azure.Identity.ManagedIdentityId.FromUserAssignedClientId(_clientId)),
            ServicePrincipalKind => new global::Azure.Identity.ClientSecretCredential(_tenantId, _clientId, _secret,
                new global::Azure.Identity.ClientSecretCredentialOptions { AuthorityHost = cloud.AuthorityHost }),
            AccessTokenKind => new FixedAccessTokenCredential(_secret!, _tokenExpiresOn),
            _ => throw new InvalidOperationException(Kind),
        };
    }

    /// <summary>The kind and the non-secret parts (tenant, client id, expiry); never the secret or the token.</summary>
    public override string ToString() => Kind switch
    {
        ManagedIdentityKind => _clientId is null ? "ManagedIdentity (system-assigned)" : $"ManagedIdentity (client id {_clientId})",
        ServicePrincipalKind => $"ServicePrincipal (tenant {_tenantId}, client id {_clientId})",
        AccessTokenKind => $"AccessToken (expires {_tokenExpiresOn.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z)",
        _ => Kind,
    };

    private static AsrException Invalid(string message, string target) =>
        new(AsrErrorIds.FailoverTargetInvalid, AsrErrorKind.InvalidArgument, message, target);
}
