using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using AsrModule.Engine.Azure;
using Azure.Storage;
using Azure.Storage.Blobs;
using Azure.Storage.Sas;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>
/// A real Azurite (blob service only) run as a child process on 127.0.0.1, on a free port, with its data
/// in a temp folder. It can be stopped and started again on the same port and data (the outage tests).
/// Stopping sends SIGTERM: Azurite then saves its metadata (it autosaves only every 5 s, so a SIGKILL
/// would lose recently committed blobs and test Azurite rather than the vault).
/// </summary>
internal sealed class AzuriteServer : IDisposable
{
    public const string Account = "devstoreaccount1";
    /// <summary>Azurite's well-known development key (public, not a secret).</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    public const string Executable = "azurite-blob";

    private readonly TempDir _data = new();
    private readonly Queue<string> _output = new();
    private Process? _process;

    private readonly bool _https;
    private string? _certificateThumbprint;

    private AzuriteServer(int port, bool https)
    {
        Port = port;
        _https = https;
    }

    public int Port { get; }
    private string Scheme => _https ? "https" : "http";
    public string DataPath => _data.Path;
    public bool IsRunning => _process is { HasExited: false };
    public Uri BlobEndpoint => new($"{Scheme}://127.0.0.1:{Port}/{Account}");
    public string ConnectionString =>
        $"DefaultEndpointsProtocol={Scheme};AccountName={Account};AccountKey={AccountKey};BlobEndpoint={BlobEndpoint};";
    public Uri ContainerUri(string container) => new($"{BlobEndpoint}/{container}");
    public StorageSharedKeyCredential SharedKey => new(Account, AccountKey);

    /// <summary>Where azurite-blob is installed (npm install -g azurite), or null.</summary>
    public static string? ExecutablePath => NbdServerTests.RequiresToolAttribute.PathOf(Executable);

    /// <summary>The Azure tests run when Azurite is installed, and under CI (where a missing Azurite must fail them).</summary>
    public static bool ShouldRun => ExecutablePath is not null || Environment.GetEnvironmentVariable("CI") == "true";

    public static string SkipReason => $"Not installed: {Executable} (npm install -g azurite); the blob vault tests need a real Azurite.";

    /// <summary>
    /// Starts an Azurite. With <paramref name="httpsWithOAuth"/> it serves https with a self-signed certificate
    /// and accepts bearer tokens (--oauth basic: it checks a token's issuer, audience and lifetime, not its
    /// signature), so a TokenCredential can be tested for real; clients trust it through <see cref="TrustingTransport"/>.
    /// </summary>
    public static AzuriteServer Start(bool httpsWithOAuth = false)
    {
        var server = new AzuriteServer(FreePort(), httpsWithOAuth);
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

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Starts Azurite (again) on this server's port and data folder, and waits until it accepts connections.</summary>
    public void StartProcess()
    {
        if (IsRunning) return;
        string exe = ExecutablePath ?? throw new InvalidOperationException(SkipReason);
        var psi = new ProcessStartInfo(exe)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
                 {
                     "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(), "--location", _data.Path,
                     "--skipApiVersionCheck", "--silent", "--loose", "--disableTelemetry",
                 })
            psi.ArgumentList.Add(a);
        if (_https)
        {
            var (cert, key) = WriteCertificate();
            foreach (var a in new[] { "--cert", cert, "--key", key, "--oauth", "basic" }) psi.ArgumentList.Add(a);
        }
        var process = Process.Start(psi) ?? throw new InvalidOperationException("azurite-blob did not start.");
        process.OutputDataReceived += (_, e) => Remember(e.Data);
        process.ErrorDataReceived += (_, e) => Remember(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"Azurite exited with code {process.ExitCode} on port {Port}: {Output}");
            try
            {
                using var probe = new TcpClient();
                probe.Connect(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                Thread.Sleep(100);
            }
            catch (SocketException)
            {
                throw new TimeoutException($"Azurite did not listen on port {Port} within 30 s: {Output}");
            }
        }
    }

    /// <summary>Stops Azurite the way a service stop does (SIGTERM, its metadata saved); SIGKILL after 15 s.</summary>
    public void Stop()
    {
        var process = _process;
        if (process is null) return;
        _process = null;
        if (!process.HasExited)
        {
            if (!OperatingSystem.IsWindows()) Native.Kill(process.Id, 15 /* SIGTERM */);
            else process.Kill(entireProcessTree: true);
            if (!process.WaitForExit(15_000))
                process.Kill(entireProcessTree: true);
        }
        process.WaitForExit();
        process.Dispose();
    }

    public void Restart()
    {
        Stop();
        StartProcess();
    }

    public string Output
    {
        get { lock (_output) return string.Join(" | ", _output); }
    }

    private void Remember(string? line)
    {
        if (string.IsNullOrWhiteSpace(line)) return;
        lock (_output)
        {
            _output.Enqueue(line);
            while (_output.Count > 40) _output.Dequeue();
        }
    }

    /// <summary>A self-signed certificate for 127.0.0.1 (PEM files in the data folder), made once per server.</summary>
    private (string Cert, string Key) WriteCertificate()
    {
        string certPath = Path.Combine(_data.Path, "azurite-cert.pem"), keyPath = Path.Combine(_data.Path, "azurite-key.pem");
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
        new(ConnectionString, container, _https ? new BlobClientOptions { Transport = TrustingTransport() } : null);

    public void Dispose()
    {
        try { Stop(); }
        finally { _data.Dispose(); }
    }

    private static class Native
    {
        [DllImport("libc", SetLastError = true, EntryPoint = "kill")]
        private static extern int kill(int pid, int signal);

        public static void Kill(int pid, int signal)
        {
            if (kill(pid, signal) != 0)
                throw new InvalidOperationException($"kill({pid}, {signal}) failed with errno {Marshal.GetLastPInvokeError()}.");
        }
    }
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
