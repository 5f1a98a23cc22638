using AsrModule.Tests.Shared;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Sas;

namespace AsrModule.Tests.Pester.Runner;

/// <summary>Where the vault of a Pester run lives: every It runs once on each (LocalOnly Its only on Local).</summary>
public enum TestBackend
{
    Local,
    Blob,
}

/// <summary>
/// The blob backend of the Pester matrix: one real Azurite for this test process, started on the first Blob
/// case and stopped (SIGTERM, its data folder deleted) when the process exits. Once it runs, the process
/// environment says how to reach it: AZURE_STORAGE_CONNECTION_STRING is what the module (and the child
/// processes and agents the tests start, which inherit it) opens container URLs of that account with; it
/// applies only to that account, so Local runs are unaffected. The test helpers (TestHelpers.ps1) read
/// ASR_TEST_BLOB_ENDPOINT to make container URLs and ASR_TEST_BLOB_SAS to look into containers directly.
/// </summary>
public static class TestBackends
{
    /// <summary>Tags an It, Context or Describe that is inherently about the local directory: it gets no Blob case.</summary>
    public const string LocalOnlyTag = "LocalOnly";
    /// <summary>Tags a test that makes its own vaults on the backends it is about (or needs none): it runs once, in the Local row.</summary>
    public const string OwnVaultsTag = "OwnVaults";
    /// <summary>The tags that keep a test out of the Blob row.</summary>
    public static readonly string[] NotOnBlobTags = [LocalOnlyTag, OwnVaultsTag];
    public const string BlobEndpointVariable = "ASR_TEST_BLOB_ENDPOINT";
    public const string BlobSasVariable = "ASR_TEST_BLOB_SAS";
    public const string ConnectionStringVariable = "AZURE_STORAGE_CONNECTION_STRING";

    // A failed start is cached too: under CI every Blob case then fails with the same reason.
    private static readonly Lazy<AzuriteProcess> Azurite = new(StartAzurite, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Starts the process's Azurite if it does not run yet; throws when it cannot.</summary>
    public static void EnsureBlobEndpoint() => _ = Azurite.Value;

    /// <summary>Where a C# test's vault goes on <paramref name="backend"/>: <paramref name="directory"/>/vault, or a new container URL.</summary>
    public static string NewVaultLocation(TestBackend backend, string directory)
    {
        if (backend == TestBackend.Local) return Path.Combine(directory, "vault");
        return $"{Azurite.Value.BlobEndpoint}/vault-{Guid.NewGuid().ToString("N")[..20]}";
    }

    /// <summary>Deletes the container of a blob vault location (nothing for a local one: its directory goes with the test's).</summary>
    public static void DeleteVault(string location)
    {
        if (!location.StartsWith("http", StringComparison.Ordinal)) return;
        var uri = new BlobUriBuilder(new Uri(location));
        new BlobContainerClient(Azurite.Value.ConnectionString, uri.BlobContainerName).DeleteIfExists();
    }

    private static AzuriteProcess StartAzurite()
    {
        var azurite = new AzuriteProcess();
        try
        {
            azurite.Start();
        }
        catch
        {
            azurite.Dispose();
            throw;
        }
        AppDomain.CurrentDomain.ProcessExit += (_, _) => azurite.Dispose();
        // An account SAS for the helpers' plain HTTP requests (list, read, write, lease, create and delete containers).
        string sas = new AccountSasBuilder(AccountSasPermissions.All, DateTimeOffset.UtcNow.AddDays(2), AccountSasServices.Blobs, AccountSasResourceTypes.All)
            .ToSasQueryParameters(new StorageSharedKeyCredential(AzuriteProcess.Account, AzuriteProcess.AccountKey)).ToString();
        Environment.SetEnvironmentVariable(ConnectionStringVariable, azurite.ConnectionString);
        Environment.SetEnvironmentVariable(BlobEndpointVariable, azurite.BlobEndpoint.ToString());
        Environment.SetEnvironmentVariable(BlobSasVariable, sas);
        return azurite;
    }
}
