namespace AsrModule.Engine.Azure;

/// <summary>How a blob vault authenticates to Azure Storage.</summary>
public enum BlobVaultAuthentication
{
    /// <summary>Azure.Identity's DefaultAzureCredential: environment service principal, workload identity, managed identity, Azure CLI / Azure PowerShell sign-in.</summary>
    DefaultAzureCredential,
    /// <summary>A system- or user-assigned managed identity (Azure Automation runbooks, Azure VMs).</summary>
    ManagedIdentity,
    /// <summary>A Microsoft Entra application with a client secret (tenant, client id, secret).</summary>
    ServicePrincipal,
    /// <summary>A bearer token for https://storage.azure.com obtained elsewhere (Get-AzAccessToken); it is not renewed.</summary>
    AccessToken,
    /// <summary>A shared access signature for the container (or account).</summary>
    SasToken,
    /// <summary>The storage account's name (from the URI) and key.</summary>
    AccountKey,
    /// <summary>A storage connection string (account key or SAS inside).</summary>
    ConnectionString,
}
