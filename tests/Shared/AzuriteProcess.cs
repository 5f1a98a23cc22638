using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace AsrModule.Tests.Shared;

/// <summary>
/// A real Azurite (blob service only) run as a child process on 127.0.0.1, on a free port, with its data
/// in a temp folder it owns. It can be stopped and started again on the same port and data (the outage tests).
/// Stopping sends SIGTERM: Azurite then saves its metadata (it autosaves only every 5 s, so a SIGKILL
/// would lose recently committed blobs and test Azurite rather than the vault).
/// Compiled into both test projects (linked), so unit tests and the Pester runner start Azurite the same way.
/// </summary>
internal sealed class AzuriteProcess : IDisposable
{
    public const string Account = "devstoreaccount1";
    /// <summary>Azurite's well-known development key (public, not a secret).</summary>
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    public const string Executable = "azurite-blob";

    private const string DataFolderPrefix = "asr-azurite-";
    private readonly Queue<string> _output = new();
    private Process? _process;

    /// <param name="https">Whether the caller starts it with a certificate (only the endpoint's scheme depends on it).</param>
    public AzuriteProcess(bool https = false)
    {
        Https = https;
        Port = FreePort();
        DeleteDataOfEndedProcesses();
        // The owner's process id in the name: see DeleteDataOfEndedProcesses.
        DataPath = Path.Combine(Path.GetTempPath(), $"{DataFolderPrefix}{Environment.ProcessId}-{Guid.NewGuid().ToString("N")[..10]}");
        Directory.CreateDirectory(DataPath);
    }

    /// <summary>
    /// Deletes the data folders whose test process has ended. A test process that stops its Azurite only when
    /// it exits (the Pester runner) may be killed by the test platform while deleting gigabytes of blob data.
    /// </summary>
    private static void DeleteDataOfEndedProcesses()
    {
        foreach (var folder in Directory.EnumerateDirectories(Path.GetTempPath(), DataFolderPrefix + "*"))
        {
            string name = Path.GetFileName(folder)[DataFolderPrefix.Length..];
            int dash = name.IndexOf('-');
            if (dash <= 0 || !int.TryParse(name[..dash], out int owner) || ProcessIsAlive(owner)) continue;
            try { Directory.Delete(folder, recursive: true); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { }
        }
    }

    private static bool ProcessIsAlive(int processId)
    {
        try
        {
            using var process = Process.GetProcessById(processId);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    public int Port { get; }
    public bool Https { get; }
    public string DataPath { get; }
    public bool IsRunning => _process is { HasExited: false };
    public Uri BlobEndpoint => new($"{(Https ? "https" : "http")}://127.0.0.1:{Port}/{Account}");
    public string ConnectionString =>
        $"DefaultEndpointsProtocol={(Https ? "https" : "http")};AccountName={Account};AccountKey={AccountKey};BlobEndpoint={BlobEndpoint};";

    /// <summary>Where azurite-blob is installed (npm install -g azurite), or null.</summary>
    public static string? ExecutablePath
    {
        get
        {
            foreach (var dir in new[] { "/usr/bin", "/usr/local/bin", "/bin" }
                         .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)))
            {
                string candidate = Path.Combine(dir, Executable);
                if (File.Exists(candidate)) return candidate;
            }
            return null;
        }
    }

    /// <summary>Blob tests run when Azurite is installed, and under CI (where a missing Azurite must fail them).</summary>
    public static bool ShouldRun => ExecutablePath is not null || Environment.GetEnvironmentVariable("CI") == "true";

    public static string SkipReason => $"Not installed: {Executable} (npm install -g azurite); the blob vault tests need a real Azurite.";

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Starts Azurite (again) on this port and data folder, and waits until it accepts connections.</summary>
    public void Start(IEnumerable<string>? extraArguments = null)
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
                     "--blobHost", "127.0.0.1", "--blobPort", Port.ToString(), "--location", DataPath,
                     "--skipApiVersionCheck", "--silent", "--loose", "--disableTelemetry",
                 })
            psi.ArgumentList.Add(a);
        foreach (var a in extraArguments ?? []) psi.ArgumentList.Add(a);
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

    /// <summary>Azurite's last lines of output, for failure messages.</summary>
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

    public void Dispose()
    {
        try { Stop(); }
        finally
        {
            try { Directory.Delete(DataPath, recursive: true); } catch (DirectoryNotFoundException) { }
        }
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
