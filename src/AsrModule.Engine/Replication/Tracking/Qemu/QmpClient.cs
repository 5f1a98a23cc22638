using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AsrModule.Engine.Replication.Tracking.Qemu;

/// <summary>
/// A QMP (QEMU Machine Protocol) connection over a unix socket: reads the greeting, enters command
/// mode with qmp_capabilities, then runs one command at a time. Asynchronous events are skipped;
/// QEMU's errors become <see cref="QmpException"/>s.
/// </summary>
/// <remarks>
/// A QMP socket serves one client at a time: while another client (e.g. libvirt) holds it, QEMU accepts
/// the connection but never greets, which is why the greeting has its own timeout.
/// </remarks>
public sealed class QmpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private long _nextId;
    private bool _broken;

    private QmpClient(string socketPath, Socket socket, NetworkStream stream, StreamReader reader, string version)
    {
        SocketPath = socketPath;
        _socket = socket;
        _stream = stream;
        _reader = reader;
        QemuVersion = version;
    }

    public string SocketPath { get; }

    /// <summary>QEMU's version from the greeting, e.g. "7.2.22".</summary>
    public string QemuVersion { get; }

    /// <summary>Longest wait for one command's answer; QEMU answers block-layer commands in milliseconds, so a long wait means it hangs.</summary>
    public TimeSpan CommandTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// False once a command was interrupted (cancelled, timed out, connection lost): the stream may then
    /// hold a half-read answer, so the connection is not used again.
    /// </summary>
    public bool IsUsable => !_broken;

    public static async Task<QmpClient> ConnectAsync(string socketPath, TimeSpan greetingTimeout, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), ct).ConfigureAwait(false);
            var stream = new NetworkStream(socket, ownsSocket: false);
            var reader = new StreamReader(stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false, bufferSize: 64 * 1024);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(greetingTimeout);
            string? greeting;
            try
            {
                greeting = await reader.ReadLineAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"QEMU did not greet on {socketPath} within {greetingTimeout.TotalSeconds:0} s: another client (libvirt, a second agent) probably holds this QMP socket, which serves one client at a time.");
            }
            if (greeting is null) throw new IOException($"{socketPath} closed the connection before the QMP greeting.");
            string version;
            using (var doc = JsonDocument.Parse(greeting))
            {
                if (!doc.RootElement.TryGetProperty("QMP", out var qmp)) throw new IOException($"{socketPath} is not a QMP socket (greeting: {Truncate(greeting)}).");
                version = qmp.TryGetProperty("version", out var v) && v.TryGetProperty("qemu", out var q)
                    ? $"{q.GetProperty("major").GetInt32()}.{q.GetProperty("minor").GetInt32()}.{q.GetProperty("micro").GetInt32()}"
                    : "unknown";
            }
            var client = new QmpClient(socketPath, socket, stream, reader, version);
            await client.ExecuteAsync("qmp_capabilities", null, ct).ConfigureAwait(false);
            return client;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="command"/> and returns its "return" value.</summary>
    /// <exception cref="QmpException">QEMU refused the command.</exception>
    public async Task<JsonElement> ExecuteAsync(string command, JsonObject? arguments, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_broken) throw new IOException($"The QMP connection to {SocketPath} was interrupted earlier and cannot be used.");
            long id = ++_nextId;
            var message = new JsonObject { ["execute"] = command, ["id"] = id };
            if (arguments is not null) message["arguments"] = arguments.DeepClone();
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(CommandTimeout);
            try
            {
                await _stream.WriteAsync(Encoding.UTF8.GetBytes(message.ToJsonString() + "\n"), timeout.Token).ConfigureAwait(false);
                while (true)
                {
                    string line = await _reader.ReadLineAsync(timeout.Token).ConfigureAwait(false)
                        ?? throw new IOException($"QEMU closed the QMP connection ({SocketPath}) during {command}.");
                    using var doc = JsonDocument.Parse(line);
                    var root = doc.RootElement;
                    // Events (JOB_STATUS_CHANGE, STOP, ...) arrive between answers; this client polls state instead.
                    if (root.TryGetProperty("event", out _)) continue;
                    // An answer without id is QEMU rejecting a message it could not parse, which can only be this one.
                    if (root.TryGetProperty("id", out var answerId) && !(answerId.ValueKind == JsonValueKind.Number && answerId.GetInt64() == id)) continue;
                    if (root.TryGetProperty("return", out var result)) return result.Clone();
                    if (root.TryGetProperty("error", out var error))
                        throw new QmpException(command,
                            error.TryGetProperty("class", out var c) ? c.GetString() ?? "" : "",
                            error.TryGetProperty("desc", out var d) ? d.GetString() ?? "" : Truncate(line));
                    throw new IOException($"Unexpected QMP message during {command}: {Truncate(line)}");
                }
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                _broken = true;
                throw new TimeoutException($"QEMU did not answer {command} within {CommandTimeout.TotalSeconds:0} s ({SocketPath}).");
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or JsonException)
            {
                _broken = true;
                throw;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private static string Truncate(string s) => s.Length <= 200 ? s : s[..200] + "...";

    public ValueTask DisposeAsync()
    {
        _broken = true;
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
