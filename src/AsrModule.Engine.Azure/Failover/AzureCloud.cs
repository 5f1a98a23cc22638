using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>
/// An Azure cloud: its Resource Manager endpoint, the audience of its tokens (the scope requested is audience +
/// "/.default") and its Microsoft Entra authority host. The three named clouds carry Az's environment names
/// (Connect-AzAccount -Environment); the values are those of the SDK's ArmEnvironment and AzureAuthorityHosts
/// (docs/azure-target-notes.md §6). <see cref="Custom"/> is for Azure Stack Hub, a sovereign cloud not listed, or a
/// test endpoint.
/// </summary>
public sealed record AzureCloud(string Name, Uri ResourceManagerEndpoint, string Audience, Uri AuthorityHost)
{
    public static AzureCloud AzurePublic { get; } = new("AzureCloud",
        new Uri("https://management.azure.com"), "https://management.azure.com/", new Uri("https://login.microsoftonline.com/"));

    public static AzureCloud AzureChina { get; } = new("AzureChinaCloud",
        new Uri("https://management.chinacloudapi.cn"), "https://management.chinacloudapi.cn", new Uri("https://login.chinacloudapi.cn/"));

    public static AzureCloud AzureUSGovernment { get; } = new("AzureUSGovernment",
        new Uri("https://management.usgovcloudapi.net"), "https://management.usgovcloudapi.net", new Uri("https://login.microsoftonline.us/"));

    /// <summary>The named clouds, by their Az names.</summary>
    public static IReadOnlyList<AzureCloud> Named { get; } = [AzurePublic, AzureChina, AzureUSGovernment];

    /// <summary>A named cloud by its Az name (AzureCloud, AzureChinaCloud, AzureUSGovernment; case-insensitive).</summary>
    public static AzureCloud FromName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        return Named.FirstOrDefault(c => string.Equals(c.Name, name, StringComparison.OrdinalIgnoreCase))
               ?? throw new AsrException(AzureControlPlaneErrorIds.AzureSpecInvalid, AsrErrorKind.InvalidArgument,
                   $"'{name}' is not a known Azure cloud; use one of {string.Join(", ", Named.Select(c => c.Name))}, or give the Resource Manager endpoint and authority host.",
                   name);
    }

    /// <summary>A cloud given by its endpoints; the audience defaults to the endpoint (as ArmEnvironment's does).</summary>
    public static AzureCloud Custom(Uri resourceManagerEndpoint, Uri authorityHost, string? audience = null)
    {
        ArgumentNullException.ThrowIfNull(resourceManagerEndpoint);
        ArgumentNullException.ThrowIfNull(authorityHost);
        if (!resourceManagerEndpoint.IsAbsoluteUri || resourceManagerEndpoint.Scheme != Uri.UriSchemeHttps)
            throw new AsrException(AzureControlPlaneErrorIds.AzureSpecInvalid, AsrErrorKind.InvalidArgument,
                $"The Resource Manager endpoint '{resourceManagerEndpoint}' must be an absolute https URI (a bearer token is only sent over https).",
                resourceManagerEndpoint.ToString());
        if (!authorityHost.IsAbsoluteUri || authorityHost.Scheme != Uri.UriSchemeHttps)
            throw new AsrException(AzureControlPlaneErrorIds.AzureSpecInvalid, AsrErrorKind.InvalidArgument,
                $"The authority host '{authorityHost}' must be an absolute https URI.", authorityHost.ToString());
        return new AzureCloud("Custom", resourceManagerEndpoint,
            string.IsNullOrEmpty(audience) ? resourceManagerEndpoint.GetLeftPart(UriPartial.Authority) : audience, authorityHost);
    }
}
