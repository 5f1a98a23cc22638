using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Replication.Sources.Images;
using AsrModule.Engine.Replication.Tracking.Qemu;

namespace AsrModule.Engine.Failover.Boot;

/// <summary>One disk of a drilled machine: the drill's NBD export (read-only backing) and the qcow2 overlay its writes go to.</summary>
public sealed record BootDisk(string Name, string NbdHost, int NbdPort, string ExportName, long SizeBytes, string OverlayPath);

/// <summary>
/// A drilled machine running under qemu-system-x86_64: its disks are the drill's NBD exports under qcow2 overlays of
/// its own (the drill's exports, and so Test-AsrTestFailover, never see the machine's writes), user-mode networking
/// with no route out (<c>restrict=on</c>) and only the asked guest ports forwarded to 127.0.0.1, the serial console
/// to a file, QMP on a unix socket in a private directory (screenshots, quit). KVM when /dev/kvm is usable, TCG
/// otherwise. Arguments go through <see cref="ProcessStartInfo.ArgumentList"/> and block devices as JSON
/// (<c>-blockdev {...}</c>), so no disk or export name can inject an option.
/// </summary>
public sealed class QemuBootMachine : IAsyncDisposable
{
    public const string QemuSystem = "qemu-system-x86_64";
    private const int MaximumStderr = 64 * 1024;
    private static readonly TimeSpan QuitWait = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly PrivateSocketDirectory _qmpDirectory;
    private readonly StringBuilder _stderr = new();
    private QmpClient? _qmp;
    private int _disposed;

    private QemuBootMachine(Process process, PrivateSocketDirectory qmpDirectory, string accelerator, IReadOnlyDictionary<int, int> ports, string consolePath)
    {
        _process = process;
        _qmpDirectory = qmpDirectory;
        Accelerator = accelerator;
        ForwardedPorts = ports;
        ConsolePath = consolePath;
    }

    /// <summary>kvm or tcg.</summary>
    public string Accelerator { get; }

    /// <summary>Guest TCP port → port on 127.0.0.1.</summary>
    public IReadOnlyDictionary<int, int> ForwardedPorts { get; }

    public string ConsolePath { get; }

    public bool HasExited
    {
        get
        {
            try { return _process.HasExited; }
            catch (InvalidOperationException) { return true; }
        }
    }

    public string Stderr
    {
        get { lock (_stderr) return _stderr.ToString().Trim(); }
    }

    public int? ExitCode => HasExited ? _process.ExitCode : null;

    /// <summary>kvm when /dev/kvm can be opened for reading and writing, else tcg (much slower, but everywhere).</summary>
    public static string ChooseAccelerator()
    {
        try
        {
            using var kvm = new FileStream("/dev/kvm", FileMode.Open, FileAccess.ReadWrite);
            return "kvm";
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return "tcg"; }
    }

    /// <summary>Creates the overlays and starts QEMU; returns once the process runs (readiness is the caller's to wait for).</summary>
    public static async Task<QemuBootMachine> StartAsync(string name, IReadOnlyList<BootDisk> disks, BootOptions options, string consolePath, CancellationToken ct)
    {
        string executable = LocateQemu();
        foreach (var disk in disks)
            await QemuTools.RunAsync(QemuTools.QemuImg, ["create", "-q", "-f", "qcow2", disk.OverlayPath, disk.SizeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)],
                QemuTools.MetadataTimeout, ct).ConfigureAwait(false);
        string accelerator = ChooseAccelerator();
        var ports = options.GuestPorts.ToDictionary(p => p, _ => FreeLoopbackPort());
        var qmpDirectory = PrivateSocketDirectory.Create("qmp.sock", "asr-boot-");
        var psi = QemuTools.StartInfo(executable, Arguments(name, disks, options, accelerator, ports, consolePath, qmpDirectory["qmp.sock"]));
        var process = new Process { StartInfo = psi };
        var machine = new QemuBootMachine(process, qmpDirectory, accelerator, ports, consolePath);
        process.ErrorDataReceived += (_, e) => machine.AppendStderr(e.Data);
        process.OutputDataReceived += (_, _) => { };
        try
        {
            process.Start();
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            qmpDirectory.Dispose();
            throw new AsrException(AsrErrorIds.BootHypervisorMissing, AsrErrorKind.ResourceUnavailable,
                $"{QemuSystem} could not be started ({ex.Message}). Reinstall the Debian package qemu-system-x86 and try again.", QemuSystem, ex);
        }
        process.StandardInput.Close();
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        return machine;
    }

    private static string LocateQemu()
    {
        try
        {
            return QemuTools.Locate(QemuSystem);
        }
        catch (AsrException ex)
        {
            throw new AsrException(AsrErrorIds.BootHypervisorMissing, AsrErrorKind.ResourceUnavailable,
                $"{QemuSystem} is not installed; boot verification runs the drilled machine under QEMU. Install the Debian package qemu-system-x86 " +
                "(apt-get install qemu-system-x86), or drill without -Boot.", QemuSystem, ex);
        }
    }

    internal static List<string> Arguments(string name, IReadOnlyList<BootDisk> disks, BootOptions options, string accelerator,
        IReadOnlyDictionary<int, int> ports, string consolePath, string qmpSocket)
    {
        var args = new List<string>
        {
            "-name", SafeName(name),
            "-machine", $"pc,accel={accelerator}",
            "-m", options.MemoryMiB.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-smp", options.Cpus.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-nodefaults", "-vga", "std", "-display", "none",
            "-chardev", $"file,id=console,path={EscapeOption(consolePath)}", "-serial", "chardev:console",
            "-qmp", $"unix:{EscapeOption(qmpSocket)},server=on,wait=off",
        };
        if (accelerator == "kvm") args.AddRange(["-cpu", "host"]);
        if (options.DiskBus == BootDiskBus.Sata) args.AddRange(["-device", "ahci,id=ahci"]);
        for (int i = 0; i < disks.Count; i++)
        {
            var d = disks[i];
            args.Add("-blockdev");
            args.Add(new JsonObject
            {
                ["driver"] = "nbd", ["node-name"] = $"nbd{i}", ["read-only"] = true, ["export"] = d.ExportName,
                ["server"] = new JsonObject { ["type"] = "inet", ["host"] = d.NbdHost, ["port"] = d.NbdPort.ToString(System.Globalization.CultureInfo.InvariantCulture) },
            }.ToJsonString());
            args.Add("-blockdev");
            args.Add(new JsonObject { ["driver"] = "raw", ["node-name"] = $"base{i}", ["read-only"] = true, ["file"] = $"nbd{i}" }.ToJsonString());
            args.Add("-blockdev");
            args.Add(new JsonObject { ["driver"] = "file", ["node-name"] = $"ovf{i}", ["filename"] = d.OverlayPath }.ToJsonString());
            args.Add("-blockdev");
            args.Add(new JsonObject { ["driver"] = "qcow2", ["node-name"] = $"disk{i}", ["file"] = $"ovf{i}", ["backing"] = $"base{i}" }.ToJsonString());
            args.Add("-device");
            args.Add(options.DiskBus switch
            {
                BootDiskBus.Ide => $"ide-hd,drive=disk{i},bus=ide.{i / 2},unit={i % 2},bootindex={i}",
                BootDiskBus.Sata => $"ide-hd,drive=disk{i},bus=ahci.{i},bootindex={i}",
                _ => $"virtio-blk-pci,drive=disk{i},bootindex={i}",
            });
        }
        // User-mode networking without a route out; only the asked guest ports come in, on the loopback address.
        string forwards = string.Concat(ports.Select(p => $",hostfwd=tcp:127.0.0.1:{p.Value}-:{p.Key}"));
        args.AddRange(["-netdev", $"user,id=net0,restrict=on{forwards}", "-device", $"{options.NicModel},netdev=net0,romfile="]);
        return args;
    }

    // QEMU's option syntax: a comma inside a value is written twice.
    private static string EscapeOption(string value) => value.Replace(",", ",,", StringComparison.Ordinal);

    private static string SafeName(string name) => new(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_').ToArray());

    private static int FreeLoopbackPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void AppendStderr(string? line)
    {
        if (line is null) return;
        lock (_stderr)
        {
            if (_stderr.Length < MaximumStderr) _stderr.AppendLine(line);
        }
    }

    private async Task<QmpClient> QmpAsync(CancellationToken ct)
    {
        if (_qmp is { IsUsable: true }) return _qmp;
        string socket = _qmpDirectory["qmp.sock"];
        var waited = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            if (HasExited) throw new IOException($"QEMU exited before its QMP socket appeared: {Stderr}");
            if (waited.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException("QEMU's QMP socket did not appear within 30 s.");
            await Task.Delay(50, ct).ConfigureAwait(false);
        }
        _qmp = await QmpClient.ConnectAsync(socket, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
        _qmp.CommandTimeout = TimeSpan.FromSeconds(20);
        return _qmp;
    }

    /// <summary>Saves the machine's screen as PNG (QMP screendump, QEMU 7.1 or later). Returns an error text instead of throwing.</summary>
    public async Task<string?> ScreenshotAsync(string path, CancellationToken ct)
    {
        try
        {
            var qmp = await QmpAsync(ct).ConfigureAwait(false);
            await qmp.ExecuteAsync("screendump", new JsonObject { ["filename"] = path, ["format"] = "png" }, ct).ConfigureAwait(false);
            return File.Exists(path) ? null : "QEMU reported the screenshot saved, but there is no file";
        }
        catch (Exception ex) when (ex is IOException or TimeoutException or QmpException or SocketException or System.Text.Json.JsonException)
        {
            return ex.Message;
        }
    }

    /// <summary>Powers the machine off (QMP quit), then kills QEMU if it lingers; the overlays stay for the drill's cleanup.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (!HasExited)
        {
            try
            {
                using var quick = new CancellationTokenSource(QuitWait);
                var qmp = await QmpAsync(quick.Token).ConfigureAwait(false);
                await qmp.ExecuteAsync("quit", null, quick.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or TimeoutException or QmpException or SocketException or OperationCanceledException or System.Text.Json.JsonException) { }
            try
            {
                using var wait = new CancellationTokenSource(QuitWait);
                await _process.WaitForExitAsync(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) { QemuTools.Kill(_process); }
        }
        if (_qmp is not null) await _qmp.DisposeAsync().ConfigureAwait(false);
        _process.Dispose();
        _qmpDirectory.Dispose();
    }
}
