using System.Buffers;
using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Logging;
using static AsrModule.Engine.Exports.NbdProtocol;

namespace AsrModule.Engine.Exports;

/// <summary>A client that broke a mandatory rule of the protocol; the connection is dropped.</summary>
internal sealed class NbdProtocolException(string message) : Exception(message);

/// <summary>One client connection of an <see cref="NbdServer"/>: handshake, then the transmission phase.</summary>
internal sealed class NbdConnection
{
    /// <summary>A client must have chosen an export within this time.</summary>
    internal static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(30);

    /// <summary>When the server stops, in-flight requests get this long before they are cancelled.</summary>
    internal static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Reads up to this size are sent as one buffer (header + data); larger ones as two writes.</summary>
    private const int CombinedReplyLimit = 256 * 1024;

    private const int ZeroChunk = 256 * 1024;
    private static readonly byte[] Zeroes = new byte[ZeroChunk];
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly NbdServer _server;
    private readonly Socket _socket;
    private readonly NetworkStream _network;
    private readonly BufferedStream _input;
    private readonly long _id;
    private readonly ILogger _logger;
    private readonly CancellationToken _stopping;
    private readonly string _remote;

    // Transmission state.
    private readonly CancellationTokenSource _abort = new();
    private readonly SemaphoreSlim _slots = new(NbdServer.MaxRequestsInFlight, NbdServer.MaxRequestsInFlight);
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private IBlockDevice _device = null!;
    private string _exportName = "";
    private bool _readOnly;

    public NbdConnection(NbdServer server, Socket socket, long id, ILogger logger, CancellationToken stopping)
    {
        _server = server;
        _socket = socket;
        _network = new NetworkStream(socket, ownsSocket: true);
        // Requests are read through a buffer (28-byte headers); replies go straight to the socket.
        _input = new BufferedStream(_network, 64 * 1024);
        _id = id;
        _logger = logger;
        _stopping = stopping;
        _remote = socket.RemoteEndPoint?.ToString() ?? "?";
    }

    public async Task RunAsync()
    {
        _logger.LogDebug("NBD connection {Id} from {Remote}", _id, _remote);
        try
        {
            bool go;
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stopping))
            {
                handshake.CancelAfter(HandshakeTimeout);
                try
                {
                    go = await HandshakeAsync(handshake.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (handshake.IsCancellationRequested && !_stopping.IsCancellationRequested)
                {
                    throw new NbdProtocolException($"no export chosen within {HandshakeTimeout.TotalSeconds:0} s");
                }
            }
            if (go) await TransmissionAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested || _abort.IsCancellationRequested)
        {
            _logger.LogDebug("NBD connection {Id} closed by server shutdown", _id);
        }
        catch (NbdProtocolException ex)
        {
            _logger.LogWarning("NBD connection {Id} from {Remote} dropped: {Reason}", _id, _remote, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or SocketException or EndOfStreamException or ObjectDisposedException)
        {
            _logger.LogDebug(ex, "NBD connection {Id} from {Remote} lost", _id, _remote);
        }
        finally
        {
            _abort.Cancel();
            _input.Dispose(); // closes the NetworkStream and the socket
            _abort.Dispose();
        }
    }

    // ---------------------------------------------------------------- handshake

    /// <summary>Option haggling; true when an export was chosen and transmission starts.</summary>
    private async Task<bool> HandshakeAsync(CancellationToken ct)
    {
        byte[] hello = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(hello, NbdMagic);
        BinaryPrimitives.WriteUInt64BigEndian(hello.AsSpan(8), IHaveOpt);
        BinaryPrimitives.WriteUInt16BigEndian(hello.AsSpan(16), FlagFixedNewstyle | FlagNoZeroes);
        await _network.WriteAsync(hello, ct).ConfigureAwait(false);

        byte[] header = new byte[16];
        await _input.ReadExactlyAsync(header.AsMemory(0, 4), ct).ConfigureAwait(false);
        uint clientFlags = BinaryPrimitives.ReadUInt32BigEndian(header);
        if ((clientFlags & ~(ClientFlagFixedNewstyle | ClientFlagNoZeroes)) != 0)
            throw new NbdProtocolException($"unknown client flags 0x{clientFlags:x}");
        bool noZeroes = (clientFlags & ClientFlagNoZeroes) != 0;

        while (true)
        {
            await _input.ReadExactlyAsync(header, ct).ConfigureAwait(false);
            if (BinaryPrimitives.ReadUInt64BigEndian(header) != IHaveOpt)
                throw new NbdProtocolException("bad option magic");
            uint option = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
            if (length > MaximumOptionLength)
                throw new NbdProtocolException($"{OptionName(option)} with {length} bytes of data");

            byte[] data = ArrayPool<byte>.Shared.Rent((int)Math.Max(length, 1));
            try
            {
                var payload = data.AsMemory(0, (int)length);
                await _input.ReadExactlyAsync(payload, ct).ConfigureAwait(false);
                _logger.LogTrace("NBD connection {Id}: {Option} ({Length} bytes)", _id, OptionName(option), length);
                switch (option)
                {
                    case OptExportName:
                    {
                        string name = DecodeName(payload.Span) ?? throw new NbdProtocolException("export name is not valid UTF-8");
                        if (!_server.TryGetExport(name, out var resolved, out var device))
                            throw new NbdProtocolException($"NBD_OPT_EXPORT_NAME for unknown export '{name}'");
                        Select(resolved, device);
                        byte[] reply = new byte[10 + (noZeroes ? 0 : ExportNameTrailerZeroes)];
                        BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)device.Length);
                        BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), TransmissionFlags(device));
                        await _network.WriteAsync(reply, ct).ConfigureAwait(false);
                        return true;
                    }
                    case OptAbort:
                        try { await SendOptionReplyAsync(option, RepAck, default, ct).ConfigureAwait(false); }
                        catch (IOException) { } // the client may already have gone
                        _logger.LogDebug("NBD connection {Id}: client aborted the handshake", _id);
                        return false;
                    case OptList:
                        if (length != 0)
                        {
                            await SendOptionErrorAsync(option, RepErrInvalid, "NBD_OPT_LIST takes no data", ct).ConfigureAwait(false);
                            break;
                        }
                        foreach (string name in _server.ExportNames)
                        {
                            byte[] entry = new byte[4 + Encoding.UTF8.GetByteCount(name)];
                            BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)(entry.Length - 4));
                            Encoding.UTF8.GetBytes(name, entry.AsSpan(4));
                            await SendOptionReplyAsync(option, RepServer, entry, ct).ConfigureAwait(false);
                        }
                        await SendOptionReplyAsync(option, RepAck, default, ct).ConfigureAwait(false);
                        break;
                    case OptInfo:
                    case OptGo:
                        if (await InfoOrGoAsync(option, payload, ct).ConfigureAwait(false)) return true;
                        break;
                    default:
                        // Notably STRUCTURED_REPLY and SET_META_CONTEXT: refusing them keeps clients on simple replies.
                        await SendOptionErrorAsync(option, RepErrUnsup, $"{OptionName(option)} is not supported by this server", ct).ConfigureAwait(false);
                        break;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(data);
            }
        }
    }

    /// <summary>NBD_OPT_INFO / NBD_OPT_GO; true when GO succeeded.</summary>
    private async Task<bool> InfoOrGoAsync(uint option, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        // Data: u32 name length, name, u16 number of info requests, u16 × n info types.
        if (payload.Length < 6)
        {
            await SendOptionErrorAsync(option, RepErrInvalid, "option data too short", ct).ConfigureAwait(false);
            return false;
        }
        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(payload.Span);
        if (nameLength > (uint)payload.Length - 6)
        {
            await SendOptionErrorAsync(option, RepErrInvalid, "name length exceeds option data", ct).ConfigureAwait(false);
            return false;
        }
        int requestsAt = 4 + (int)nameLength;
        int requestCount = BinaryPrimitives.ReadUInt16BigEndian(payload.Span[requestsAt..]);
        if (payload.Length != requestsAt + 2 + 2 * requestCount)
        {
            await SendOptionErrorAsync(option, RepErrInvalid, "information request list does not match option length", ct).ConfigureAwait(false);
            return false;
        }
        string? name = DecodeName(payload.Span.Slice(4, (int)nameLength));
        if (name is null)
        {
            await SendOptionErrorAsync(option, RepErrInvalid, "export name is not valid UTF-8", ct).ConfigureAwait(false);
            return false;
        }
        bool wantBlockSize = false;
        for (int i = 0; i < requestCount; i++)
            wantBlockSize |= BinaryPrimitives.ReadUInt16BigEndian(payload.Span[(requestsAt + 2 + 2 * i)..]) == InfoBlockSize;

        if (!_server.TryGetExport(name, out var resolved, out var device))
        {
            _logger.LogDebug("NBD connection {Id}: {Option} for unknown export '{Name}'", _id, OptionName(option), name);
            await SendOptionErrorAsync(option, RepErrUnknown, $"no export named '{name}'", ct).ConfigureAwait(false);
            return false;
        }

        byte[] export = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(export, InfoExport);
        BinaryPrimitives.WriteUInt64BigEndian(export.AsSpan(2), (ulong)device.Length);
        BinaryPrimitives.WriteUInt16BigEndian(export.AsSpan(10), TransmissionFlags(device));
        await SendOptionReplyAsync(option, RepInfo, export, ct).ConfigureAwait(false);
        if (wantBlockSize)
        {
            byte[] sizes = new byte[14];
            BinaryPrimitives.WriteUInt16BigEndian(sizes, InfoBlockSize);
            BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(2), MinimumBlockSize);
            BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(6), PreferredBlockSize);
            BinaryPrimitives.WriteUInt32BigEndian(sizes.AsSpan(10), MaximumPayload);
            await SendOptionReplyAsync(option, RepInfo, sizes, ct).ConfigureAwait(false);
        }
        await SendOptionReplyAsync(option, RepAck, default, ct).ConfigureAwait(false);
        if (option != OptGo) return false;
        Select(resolved, device);
        return true;
    }

    private void Select(string name, IBlockDevice device)
    {
        _device = device;
        _exportName = name;
        _readOnly = device.IsReadOnly;
        _logger.LogInformation("NBD connection {Id} from {Remote} attached export '{Name}' ({Length} bytes, {Mode})",
            _id, _remote, name, device.Length, _readOnly ? "read-only" : "read-write");
    }

    internal static ushort TransmissionFlags(IBlockDevice device) => device.IsReadOnly
        ? (ushort)(TxHasFlags | TxReadOnly | TxSendFlush | TxSendFua | TxCanMultiConn)
        : (ushort)(TxHasFlags | TxSendFlush | TxSendFua | TxSendTrim | TxSendWriteZeroes);

    private static string? DecodeName(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > MaximumNameBytes) return null;
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { return null; }
    }

    private Task SendOptionErrorAsync(uint option, uint reply, string message, CancellationToken ct) =>
        SendOptionReplyAsync(option, reply, Encoding.UTF8.GetBytes(message), ct);

    private async Task SendOptionReplyAsync(uint option, uint reply, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(OptionReplyHeaderSize + data.Length);
        try
        {
            BinaryPrimitives.WriteUInt64BigEndian(buffer, OptionReplyMagic);
            BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(8), option);
            BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(12), reply);
            BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(16), (uint)data.Length);
            data.Span.CopyTo(buffer.AsSpan(OptionReplyHeaderSize));
            await _network.WriteAsync(buffer.AsMemory(0, OptionReplyHeaderSize + data.Length), ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    // ---------------------------------------------------------------- transmission

    private readonly record struct Request(ushort Flags, ushort Type, ulong Handle, ulong Offset, uint Length, byte[]? Payload, uint Error);

    private async Task TransmissionAsync()
    {
        // On server shutdown: stop reading requests at once, give in-flight ones DrainTimeout, then cancel them.
        using var onStop = _stopping.Register(static state => ((CancellationTokenSource)state!).CancelAfter(DrainTimeout), _abort);
        byte[] header = new byte[RequestHeaderSize];
        try
        {
            while (true)
            {
                int got = await _input.ReadAtLeastAsync(header, RequestHeaderSize, throwOnEndOfStream: false, _stopping).ConfigureAwait(false);
                if (got == 0)
                {
                    _logger.LogDebug("NBD connection {Id}: client closed without NBD_CMD_DISC", _id);
                    return;
                }
                if (got < RequestHeaderSize) throw new NbdProtocolException("connection closed mid-request");
                if (BinaryPrimitives.ReadUInt32BigEndian(header) != RequestMagic)
                    throw new NbdProtocolException("bad request magic");
                ushort flags = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(4));
                ushort type = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(6));
                ulong handle = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(8));
                ulong offset = BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(16));
                uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(24));

                if (type == CmdDisc)
                {
                    _logger.LogDebug("NBD connection {Id}: NBD_CMD_DISC", _id);
                    return;
                }

                // Bounded parallelism: wait for a slot before reading (and buffering) a write payload.
                await _slots.WaitAsync(_stopping).ConfigureAwait(false);
                byte[]? payload = null;
                uint error = 0;
                try
                {
                    if (type == CmdWrite)
                    {
                        if (length > NbdProtocol.MaximumPayload)
                        {
                            await DiscardAsync(length, _stopping).ConfigureAwait(false);
                            error = EOverflow;
                        }
                        else
                        {
                            payload = ArrayPool<byte>.Shared.Rent((int)Math.Max(length, 1));
                            await _input.ReadExactlyAsync(payload.AsMemory(0, (int)length), _stopping).ConfigureAwait(false);
                        }
                    }
                }
                catch
                {
                    if (payload is not null) ArrayPool<byte>.Shared.Return(payload);
                    _slots.Release();
                    throw;
                }
                var request = new Request(flags, type, handle, offset, length, payload, error);
                _ = Task.Run(() => ProcessAsync(request), CancellationToken.None);
            }
        }
        finally
        {
            await DrainAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Waits until every in-flight request has replied (all slots free again).</summary>
    private async Task DrainAsync()
    {
        var deadline = DateTime.UtcNow + DrainTimeout + TimeSpan.FromSeconds(5);
        for (int i = 0; i < NbdServer.MaxRequestsInFlight; i++)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero || !await _slots.WaitAsync(left, CancellationToken.None).ConfigureAwait(false))
            {
                _logger.LogWarning("NBD connection {Id}: in-flight requests did not finish; closing anyway", _id);
                _abort.Cancel();
                return;
            }
        }
        _slots.Release(NbdServer.MaxRequestsInFlight);
    }

    private async Task DiscardAsync(uint length, CancellationToken ct)
    {
        byte[] scratch = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            long left = length;
            while (left > 0)
            {
                int n = (int)Math.Min(left, scratch.Length);
                await _input.ReadExactlyAsync(scratch.AsMemory(0, n), ct).ConfigureAwait(false);
                left -= n;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private async Task ProcessAsync(Request request)
    {
        var ct = _abort.Token;
        byte[]? data = null;
        int dataOffset = 0, dataLength = 0;
        uint error = request.Error;
        try
        {
            if (error == 0) error = Validate(request);
            if (error == 0)
            {
                long offset = (long)request.Offset;
                int length = (int)request.Length;
                bool fua = (request.Flags & CmdFlagFua) != 0;
                switch (request.Type)
                {
                    case CmdRead:
                        if (length > 0)
                        {
                            dataOffset = length + SimpleReplyHeaderSize <= CombinedReplyLimit ? SimpleReplyHeaderSize : 0;
                            data = ArrayPool<byte>.Shared.Rent(dataOffset + length);
                            await _device.ReadAsync(offset, data.AsMemory(dataOffset, length), ct).ConfigureAwait(false);
                            dataLength = length;
                        }
                        break;
                    case CmdWrite:
                        if (length > 0) await _device.WriteAsync(offset, request.Payload.AsMemory(0, length), ct).ConfigureAwait(false);
                        if (fua) await _device.FlushAsync(ct).ConfigureAwait(false);
                        break;
                    case CmdFlush:
                        if (!_readOnly) await _device.FlushAsync(ct).ConfigureAwait(false);
                        break;
                    case CmdTrim:
                        // A hint the server may ignore: no-op (zeroing would only grow a copy-on-write overlay).
                        break;
                    case CmdWriteZeroes:
                        for (long done = 0; done < request.Length; done += ZeroChunk)
                        {
                            int n = (int)Math.Min(ZeroChunk, request.Length - done);
                            await _device.WriteAsync(offset + done, Zeroes.AsMemory(0, n), ct).ConfigureAwait(false);
                        }
                        if (fua) await _device.FlushAsync(ct).ConfigureAwait(false);
                        break;
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            Release(request, data);
            return; // the connection is going down; no reply
        }
        catch (NotSupportedException ex)
        {
            _logger.LogDebug(ex, "NBD connection {Id}: {Command} refused by the device", _id, CommandName(request.Type));
            error = EPerm;
        }
        catch (ArgumentException ex)
        {
            _logger.LogWarning(ex, "NBD connection {Id}: {Command} at {Offset}+{Length} rejected by the device", _id, CommandName(request.Type), request.Offset, request.Length);
            error = EInval;
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "NBD connection {Id}: {Command} at {Offset}+{Length} on export '{Export}' failed", _id, CommandName(request.Type), request.Offset, request.Length, _exportName);
            error = EIo;
        }

        if (error != 0)
        {
            _logger.LogDebug("NBD connection {Id}: {Command} at {Offset}+{Length} -> error {Error}", _id, CommandName(request.Type), request.Offset, request.Length, error);
            dataLength = 0;
        }
        try
        {
            await SendReplyAsync(request.Handle, error, data, dataOffset, dataLength, ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            if (!ct.IsCancellationRequested) _logger.LogDebug(ex, "NBD connection {Id}: reply could not be sent", _id);
            Abort();
        }
        finally
        {
            Release(request, data);
        }
    }

    private void Release(Request request, byte[]? data)
    {
        if (data is not null) ArrayPool<byte>.Shared.Return(data);
        if (request.Payload is not null) ArrayPool<byte>.Shared.Return(request.Payload);
        _slots.Release();
    }

    /// <summary>The NBD error for a request before it touches the device, or 0.</summary>
    private uint Validate(Request request)
    {
        ushort allowed = request.Type switch
        {
            CmdRead or CmdWrite or CmdFlush or CmdTrim => CmdFlagFua,
            CmdWriteZeroes => CmdFlagFua | CmdFlagNoHole,
            _ => 0,
        };
        if (request.Type is not (CmdRead or CmdWrite or CmdFlush or CmdTrim or CmdWriteZeroes)) return EInval;
        if ((request.Flags & ~allowed) != 0) return EInval;
        bool writes = request.Type is CmdWrite or CmdTrim or CmdWriteZeroes;
        if (writes && _readOnly) return EPerm;
        if (request.Type == CmdFlush) return 0; // offset and length are reserved; be lenient
        if (request.Type is CmdRead && request.Length > NbdProtocol.MaximumPayload) return EOverflow;
        ulong size = (ulong)_device.Length;
        if (request.Offset > size || request.Length > size - request.Offset)
            return request.Type is CmdWrite or CmdWriteZeroes ? ENoSpc : EInval;
        return 0;
    }

    private async Task SendReplyAsync(ulong handle, uint error, byte[]? data, int dataOffset, int dataLength, CancellationToken ct)
    {
        // Small reads were read into data[16..]: header and data then go out in a single write.
        bool combined = data is not null && dataLength > 0 && dataOffset == SimpleReplyHeaderSize;
        byte[] header = combined ? data! : ArrayPool<byte>.Shared.Rent(SimpleReplyHeaderSize);
        try
        {
            BinaryPrimitives.WriteUInt32BigEndian(header, SimpleReplyMagic);
            BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(4), error);
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(8), handle);
            await _writeLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                if (ReferenceEquals(header, data))
                {
                    await _network.WriteAsync(data.AsMemory(0, SimpleReplyHeaderSize + dataLength), ct).ConfigureAwait(false);
                }
                else
                {
                    await _network.WriteAsync(header.AsMemory(0, SimpleReplyHeaderSize), ct).ConfigureAwait(false);
                    if (dataLength > 0) await _network.WriteAsync(data.AsMemory(dataOffset, dataLength), ct).ConfigureAwait(false);
                }
            }
            finally
            {
                _writeLock.Release();
            }
        }
        finally
        {
            if (!ReferenceEquals(header, data)) ArrayPool<byte>.Shared.Return(header);
        }
    }

    /// <summary>Hard disconnect after a failed reply: cancel in-flight work and unblock the request reader.</summary>
    private void Abort()
    {
        try { _abort.Cancel(); } catch (ObjectDisposedException) { }
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception ex) when (ex is SocketException or ObjectDisposedException) { }
    }
}
