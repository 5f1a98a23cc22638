using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace AsrModule.Engine.Exports;

/// <summary>
/// A Network Block Device server: presents <see cref="IBlockDevice"/>s (recovered disks, usually under
/// a copy-on-write overlay) over TCP so that a hypervisor or tool (qemu, nbdkit/libnbd clients, the
/// Linux nbd driver) can attach them at once, without copying.
/// </summary>
/// <remarks>
/// <para>Protocol: fixed newstyle handshake (NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE|NO_ZEROES) with
/// <c>NBD_OPT_EXPORT_NAME</c>, <c>NBD_OPT_GO</c>, <c>NBD_OPT_INFO</c> (NBD_INFO_EXPORT, and
/// NBD_INFO_BLOCK_SIZE 1/4096/32 MiB when asked), <c>NBD_OPT_LIST</c> and <c>NBD_OPT_ABORT</c>; every
/// other option (STARTTLS, STRUCTURED_REPLY, *_META_CONTEXT, EXTENDED_HEADERS…) gets
/// <c>NBD_REP_ERR_UNSUP</c>, so clients fall back to simple replies. An unknown name gets
/// <c>NBD_REP_ERR_UNKNOWN</c> (GO/INFO) or a dropped connection (EXPORT_NAME, which cannot fail).
/// The empty (default) name selects the export when the server has exactly one.</para>
/// <para>Transmission: simple replies to READ, WRITE, FLUSH, DISC, TRIM and WRITE_ZEROES. Writable
/// exports advertise SEND_FLUSH, SEND_FUA (FUA = write, then <see cref="IBlockDevice.FlushAsync"/>),
/// SEND_TRIM and SEND_WRITE_ZEROES; read-only ones advertise READ_ONLY and CAN_MULTI_CONN and answer
/// writes, trims and zeroing with EPERM. TRIM is a successful no-op (the protocol lets the server
/// ignore it, and under an overlay writing zeros would only grow the overlay); WRITE_ZEROES really
/// writes zeros. Errors: EINVAL for reads/trims outside the disk and for unknown commands or flags,
/// ENOSPC for writes/zeroing outside the disk (as the spec asks), EOVERFLOW for a READ/WRITE longer
/// than 32 MiB (a WRITE's payload is still consumed so the stream stays in sync), EIO for device
/// failures. Up to <see cref="MaxRequestsInFlight"/> requests per connection run concurrently; replies
/// may therefore come out of order (matched by handle), and are written whole under a lock.</para>
/// <para>The server does not own the devices: disposing it leaves them open.</para>
/// </remarks>
public sealed class NbdServer : IAsyncDisposable
{
    /// <summary>Requests processed concurrently per connection.</summary>
    public const int MaxRequestsInFlight = 8;

    /// <summary>Longest READ/WRITE payload accepted (advertised as the maximum block size).</summary>
    public const int MaxPayloadBytes = (int)NbdProtocol.MaximumPayload;

    private readonly Dictionary<string, IBlockDevice> _exports;
    private readonly IPEndPoint _bind;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<long, Task> _connections = new();
    private Socket? _listener;
    private Task _acceptLoop = Task.CompletedTask;
    private IPEndPoint? _endPoint;
    private long _nextConnectionId;
    private int _state; // 0 = created, 1 = started, 2 = disposed

    /// <param name="exports">Export name → device. Names are case-sensitive UTF-8 strings of at most 4096 bytes.</param>
    /// <param name="bind">Address to listen on; default 127.0.0.1 with an ephemeral port.</param>
    /// <param name="logger">Connection and error diagnostics.</param>
    public NbdServer(IReadOnlyDictionary<string, IBlockDevice> exports, IPEndPoint? bind = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(exports);
        _exports = new Dictionary<string, IBlockDevice>(StringComparer.Ordinal);
        foreach (var (name, device) in exports)
        {
            ArgumentNullException.ThrowIfNull(name, nameof(exports));
            if (device is null) throw new ArgumentException($"Export '{name}' has no device.", nameof(exports));
            if (name.Contains('\0') || Encoding.UTF8.GetByteCount(name) > NbdProtocol.MaximumNameBytes)
                throw new ArgumentException($"Export name '{name}' is not a valid NBD name (no NUL, at most 4096 UTF-8 bytes).", nameof(exports));
            _exports.Add(name, device);
        }
        _bind = bind ?? new IPEndPoint(IPAddress.Loopback, 0);
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The exports served, by name.</summary>
    public IReadOnlyDictionary<string, IBlockDevice> Exports => _exports;

    /// <summary>The address actually bound (with the real port when 0 was asked); valid after <see cref="StartAsync"/>.</summary>
    public IPEndPoint EndPoint => _endPoint ?? throw new InvalidOperationException("The NBD server has not been started.");

    /// <summary>The TCP port listened on; valid after <see cref="StartAsync"/>.</summary>
    public int Port => EndPoint.Port;

    /// <summary>Connections currently open (handshaking or transmitting).</summary>
    public int ConnectionCount => _connections.Count;

    /// <summary>Binds and starts accepting connections. The token only governs start-up; <see cref="DisposeAsync"/> stops the server.</summary>
    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _state) == 2, this);
        if (Interlocked.CompareExchange(ref _state, 1, 0) != 0)
            throw new InvalidOperationException("The NBD server is already started.");

        var listener = new Socket(_bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            if (_bind.AddressFamily == AddressFamily.InterNetworkV6 && _bind.Address.Equals(IPAddress.IPv6Any))
                listener.DualMode = true;
            listener.Bind(_bind);
            listener.Listen(128);
        }
        catch
        {
            listener.Dispose();
            Volatile.Write(ref _state, 0);
            throw;
        }
        _listener = listener;
        _endPoint = (IPEndPoint)listener.LocalEndPoint!;
        _logger.LogInformation("NBD server listening on {EndPoint} with exports {Exports}", _endPoint, string.Join(", ", _exports.Keys));
        _acceptLoop = Task.Run(() => AcceptLoopAsync(listener, _stopping.Token), CancellationToken.None);
        return Task.CompletedTask;
    }

    /// <summary>The URI qemu-img, qemu-io, nbdinfo and nbdcopy accept for an export: <c>nbd://127.0.0.1:PORT/name</c>.</summary>
    public Uri ExportUri(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_exports.ContainsKey(name)) throw new ArgumentException($"No export named '{name}'.", nameof(name));
        var ep = EndPoint;
        var address = ep.Address;
        if (address.Equals(IPAddress.Any)) address = IPAddress.Loopback;
        else if (address.Equals(IPAddress.IPv6Any)) address = IPAddress.IPv6Loopback;
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        string host = address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
        return new Uri($"nbd://{host}:{ep.Port}/{Uri.EscapeDataString(name)}");
    }

    internal bool TryGetExport(string name, out string resolvedName, out IBlockDevice device)
    {
        if (_exports.TryGetValue(name, out device!))
        {
            resolvedName = name;
            return true;
        }
        if (name.Length == 0 && _exports.Count == 1)
        {
            (resolvedName, device) = _exports.First();
            return true;
        }
        resolvedName = name;
        return false;
    }

    internal IEnumerable<string> ExportNames => _exports.Keys;

    private async Task AcceptLoopAsync(Socket listener, CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception ex) when (stopping.IsCancellationRequested && ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                break;
            }
            catch (SocketException ex)
            {
                // Transient (e.g. out of descriptors, connection reset before accept): keep serving.
                _logger.LogWarning(ex, "NBD accept failed on {EndPoint}", _endPoint);
                try { await Task.Delay(100, stopping).ConfigureAwait(false); }
                catch (OperationCanceledException) { break; }
                continue;
            }

            client.NoDelay = true;
            long id = Interlocked.Increment(ref _nextConnectionId);
            var connection = new NbdConnection(this, client, id, _logger, stopping);
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _connections[id] = tcs.Task;
            _ = Task.Run(async () =>
            {
                try { await connection.RunAsync().ConfigureAwait(false); }
                catch (Exception ex) { _logger.LogError(ex, "NBD connection {Id} failed", id); }
                finally
                {
                    _connections.TryRemove(id, out _);
                    tcs.TrySetResult();
                }
            }, CancellationToken.None);
        }
    }

    /// <summary>Stops listening, ends every connection (in-flight requests are given a moment to finish) and waits for them.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _state, 2) == 2) return;
        _stopping.Cancel();
        _listener?.Dispose();
        try { await _acceptLoop.ConfigureAwait(false); }
        catch (Exception ex) { _logger.LogDebug(ex, "NBD accept loop ended with an error"); }
        // Connections watch the stopping token; new ones cannot appear once the accept loop is done.
        await Task.WhenAll(_connections.Values).ConfigureAwait(false);
        _stopping.Dispose();
        if (_endPoint is not null) _logger.LogInformation("NBD server on {EndPoint} stopped", _endPoint);
    }
}
