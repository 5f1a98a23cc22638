using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.Tracking.Qemu;

namespace AsrModule.Tests.Unit.Tracking;

/// <summary>
/// A real qemu-system-x86_64 without a guest (-machine none) holding raw disk images open as drive0,
/// drive1, ... Writes go through QEMU's block layer (HMP qemu-io), exactly like a guest's, so they
/// mark dirty bitmaps. QEMU gets two QMP sockets: <see cref="QmpSocketPath"/> for the code under test
/// (a QMP socket serves one client at a time) and a private one the test drives QEMU with.
/// </summary>
internal sealed class QemuVm : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly string[] _disks;
    private Process? _process;
    private QmpClient? _control;

    private QemuVm(string directory, string[] disks)
    {
        Directory = directory;
        _disks = disks;
    }

    public string Directory { get; }
    public string QmpSocketPath => Path.Combine(Directory, "qmp.sock");
    private string ControlSocketPath => Path.Combine(Directory, "control.sock");
    public IReadOnlyList<string> Disks => _disks;

    /// <summary>Starts QEMU with <paramref name="disks"/> (raw image files) open read-write.</summary>
    public static async Task<QemuVm> StartAsync(string directory, params string[] disks)
    {
        var vm = new QemuVm(directory, disks);
        await vm.StartProcessAsync();
        return vm;
    }

    /// <summary>Kills QEMU without a chance to clean up and starts it again on the same sockets and disks (dirty bitmaps are lost).</summary>
    public async Task RestartAsync()
    {
        await KillAsync();
        await StartProcessAsync();
    }

    private async Task StartProcessAsync()
    {
        string qemu = NbdServerTests.RequiresToolAttribute.PathOf("qemu-system-x86_64")
            ?? throw new InvalidOperationException("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86).");
        var psi = new ProcessStartInfo(qemu)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-machine", "none", "-nodefaults", "-display", "none",
                     "-qmp", $"unix:{QmpSocketPath},server=on,wait=off",
                     "-qmp", $"unix:{ControlSocketPath},server=on,wait=off" })
            psi.ArgumentList.Add(arg);
        for (int i = 0; i < _disks.Length; i++)
        {
            psi.ArgumentList.Add("-drive");
            psi.ArgumentList.Add($"if=none,id=drive{i},file={_disks[i]},format=raw");
        }
        _process = Process.Start(psi)!;
        var stderr = _process.StandardError.ReadToEndAsync();
        _ = _process.StandardOutput.ReadToEndAsync();

        // Stale sockets of a killed QEMU remain as files, so readiness is a successful QMP handshake.
        var sw = Stopwatch.StartNew();
        try
        {
            while (true)
            {
                if (_process.HasExited) throw new InvalidOperationException($"QEMU exited with {_process.ExitCode}: {await stderr}");
                try
                {
                    _control = await QmpClient.ConnectAsync(ControlSocketPath, TimeSpan.FromSeconds(10), CancellationToken.None);
                    return;
                }
                catch (Exception ex) when (ex is SocketException or IOException or TimeoutException && sw.Elapsed < StartTimeout)
                {
                    await Task.Delay(20);
                }
            }
        }
        catch
        {
            // Nobody else holds this process yet: a failed start must not leave QEMU running.
            await KillAsync();
            throw;
        }
    }

    public Task<JsonElement> ExecuteAsync(string command, JsonObject? arguments = null) => _control!.ExecuteAsync(command, arguments, CancellationToken.None);

    /// <summary>Writes <paramref name="length"/> bytes of <paramref name="pattern"/> at <paramref name="offset"/> of drive <paramref name="drive"/> through QEMU's block layer.</summary>
    public async Task WriteAsync(long offset, long length, byte pattern, int drive = 0)
    {
        var output = await ExecuteAsync("human-monitor-command", new JsonObject
        {
            ["command-line"] = $"qemu-io drive{drive} \"write -P 0x{pattern:x2} {offset} {length}\"",
        });
        // qemu-io reports success on QEMU's stdout; the monitor only answers with errors such as an unknown drive.
        string text = output.GetString() ?? "";
        if (text.Length > 0) throw new InvalidOperationException($"qemu-io write failed: {text}");
    }

    public async Task<bool> IsRunningAsync() => (await ExecuteAsync("query-status")).GetProperty("running").GetBoolean();

    /// <summary>Names of the dirty bitmaps on the nodes of the given image.</summary>
    public async Task<List<string>> BitmapsAsync(int drive = 0)
    {
        var nodes = await ExecuteAsync("query-named-block-nodes", new JsonObject { ["flat"] = true });
        return nodes.EnumerateArray()
            .Where(n => n.TryGetProperty("file", out var f) && f.GetString() == _disks[drive] && n.TryGetProperty("dirty-bitmaps", out _))
            .SelectMany(n => n.GetProperty("dirty-bitmaps").EnumerateArray())
            .Where(b => b.TryGetProperty("name", out _))
            .Select(b => b.GetProperty("name").GetString()!)
            .Distinct().OrderBy(n => n, StringComparer.Ordinal).ToList();
    }

    /// <summary>What ASR left inside QEMU: exports, jobs and block nodes whose names start with "asr-".</summary>
    public async Task<List<string>> AsrObjectsAsync()
    {
        var found = new List<string>();
        foreach (var e in (await ExecuteAsync("query-block-exports")).EnumerateArray()) found.Add("export " + e.GetProperty("id").GetString());
        foreach (var j in (await ExecuteAsync("query-jobs")).EnumerateArray()) found.Add("job " + j.GetProperty("id").GetString());
        foreach (var n in (await ExecuteAsync("query-named-block-nodes", new JsonObject { ["flat"] = true })).EnumerateArray())
            if (n.GetProperty("node-name").GetString()!.StartsWith("asr-", StringComparison.Ordinal)) found.Add("node " + n.GetProperty("node-name").GetString());
        return found;
    }

    /// <summary>An item whose disks are this QEMU's drives, as the cycle would hand it to a tracker.</summary>
    public AsrProtectedItem Item(string name = "vm1") => new()
    {
        Id = Guid.NewGuid().ToString("N"),
        Name = name,
        QmpSocketPath = QmpSocketPath,
        Disks = _disks.Select((d, i) => new ProtectedDisk
        {
            DiskId = "disk" + i,
            Name = Path.GetFileName(d),
            SourcePath = d,
            SizeBytes = new FileInfo(d).Length,
            BlockSize = 4096,
        }).ToList(),
    };

    private async Task KillAsync()
    {
        if (_control is not null) await _control.DisposeAsync();
        _control = null;
        if (_process is null) return;
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        catch (InvalidOperationException) { /* already gone */ }
        _process.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync() => await KillAsync();

    public static string Sha256(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return Convert.ToHexString(SHA256.HashData(fs));
    }
}
