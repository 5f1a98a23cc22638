using System.Diagnostics;
using System.Net.Http.Json;
using System.Reflection;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Azure.Failover;

namespace AsrModule.Tests.Unit.Azure.Failover;

/// <summary>
/// The FAKE Azure Resource Manager (tests/FakeArm) run as a child process on a free port of 127.0.0.1, with its page
/// blobs in the given Azurite. Its self-signed certificate is trusted through a handler pinning its thumbprint
/// (in-process; SSL_CERT_FILE only works for a process started with it). The control API under /_fake/ injects
/// faults, switches the LRO mode and returns the requests received.
/// </summary>
internal sealed class FakeArmProcess : IDisposable
{
    public const string SubscriptionId = "00000000-0000-0000-0000-0000000000aa";
    public const string ResourceGroup = "asr-rg";
    public const string Container = "disks";

    private readonly Process _process;
    private readonly string _certDirectory;
    private readonly List<string> _output = [];

    private FakeArmProcess(Process process, string certDirectory, Uri endpoint, string thumbprint)
    {
        _process = process;
        _certDirectory = certDirectory;
        Endpoint = endpoint;
        Thumbprint = thumbprint;
        Control = new HttpClient(PinningHandler(thumbprint)) { BaseAddress = endpoint, Timeout = TimeSpan.FromSeconds(30) };
    }

    public Uri Endpoint { get; }
    public string Thumbprint { get; }
    public HttpClient Control { get; }

    private static string Metadata(string key) =>
        typeof(FakeArmProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value
        ?? throw new InvalidOperationException($"No assembly metadata {key}.");

    /// <summary>tests/FakeArm (its vendored examples are under examples/).</summary>
    public static string Directory => Path.GetFullPath(Metadata("FakeArmDirectory"));

    public static string AssemblyPath => Path.GetFullPath(Metadata("FakeArmAssembly"));

    public static FakeArmProcess Start(string azuriteConnectionString, string mode = "sync")
    {
        if (!File.Exists(AssemblyPath))
            throw new InvalidOperationException($"The fake ARM is not built: {AssemblyPath} (build AsrModule.sln).");
        string certDirectory = Path.Combine(Path.GetTempPath(), $"asr-fakearm-{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..8]}");
        var psi = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[]
                 {
                     AssemblyPath, "--port", "0", "--cert-dir", certDirectory,
                     "--azurite-connection-string", azuriteConnectionString, "--container", Container, "--mode", mode,
                 })
            psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException("The fake ARM did not start.");
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new List<string>();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.Add(e.Data);
            if (e.Data.StartsWith("LISTENING ", StringComparison.Ordinal)) listening.TrySetResult(new Uri(e.Data["LISTENING ".Length..].Trim() + "/"));
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (output) output.Add(e.Data);
        };
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"The fake ARM exited with {process.ExitCode}: {string.Join(" | ", output)}"));
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            if (!listening.Task.Wait(TimeSpan.FromSeconds(60)))
                throw new TimeoutException($"The fake ARM did not listen within 60 s: {string.Join(" | ", output)}");
            var endpoint = listening.Task.Result;
            using var certificate = X509Certificate2.CreateFromPem(File.ReadAllText(Path.Combine(certDirectory, "cert.pem")));
            var fake = new FakeArmProcess(process, certDirectory, endpoint, certificate.GetCertHashString());
            lock (output) fake._output.AddRange(output);
            return fake;
        }
        catch
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }
    }

    private static SocketsHttpHandler PinningHandler(string thumbprint)
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            errors == System.Net.Security.SslPolicyErrors.None || certificate?.GetCertHashString() == thumbprint;
        return handler;
    }

    /// <summary>An SDK transport that trusts this fake's certificate (and no other untrusted one).</summary>
    public global::Azure.Core.Pipeline.HttpPipelineTransport TrustingTransport() => new global::Azure.Core.Pipeline.HttpClientTransport(PinningHandler(Thumbprint));

    /// <summary>A control plane on the fake (custom cloud), fast retries, a fixed bearer token.</summary>
    public ArmControlPlane ControlPlane(int maxRetries = 3, string token = "fake-arm-test-token", string resourceGroup = ResourceGroup) =>
        new(AzureCloud.Custom(Endpoint, new Uri("https://login.fake.invalid/")), SubscriptionId, resourceGroup,
            new FixedAccessTokenCredential(token, DateTimeOffset.UtcNow.AddHours(1)),
            new ArmControlPlaneOptions
            {
                MaxRetries = maxRetries,
                RetryDelay = TimeSpan.FromMilliseconds(10),
                MaxRetryDelay = TimeSpan.FromMilliseconds(200),
                NetworkTimeout = TimeSpan.FromSeconds(30),
                Transport = TrustingTransport(),
            });

    public static string SubnetId(string name) =>
        $"/subscriptions/{SubscriptionId}/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/{name}";

    public static string DiskId(string name) =>
        $"/subscriptions/{SubscriptionId}/resourceGroups/{ResourceGroup}/providers/Microsoft.Compute/disks/{name}";

    public async Task PostAsync(string command, object? body = null)
    {
        using var response = await Control.PostAsJsonAsync($"_fake/{command}", body ?? new { });
        response.EnsureSuccessStatusCode();
    }

    /// <summary>Makes a subnet exist (the fake answers InvalidResourceReference for any other).</summary>
    public Task RegisterSubnetAsync(string subnetId) => PostAsync("subnets", new { id = subnetId });

    /// <summary>The next <paramref name="count"/> requests matching answer <paramref name="status"/> (429 with Retry-After ...).</summary>
    public Task InjectAsync(string method, string path, int status, string code, string? message = null, int count = 1, int? retryAfter = null) =>
        PostAsync("faults", new { method, path, status, code, message, count, retryAfter });

    /// <summary>The next long-running operation matching ends Failed with <paramref name="code"/>.</summary>
    public Task InjectFailedOperationAsync(string method, string path, string code, string message) =>
        PostAsync("faults", new { method, path, code, message, lro = true });

    public Task ConfigureAsync(string mode, int asyncPolls = 1, int listPageSize = 100) =>
        PostAsync("config", new { mode, asyncPolls, listPageSize });

    public async Task<IReadOnlyList<JsonObject>> RequestsAsync()
    {
        var array = (JsonArray)JsonNode.Parse(await Control.GetStringAsync("_fake/requests"))!;
        return array.OfType<JsonObject>().ToList();
    }

    public string Output
    {
        get { lock (_output) return string.Join(" | ", _output); }
    }

    public void Dispose()
    {
        Control.Dispose();
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(10_000);
            }
        }
        finally
        {
            _process.Dispose();
            try { System.IO.Directory.Delete(_certDirectory, recursive: true); } catch (DirectoryNotFoundException) { }
        }
    }
}

/// <summary>One Azurite and one fake ARM (sync mode) shared by the control-plane tests, started on first use.</summary>
public sealed class FakeArmFixture : IDisposable
{
    private readonly Lazy<(AzuriteServer Azurite, FakeArmProcess Fake)> _servers = new(() =>
    {
        var azurite = AzuriteServer.Start();
        try
        {
            return (azurite, FakeArmProcess.Start(azurite.ConnectionString));
        }
        catch
        {
            azurite.Dispose();
            throw;
        }
    }, LazyThreadSafetyMode.ExecutionAndPublication);

    internal AzuriteServer Azurite => _servers.Value.Azurite;
    internal FakeArmProcess Fake => _servers.Value.Fake;

    public void Dispose()
    {
        if (!_servers.IsValueCreated) return;
        try { _servers.Value.Fake.Dispose(); }
        finally { _servers.Value.Azurite.Dispose(); }
    }
}

/// <summary>The control-plane tests share one fake (its LRO mode is global), so they run one at a time.</summary>
[CollectionDefinition(Name)]
public sealed class FakeArmCollection : ICollectionFixture<FakeArmFixture>
{
    public const string Name = "FakeArm";
}

/// <summary>
/// A test on the fake ARM: it needs Azurite (its disks' page blobs), so it is skipped with the reason where
/// azurite-blob is not installed, except under CI=true, where a missing Azurite must fail it (as RequiresAzurite).
/// </summary>
public sealed class FakeArmFactAttribute : FactAttribute
{
    public FakeArmFactAttribute()
    {
        if (!AzuriteServer.ShouldRun) Skip = AzuriteServer.SkipReason;
    }
}

/// <summary>The data-driven form of <see cref="FakeArmFactAttribute"/>.</summary>
public sealed class FakeArmTheoryAttribute : TheoryAttribute
{
    public FakeArmTheoryAttribute()
    {
        if (!AzuriteServer.ShouldRun) Skip = AzuriteServer.SkipReason;
    }
}
