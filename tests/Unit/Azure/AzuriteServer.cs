using System.Net;
using AsrModule.Engine.Azure;
using AsrModule.Tests.Shared;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Sas;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>
/// A real Azurite for the unit tests: the process (<see cref="AzuriteProcess"/>, shared with the Pester runner)
/// plus the clients, stores, SAS and https/OAuth setup these tests use. It can be stopped and started again on
/// the same port and data (the outage tests).
/// </summary>
internal sealed class AzuriteServer : IDisposable
{
    public const string Account = AzuriteProcess.Account;
    /// <summary>Azurite's well-known development key (public, not a secret).</summary>
    public const string AccountKey = AzuriteProcess.AccountKey;
    public const string Executable = AzuriteProcess.Executable;

    private readonly AzuriteProcess _process;
    private string? _certificateThumbprint;

    private AzuriteServer(bool https) => _process = new AzuriteProcess(https);

    public int Port => _process.Port;
    private bool Https => _process.Https;
    public string DataPath => _process.DataPath;
    public bool IsRunning => _process.IsRunning;
    public Uri BlobEndpoint => _process.BlobEndpoint;
    public string ConnectionString => _process.ConnectionString;
    public Uri ContainerUri(string container) => new($"{BlobEndpoint}/{container}");
    public StorageSharedKeyCredential SharedKey => new(Account, AccountKey);

    /// <summary>Where azurite-blob is installed (npm install -g azurite), or null.</summary>
    public static string? ExecutablePath => AzuriteProcess.ExecutablePath;

    /// <summary>The Azure tests run when Azurite is installed, and under CI (where a missing Azurite must fail them).</summary>
    public static bool ShouldRun => AzuriteProcess.ShouldRun;

    public static string SkipReason => AzuriteProcess.SkipReason;

    /// <summary>
    /// Starts an Azurite. With <paramref name="httpsWithOAuth"/> it serves https with a self-signed certificate
    /// and accepts bearer tokens (--oauth basic: it checks a token's issuer, audience and lifetime, not its
    /// signature), so a TokenCredential can be tested for real; clients trust it through <see cref="TrustingTransport"/>.
    /// </summary>
    public static AzuriteServer Start(bool httpsWithOAuth = false)
    {
        var server = new AzuriteServer(httpsWithOAuth);
        try
        {
            server.StartProcess();
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Starts Azurite (again) on this server's port and data folder, and waits until it accepts connections.</summary>
    public void StartProcess()
    {
        if (IsRunning) return;
        if (!Https)
        {
            _process.Start();
            return;
        }
        var (cert, key) = WriteCertificate();
        _process.Start(["--cert", cert, "--key", key, "--oauth", "basic"]);
    }

    /// <summary>Stops Azurite the way a service stop does (SIGTERM, its metadata saved); SIGKILL after 15 s.</summary>
    public void Stop() => _process.Stop();

    public void Restart()
    {
        Stop();
        StartProcess();
    }

    public string Output => _process.Output;

    /// <summary>A self-signed certificate for 127.0.0.1 (PEM files in the data folder), made once per server.</summary>
    private (string Cert, string Key) WriteCertificate()
    {
        string certPath = Path.Combine(DataPath, "azurite-cert.pem"), keyPath = Path.Combine(DataPath, "azurite-key.pem");
        if (_certificateThumbprint is null)
        {
            using var rsa = System.Security.Cryptography.RSA.Create(2048);
            var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=127.0.0.1", rsa,
                System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
            var san = new System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder();
            san.AddIpAddress(IPAddress.Loopback);
            san.AddDnsName("localhost");
            request.CertificateExtensions.Add(san.Build());
            using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(2));
            File.WriteAllText(certPath, certificate.ExportCertificatePem());
            File.WriteAllText(keyPath, rsa.ExportPkcs8PrivateKeyPem());
            _certificateThumbprint = certificate.GetCertHashString();
        }
        return (certPath, keyPath);
    }

    /// <summary>An HTTP transport that trusts this server's self-signed certificate (and no other untrusted one).</summary>
    public global::Azure.Core.Pipeline.HttpPipelineTransport TrustingTransport()
    {
        string thumbprint = _certificateThumbprint ?? throw new InvalidOperationException("Not an https Azurite.");
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            errors == System.Net.Security.SslPolicyErrors.None || certificate?.GetCertHashString() == thumbprint;
        return new global::Azure.Core.Pipeline.HttpClientTransport(handler);
    }

    public static string NewContainerName() => "vault-" + Guid.NewGuid().ToString("N")[..20];

    /// <summary>A store on a new (or given) container, authenticated by the connection string; the container is created.</summary>
    public async Task<BlobVaultStore> NewStoreAsync(string? container = null, BlobVaultStoreOptions? options = null)
    {
        var store = BlobVaultStore.FromConnectionString(ConnectionString, container ?? NewContainerName(), options);
        await store.CreateContainerIfNotExistsAsync(default);
        return store;
    }

    /// <summary>A second, independent store on the same container (as another process would open it).</summary>
    public BlobVaultStore OpenStore(string container, BlobVaultStoreOptions? options = null) =>
        BlobVaultStore.FromConnectionString(ConnectionString, container, options);

    /// <summary>A container SAS URI signed with <paramref name="key"/> (the account key, or a wrong one).</summary>
    public Uri ContainerSasUri(string container, string key = AccountKey)
    {
        var sas = new BlobSasBuilder(BlobContainerSasPermissions.All, DateTimeOffset.UtcNow.AddHours(1))
        {
            BlobContainerName = container,
            Resource = "c",
        };
        var query = sas.ToSasQueryParameters(new StorageSharedKeyCredential(Account, key)).ToString();
        return new Uri($"{ContainerUri(container)}?{query}");
    }

    public BlobContainerClient ContainerClient(string container) =>
        new(ConnectionString, container, Https ? new BlobClientOptions { Transport = TrustingTransport() } : null);

    public void Dispose() => _process.Dispose();
}

/// <summary>One Azurite shared by the Azure tests (started on first use, stopped when the collection ends).</summary>
public sealed class AzuriteFixture : IDisposable
{
    private readonly Lazy<AzuriteServer> _server = new(() => AzuriteServer.Start(), LazyThreadSafetyMode.ExecutionAndPublication);

    internal AzuriteServer Server => _server.Value;

    public void Dispose()
    {
        if (_server.IsValueCreated) _server.Value.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class AzuriteCollection : ICollectionFixture<AzuriteFixture>
{
    public const string Name = "Azurite";
}

/// <summary>
/// A test that needs Azurite: skipped with the reason when azurite-blob is not installed, except under
/// CI=true, where CI installs it and a missing Azurite must fail the test (like RequiresToolAttribute).
/// </summary>
public sealed class RequiresAzuriteAttribute : FactAttribute
{
    public RequiresAzuriteAttribute()
    {
        if (!AzuriteServer.ShouldRun) Skip = AzuriteServer.SkipReason;
    }
}
