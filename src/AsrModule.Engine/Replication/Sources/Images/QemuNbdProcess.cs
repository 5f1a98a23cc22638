using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;

namespace AsrModule.Engine.Replication.Sources.Images;

/// <summary>
/// A qemu-nbd child process serving one image on a unix socket in a private directory, and the one NBD connection
/// the engine holds to it.
/// </summary>
/// <remarks>
/// <para>Started as a child rather than with <c>--fork</c>: the engine then knows its process id, sees it exit
/// during start-up (and reports its stderr), and can stop it. Without <c>--persistent</c> qemu-nbd exits when the
/// last client disconnects, so an engine that dies (closing its connection) leaves no server behind.</para>
/// <para>Stopping is graceful first (disconnect, then SIGTERM): qemu-nbd then flushes the image and stores its
/// persistent dirty bitmaps. SIGKILL of a writable qcow2 server would leave them "in-use", i.e. unusable.</para>
/// </remarks>
internal sealed class QemuNbdProcess : IAsyncDisposable, IDisposable
{
    private const string SocketName = "nbd.sock";
    private const int MaximumStderr = 64 * 1024;
    private const int SigTerm = 15;
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StartPoll = TimeSpan.FromMilliseconds(10);
    // Writing back a writeback cache and bitmaps of a large image can take a while.
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan TerminateTimeout = TimeSpan.FromSeconds(10);

    private readonly Process _process;
    private readonly PrivateSocketDirectory _directory;
    private readonly StringBuilder _stderr = new();
    private NbdClient? _client;
    private int _disposed;

    private QemuNbdProcess(Process process, PrivateSocketDirectory directory)
    {
        _process = process;
        _directory = directory;
    }

    /// <summary>The connection to the served image.</summary>
    public NbdClient Client => _client ?? throw new InvalidOperationException("qemu-nbd is not connected.");

    /// <summary>What qemu-nbd has written to stderr so far (trimmed), for messages.</summary>
    public string Stderr
    {
        get { lock (_stderr) return _stderr.ToString().Trim(); }
    }

    /// <summary>True once the server is gone (it crashed, or was stopped).</summary>
    public bool HasExited
    {
        get
        {
            try { return _process.HasExited; }
            catch (InvalidOperationException) { return true; }
        }
    }

    /// <summary>
    /// Starts qemu-nbd with <paramref name="arguments"/> (image and options, without socket or sharing) and connects
    /// with <paramref name="clientOptions"/>. Failures are reported as <paramref name="failure"/> with qemu-nbd's stderr.
    /// </summary>
    public static async Task<QemuNbdProcess> StartAsync(IReadOnlyList<string> arguments, NbdClientOptions clientOptions, QemuToolFailure failure, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        string executable = QemuTools.Locate(QemuTools.QemuNbd);
        var directory = PrivateSocketDirectory.Create(SocketName);
        string socketPath = directory[SocketName];
        var psi = QemuTools.StartInfo(executable, [.. arguments, $"--socket={socketPath}", "--shared=1"]);
        var process = new Process { StartInfo = psi };
        var server = new QemuNbdProcess(process, directory);
        process.ErrorDataReceived += (_, e) => server.AppendStderr(e.Data);
        process.OutputDataReceived += (_, _) => { };
        try
        {
            try
            {
                process.Start();
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
            {
                throw new AsrException(AsrErrorIds.DiskImageToolMissing, AsrErrorKind.ResourceUnavailable,
                    $"qemu-nbd could not be started ({ex.Message}). Reinstall the Debian package qemu-utils and try again.", QemuTools.QemuNbd, ex);
            }
            process.StandardInput.Close();
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
            server._client = await server.ConnectAsync(socketPath, clientOptions, failure, cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            server.Dispose();
            throw;
        }
    }

    /// <summary>Waits until the socket accepts a connection, reporting an early exit with qemu-nbd's stderr.</summary>
    private async Task<NbdClient> ConnectAsync(string socketPath, NbdClientOptions options, QemuToolFailure failure, CancellationToken cancellationToken)
    {
        var waited = Stopwatch.StartNew();
        while (true)
        {
            if (_process.HasExited) throw failure.ToException(QemuTools.QemuNbd, await FinalStderrAsync().ConfigureAwait(false), _process.ExitCode);
            if (File.Exists(socketPath))
            {
                try
                {
                    return await NbdClient.ConnectUnixAsync(socketPath, "", options, cancellationToken).ConfigureAwait(false);
                }
                catch (SocketException) when (!_process.HasExited)
                {
                    // Bound but not listening yet.
                }
                catch (Exception ex) when (ex is IOException or SocketException)
                {
                    // The handshake failed: the server refused something asked for, or exited half-way.
                    await WaitForExitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
                    string said = Stderr;
                    throw failure.ToException(QemuTools.QemuNbd, said.Length > 0 ? $"{said} ({ex.Message})" : ex.Message);
                }
            }
            if (waited.Elapsed > StartTimeout)
                throw new AsrException(AsrErrorIds.DiskImageFailed, AsrErrorKind.OperationTimeout,
                    $"qemu-nbd did not start serving '{failure.Target}' within {StartTimeout.TotalSeconds:0} s{(Stderr.Length > 0 ? ": " + Stderr : "")}. " +
                    "Check that the image and its file system respond (a hung NFS mount, a failing disk) and try again.", failure.Target);
            await Task.Delay(StartPoll, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>stderr once the process has exited: the asynchronous reader may still be delivering the last lines.</summary>
    private async Task<string> FinalStderrAsync()
    {
        try
        {
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            await _process.WaitForExitAsync(grace.Token).ConfigureAwait(false); // also waits for the end of the redirected streams
        }
        catch (OperationCanceledException) { }
        return Stderr;
    }

    private void AppendStderr(string? line)
    {
        if (line is null) return;
        lock (_stderr)
        {
            if (_stderr.Length < MaximumStderr) _stderr.AppendLine(line);
        }
    }

    /// <summary>Disconnects, lets qemu-nbd exit by itself (flushing the image), then SIGTERM, then SIGKILL. Idempotent.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (_client is not null) await _client.DisposeAsync().ConfigureAwait(false);
        if (!await WaitForExitAsync(StopTimeout).ConfigureAwait(false))
        {
            Terminate();
            if (!await WaitForExitAsync(TerminateTimeout).ConfigureAwait(false)) QemuTools.Kill(_process);
        }
        _process.Dispose();
        _directory.Dispose();
    }

    /// <inheritdoc cref="DisposeAsync"/>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _client?.Dispose();
        if (!WaitForExit(_client is null ? TimeSpan.Zero : StopTimeout))
        {
            Terminate();
            if (!WaitForExit(TerminateTimeout)) QemuTools.Kill(_process);
        }
        _process.Dispose();
        _directory.Dispose();
    }

    private async Task<bool> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            using var timer = new CancellationTokenSource(timeout);
            await _process.WaitForExitAsync(timer.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) { return false; }
        catch (InvalidOperationException) { return true; } // never started
    }

    private bool WaitForExit(TimeSpan timeout)
    {
        try { return _process.WaitForExit(timeout); }
        catch (InvalidOperationException) { return true; } // never started
        catch (System.ComponentModel.Win32Exception) { return true; }
    }

    /// <summary>SIGTERM: qemu-nbd closes the image cleanly (Process.Kill would be SIGKILL).</summary>
    private void Terminate()
    {
        try
        {
            if (_process.HasExited) return;
            if (OperatingSystem.IsWindows()) { _process.Kill(); return; }
            _ = kill(_process.Id, SigTerm);
        }
        catch (InvalidOperationException) { /* never started or gone */ }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);
}
