using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace AsrModule.Engine.Exports;

/// <summary>A run of an export with one status (flags as defined by the metadata context that reported it).</summary>
public readonly record struct NbdExtent(long Offset, long Length, uint Flags)
{
    public long End => Offset + Length;
}

/// <summary>What to negotiate beyond the export itself.</summary>
public sealed class NbdClientOptions
{
    /// <summary>
    /// Metadata contexts to select (e.g. "base:allocation", "qemu:dirty-bitmap:NAME") for
    /// <see cref="NbdClient.BlockStatusAsync"/>. Needs structured replies, so asking for any negotiates them.
    /// </summary>
    public IReadOnlyList<string> MetaContexts { get; init; } = [];

    /// <summary>Negotiate structured replies even without metadata contexts (reads may then skip holes).</summary>
    public bool StructuredReplies { get; init; }
}

/// <summary>
/// A small NBD client (fixed newstyle, NBD_OPT_GO, one request at a time) over TCP or a unix socket:
/// enough for the engine to read a served disk the way a hypervisor would (e.g. to verify a drill)
/// and to read QEMU's exports, including block status of metadata contexts such as dirty bitmaps, and to write
/// back into a writable export (failback into a disk image served by qemu-nbd).
/// Simple replies unless structured replies are asked for.
/// </summary>
public sealed class NbdClient : IAsyncDisposable, IDisposable
{
    private const int MaximumReadRequest = (int)NbdProtocol.MaximumPayload;
    // Far below the 32-bit length field, so that no server has to refuse a block status request as too long.
    private const long MaximumBlockStatusRequest = 1L << 30;

    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly Dictionary<string, uint> _metaContexts;
    private readonly byte[] _header = new byte[NbdProtocol.StructuredReplyHeaderSize];
    private ulong _cookie;
    private bool _disposed;

    private NbdClient(Socket socket, NetworkStream stream, long size, ushort transmissionFlags, bool structuredReplies, Dictionary<string, uint> metaContexts)
    {
        _socket = socket;
        _stream = stream;
        Size = size;
        TransmissionFlags = transmissionFlags;
        StructuredReplies = structuredReplies;
        _metaContexts = metaContexts;
    }

    public long Size { get; }

    /// <summary>The export's transmission flags (NBD_FLAG_*) as the server sent them with the export's size.</summary>
    public ushort TransmissionFlags { get; }

    /// <summary>True when the server exports the disk read-only (NBD_FLAG_READ_ONLY): <see cref="WriteAsync"/> is refused.</summary>
    public bool IsReadOnly => (TransmissionFlags & NbdProtocol.TxReadOnly) != 0;

    /// <summary>
    /// True when the server accepts NBD_CMD_FLUSH (NBD_FLAG_SEND_FLUSH). A server that does not advertise it must not
    /// be sent one, so <see cref="FlushAsync"/> then does nothing.
    /// </summary>
    public bool CanFlush => (TransmissionFlags & NbdProtocol.TxSendFlush) != 0;

    /// <summary>True when the server agreed to structured replies.</summary>
    public bool StructuredReplies { get; }

    /// <summary>The metadata contexts the server selected (a requested context it does not offer is absent).</summary>
    public IReadOnlyCollection<string> MetaContexts => _metaContexts.Keys;

    /// <summary>Connects to nbd://host:port/export or nbd+unix:///export?socket=/path and negotiates the export.</summary>
    public static Task<NbdClient> ConnectAsync(Uri uri, CancellationToken ct) => ConnectAsync(uri, null, ct);

    /// <inheritdoc cref="ConnectAsync(Uri, CancellationToken)"/>
    public static Task<NbdClient> ConnectAsync(Uri uri, NbdClientOptions? options, CancellationToken ct)
    {
        string export = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        switch (uri.Scheme)
        {
            case "nbd":
                return ConnectCoreAsync(new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true },
                    (s, c) => s.ConnectAsync(uri.Host, uri.Port < 0 ? 10809 : uri.Port, c), export, uri.ToString(), options, ct);
            case "nbd+unix":
                string? socketPath = QueryValue(uri, "socket");
                if (string.IsNullOrEmpty(socketPath)) throw new ArgumentException($"{uri} names no socket (nbd+unix:///export?socket=/path).", nameof(uri));
                return ConnectUnixAsync(socketPath, export, options, ct);
            default:
                throw new ArgumentException($"Not an nbd:// or nbd+unix:// URI: {uri}", nameof(uri));
        }
    }

    /// <summary>Connects to export <paramref name="exportName"/> of the server listening on unix socket <paramref name="socketPath"/>.</summary>
    public static Task<NbdClient> ConnectUnixAsync(string socketPath, string exportName, NbdClientOptions? options, CancellationToken ct) =>
        ConnectCoreAsync(new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified),
            (s, c) => s.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), c), exportName,
            $"nbd+unix:///{Uri.EscapeDataString(exportName)}?socket={socketPath}", options, ct);

    private static string? QueryValue(Uri uri, string key)
    {
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = pair.IndexOf('=');
            if (eq > 0 && pair[..eq] == key) return Uri.UnescapeDataString(pair[(eq + 1)..]);
        }
        return null;
    }

    private static async Task<NbdClient> ConnectCoreAsync(Socket socket, Func<Socket, CancellationToken, ValueTask> connect, string export, string display, NbdClientOptions? options, CancellationToken ct)
    {
        try
        {
            await connect(socket, ct).ConfigureAwait(false);
            var s = new NetworkStream(socket, ownsSocket: false);
            var hello = new byte[18];
            await s.ReadExactlyAsync(hello, ct).ConfigureAwait(false);
            if (BinaryPrimitives.ReadUInt64BigEndian(hello) != NbdProtocol.NbdMagic || BinaryPrimitives.ReadUInt64BigEndian(hello.AsSpan(8)) != NbdProtocol.IHaveOpt)
                throw new IOException($"{display} is not a newstyle NBD server.");
            var clientFlags = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(clientFlags, NbdProtocol.ClientFlagFixedNewstyle | NbdProtocol.ClientFlagNoZeroes);
            await s.WriteAsync(clientFlags, ct).ConfigureAwait(false);

            byte[] name = Encoding.UTF8.GetBytes(export);
            var requestedContexts = options?.MetaContexts ?? [];
            bool structured = false;
            var contexts = new Dictionary<string, uint>(StringComparer.Ordinal);
            if (options is not null && (options.StructuredReplies || requestedContexts.Count > 0))
            {
                await SendOptionAsync(s, NbdProtocol.OptStructuredReply, [], ct).ConfigureAwait(false);
                var (type, payload) = await ReadOptionReplyAsync(s, NbdProtocol.OptStructuredReply, ct).ConfigureAwait(false);
                structured = type == NbdProtocol.RepAck;
                if (!structured && requestedContexts.Count > 0)
                    throw new IOException($"{display} does not offer structured replies ({ReplyDescription(type, payload)}), so it cannot report block status.");
            }
            if (requestedContexts.Count > 0)
            {
                await SendOptionAsync(s, NbdProtocol.OptSetMetaContext, MetaContextQuery(name, requestedContexts), ct).ConfigureAwait(false);
                while (true)
                {
                    var (type, payload) = await ReadOptionReplyAsync(s, NbdProtocol.OptSetMetaContext, ct).ConfigureAwait(false);
                    if (type == NbdProtocol.RepAck) break;
                    if (type == NbdProtocol.RepMetaContext && payload.Length >= 4)
                        contexts[Encoding.UTF8.GetString(payload, 4, payload.Length - 4)] = BinaryPrimitives.ReadUInt32BigEndian(payload);
                    else if ((type & NbdProtocol.RepFlagError) != 0)
                        throw new IOException($"{display} refused metadata contexts {string.Join(", ", requestedContexts)}: {ReplyDescription(type, payload)}.");
                }
            }

            var go = new byte[4 + name.Length + 2];
            BinaryPrimitives.WriteUInt32BigEndian(go, (uint)name.Length);
            name.CopyTo(go, 4);
            await SendOptionAsync(s, NbdProtocol.OptGo, go, ct).ConfigureAwait(false);
            long size = -1;
            ushort transmissionFlags = 0;
            while (true)
            {
                var (type, payload) = await ReadOptionReplyAsync(s, NbdProtocol.OptGo, ct).ConfigureAwait(false);
                if (type == NbdProtocol.RepAck) break;
                if ((type & NbdProtocol.RepFlagError) != 0)
                    throw new IOException($"The NBD server refused export '{export}' ({ReplyDescription(type, payload)}).");
                if (type == NbdProtocol.RepInfo && payload.Length >= 12 && BinaryPrimitives.ReadUInt16BigEndian(payload) == NbdProtocol.InfoExport)
                {
                    size = (long)BinaryPrimitives.ReadUInt64BigEndian(payload.AsSpan(2));
                    transmissionFlags = BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(10));
                }
            }
            if (size < 0) throw new IOException($"The NBD server did not report the size of {display}.");
            return new NbdClient(socket, s, size, transmissionFlags, structured, contexts);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static byte[] MetaContextQuery(byte[] exportName, IReadOnlyList<string> contexts)
    {
        var queries = contexts.Select(Encoding.UTF8.GetBytes).ToList();
        var data = new byte[4 + exportName.Length + 4 + queries.Sum(q => 4 + q.Length)];
        int at = 0;
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(at), (uint)exportName.Length); at += 4;
        exportName.CopyTo(data, at); at += exportName.Length;
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(at), (uint)queries.Count); at += 4;
        foreach (var q in queries)
        {
            BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(at), (uint)q.Length); at += 4;
            q.CopyTo(data, at); at += q.Length;
        }
        return data;
    }

    private static async Task SendOptionAsync(Stream s, uint option, byte[] data, CancellationToken ct)
    {
        var message = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(message, NbdProtocol.IHaveOpt);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(12), (uint)data.Length);
        data.CopyTo(message, 16);
        await s.WriteAsync(message, ct).ConfigureAwait(false);
    }

    private static async Task<(uint Type, byte[] Payload)> ReadOptionReplyAsync(Stream s, uint option, CancellationToken ct)
    {
        var header = new byte[NbdProtocol.OptionReplyHeaderSize];
        await s.ReadExactlyAsync(header, ct).ConfigureAwait(false);
        if (BinaryPrimitives.ReadUInt64BigEndian(header) != NbdProtocol.OptionReplyMagic || BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)) != option)
            throw new IOException($"Unexpected reply to {NbdProtocol.OptionName(option)}.");
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        if (length > NbdProtocol.MaximumOptionLength) throw new IOException($"Reply to {NbdProtocol.OptionName(option)} is too long ({length} bytes).");
        var payload = new byte[length];
        await s.ReadExactlyAsync(payload, ct).ConfigureAwait(false);
        return (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), payload);
    }

    private static string ReplyDescription(uint type, byte[] payload) =>
        payload.Length > 0 && (type & NbdProtocol.RepFlagError) != 0
            ? $"reply 0x{type:x}: {Encoding.UTF8.GetString(payload)}"
            : $"reply 0x{type:x}";

    /// <summary>Reads buffer.Length bytes at offset (NBD_CMD_READ, split into requests the server accepts).</summary>
    public async Task ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct)
    {
        for (int done = 0; done < buffer.Length;)
        {
            int length = Math.Min(MaximumReadRequest, buffer.Length - done);
            await ReadOnceAsync(offset + done, buffer.Slice(done, length), ct).ConfigureAwait(false);
            done += length;
        }
    }

    private async Task ReadOnceAsync(long offset, Memory<byte> buffer, CancellationToken ct)
    {
        ulong cookie = await SendRequestAsync(NbdProtocol.CmdRead, 0, offset, (uint)buffer.Length, ct).ConfigureAwait(false);
        if (!StructuredReplies)
        {
            await ReadSimpleReplyAsync(cookie, $"read at {offset}+{buffer.Length}", ct).ConfigureAwait(false);
            await _stream.ReadExactlyAsync(buffer, ct).ConfigureAwait(false);
            return;
        }

        // Chunks may come in any order and must not overlap, so counting covered bytes proves the read complete.
        long covered = 0;
        string? error = null;
        while (true)
        {
            var chunk = await ReadReplyHeaderAsync(cookie, ct).ConfigureAwait(false);
            if (chunk.Simple)
            {
                // Only allowed for an error (a successful read must use chunks).
                error ??= $"error {chunk.SimpleError}";
                break;
            }
            switch (chunk.Type)
            {
                case NbdProtocol.ReplyTypeOffsetData:
                {
                    if (chunk.Length < 9) throw new IOException($"Malformed NBD data chunk ({chunk.Length} bytes).");
                    long at = await ReadInt64Async(ct).ConfigureAwait(false);
                    int dataLength = checked((int)(chunk.Length - 8));
                    var target = Within(buffer, offset, at, dataLength);
                    await _stream.ReadExactlyAsync(target, ct).ConfigureAwait(false);
                    covered += dataLength;
                    break;
                }
                case NbdProtocol.ReplyTypeOffsetHole:
                {
                    if (chunk.Length != 12) throw new IOException($"Malformed NBD hole chunk ({chunk.Length} bytes).");
                    var payload = await ReadPayloadAsync(chunk.Length, ct).ConfigureAwait(false);
                    long at = (long)BinaryPrimitives.ReadUInt64BigEndian(payload);
                    int holeLength = checked((int)BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(8)));
                    Within(buffer, offset, at, holeLength).Span.Clear();
                    covered += holeLength;
                    break;
                }
                case NbdProtocol.ReplyTypeNone:
                    if (chunk.Length != 0) throw new IOException("Malformed NBD 'none' chunk.");
                    break;
                default:
                    error ??= await ReadUnexpectedChunkAsync(chunk, "read", ct).ConfigureAwait(false);
                    break;
            }
            if (chunk.Done) break;
        }
        if (error is not null) throw new IOException($"NBD read at {offset}+{buffer.Length} failed: {error}.");
        if (covered != buffer.Length) throw new IOException($"NBD read at {offset}+{buffer.Length} returned {covered} bytes.");
    }

    private static Memory<byte> Within(Memory<byte> buffer, long requestOffset, long chunkOffset, int length)
    {
        long start = chunkOffset - requestOffset;
        if (start < 0 || length < 0 || start + length > buffer.Length)
            throw new IOException($"NBD chunk {chunkOffset}+{length} lies outside the request {requestOffset}+{buffer.Length}.");
        return buffer.Slice((int)start, length);
    }

    /// <summary>
    /// Writes <paramref name="data"/> at <paramref name="offset"/> (NBD_CMD_WRITE, split into requests the server
    /// accepts). Refused on a read-only export, so that a caller never learns of it from a failed request half-way.
    /// </summary>
    public async Task WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsReadOnly) throw new InvalidOperationException("The NBD export is read-only (NBD_FLAG_READ_ONLY): it cannot be written.");
        for (int done = 0; done < data.Length;)
        {
            int length = Math.Min(MaximumReadRequest, data.Length - done);
            ulong cookie = await SendRequestAsync(NbdProtocol.CmdWrite, 0, offset + done, (uint)length, ct).ConfigureAwait(false);
            await _stream.WriteAsync(data.Slice(done, length), ct).ConfigureAwait(false);
            await ReadAcknowledgementAsync(cookie, $"write at {offset + done}+{length}", ct).ConfigureAwait(false);
            done += length;
        }
    }

    /// <summary>
    /// Asks the server to make every completed write durable (NBD_CMD_FLUSH). Does nothing when the server did not
    /// advertise NBD_FLAG_SEND_FLUSH (it then has no volatile cache to flush, and the protocol forbids the command).
    /// </summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!CanFlush) return;
        ulong cookie = await SendRequestAsync(NbdProtocol.CmdFlush, 0, 0, 0, ct).ConfigureAwait(false);
        await ReadAcknowledgementAsync(cookie, "flush", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The reply to a command that returns no data: a simple reply, or (structured replies negotiated) a single
    /// NONE chunk or an error chunk.
    /// </summary>
    private async Task ReadAcknowledgementAsync(ulong cookie, string what, CancellationToken ct)
    {
        string? error = null;
        while (true)
        {
            var chunk = await ReadReplyHeaderAsync(cookie, ct).ConfigureAwait(false);
            if (chunk.Simple)
            {
                if (chunk.SimpleError != 0) error ??= $"error {chunk.SimpleError}";
                break;
            }
            if (chunk.Type == NbdProtocol.ReplyTypeNone)
            {
                if (chunk.Length != 0) throw new IOException("Malformed NBD 'none' chunk.");
            }
            else
            {
                error ??= await ReadUnexpectedChunkAsync(chunk, what, ct).ConfigureAwait(false);
            }
            if (chunk.Done) break;
        }
        if (error is not null) throw new IOException($"NBD {what} failed: {error}.");
    }

    /// <summary>
    /// The extents of <paramref name="metaContext"/> covering [offset, offset + length), adjacent extents
    /// with equal flags merged. Several requests are sent when the server answers a part at a time.
    /// </summary>
    public async Task<IReadOnlyList<NbdExtent>> BlockStatusAsync(string metaContext, long offset, long length, CancellationToken ct)
    {
        if (!_metaContexts.TryGetValue(metaContext, out uint contextId))
            throw new InvalidOperationException($"Metadata context '{metaContext}' was not negotiated (have: {string.Join(", ", _metaContexts.Keys)}).");
        var extents = new List<NbdExtent>();
        long end = offset + length;
        for (long at = offset; at < end;)
        {
            long requested = Math.Min(MaximumBlockStatusRequest, end - at);
            long reached = await BlockStatusOnceAsync(contextId, metaContext, at, requested, extents, ct).ConfigureAwait(false);
            if (reached <= at) throw new IOException($"NBD block status of '{metaContext}' at {at} made no progress.");
            at = reached;
        }
        return extents;
    }

    private async Task<long> BlockStatusOnceAsync(uint contextId, string metaContext, long offset, long length, List<NbdExtent> extents, CancellationToken ct)
    {
        ulong cookie = await SendRequestAsync(NbdProtocol.CmdBlockStatus, 0, offset, (uint)length, ct).ConfigureAwait(false);
        long reached = offset;
        bool seen = false;
        string? error = null;
        while (true)
        {
            var chunk = await ReadReplyHeaderAsync(cookie, ct).ConfigureAwait(false);
            if (chunk.Simple)
            {
                error ??= chunk.SimpleError == 0 ? "a simple reply without status" : $"error {chunk.SimpleError}";
                break;
            }
            if (chunk.Type == NbdProtocol.ReplyTypeBlockStatus)
            {
                if (chunk.Length < 12 || (chunk.Length - 4) % 8 != 0) throw new IOException($"Malformed NBD block status chunk ({chunk.Length} bytes).");
                var payload = await ReadPayloadAsync(chunk.Length, ct).ConfigureAwait(false);
                // A chunk per negotiated context: only the asked-for one counts.
                if (BinaryPrimitives.ReadUInt32BigEndian(payload) == contextId)
                {
                    seen = true;
                    long end = offset + length;
                    for (int i = 4; i < payload.Length && reached < end; i += 8)
                    {
                        long extentLength = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(i));
                        uint flags = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(i + 4));
                        // The last extent may run past the request; the caller asked about the request only.
                        extentLength = Math.Min(extentLength, end - reached);
                        if (extentLength == 0) throw new IOException("NBD block status returned an empty extent.");
                        if (extents.Count > 0 && extents[^1].Flags == flags && extents[^1].End == reached)
                            extents[^1] = extents[^1] with { Length = extents[^1].Length + extentLength };
                        else
                            extents.Add(new NbdExtent(reached, extentLength, flags));
                        reached += extentLength;
                    }
                }
            }
            else if (chunk.Type == NbdProtocol.ReplyTypeNone)
            {
                if (chunk.Length != 0) throw new IOException("Malformed NBD 'none' chunk.");
            }
            else
            {
                error ??= await ReadUnexpectedChunkAsync(chunk, "block status", ct).ConfigureAwait(false);
            }
            if (chunk.Done) break;
        }
        if (error is not null) throw new IOException($"NBD block status of '{metaContext}' at {offset}+{length} failed: {error}.");
        if (!seen) throw new IOException($"The NBD server sent no status for '{metaContext}' at {offset}+{length}.");
        return reached;
    }

    private readonly record struct ReplyHeader(bool Simple, uint SimpleError, ushort Flags, ushort Type, uint Length)
    {
        public bool Done => Simple || (Flags & NbdProtocol.ReplyFlagDone) != 0;
    }

    /// <summary>Reads a simple reply or the header of a structured chunk (the payload is left for the caller).</summary>
    private async Task<ReplyHeader> ReadReplyHeaderAsync(ulong cookie, CancellationToken ct)
    {
        await _stream.ReadExactlyAsync(_header.AsMemory(0, 4), ct).ConfigureAwait(false);
        uint magic = BinaryPrimitives.ReadUInt32BigEndian(_header);
        if (magic == NbdProtocol.SimpleReplyMagic)
        {
            await _stream.ReadExactlyAsync(_header.AsMemory(4, NbdProtocol.SimpleReplyHeaderSize - 4), ct).ConfigureAwait(false);
            if (BinaryPrimitives.ReadUInt64BigEndian(_header.AsSpan(8)) != cookie) throw new IOException("Unexpected NBD reply.");
            return new ReplyHeader(true, BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(4)), 0, 0, 0);
        }
        if (magic != NbdProtocol.StructuredReplyMagic || !StructuredReplies) throw new IOException($"Unexpected NBD reply magic 0x{magic:x8}.");
        await _stream.ReadExactlyAsync(_header.AsMemory(4, NbdProtocol.StructuredReplyHeaderSize - 4), ct).ConfigureAwait(false);
        if (BinaryPrimitives.ReadUInt64BigEndian(_header.AsSpan(8)) != cookie) throw new IOException("Unexpected NBD reply.");
        return new ReplyHeader(false, 0,
            BinaryPrimitives.ReadUInt16BigEndian(_header.AsSpan(4)),
            BinaryPrimitives.ReadUInt16BigEndian(_header.AsSpan(6)),
            BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(16)));
    }

    /// <summary>Reads an error chunk's message, or fails the connection on a chunk the protocol does not allow here.</summary>
    private async Task<string> ReadUnexpectedChunkAsync(ReplyHeader chunk, string what, CancellationToken ct)
    {
        if ((chunk.Type & NbdProtocol.ReplyTypeErrorBit) == 0)
            throw new IOException($"Unexpected NBD chunk type {chunk.Type} in reply to {what}.");
        var payload = await ReadPayloadAsync(chunk.Length, ct).ConfigureAwait(false);
        if (payload.Length < 6) return $"error chunk {chunk.Type}";
        uint code = BinaryPrimitives.ReadUInt32BigEndian(payload);
        int messageLength = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(4)), payload.Length - 6);
        string message = Encoding.UTF8.GetString(payload, 6, messageLength);
        return message.Length > 0 ? $"error {code} ({message})" : $"error {code}";
    }

    private async Task<byte[]> ReadPayloadAsync(uint length, CancellationToken ct)
    {
        if (length > NbdProtocol.MaximumOptionLength) throw new IOException($"NBD reply chunk too long ({length} bytes).");
        var payload = new byte[length];
        await _stream.ReadExactlyAsync(payload, ct).ConfigureAwait(false);
        return payload;
    }

    private async Task<long> ReadInt64Async(CancellationToken ct)
    {
        await _stream.ReadExactlyAsync(_header.AsMemory(0, 8), ct).ConfigureAwait(false);
        return (long)BinaryPrimitives.ReadUInt64BigEndian(_header);
    }

    private async Task ReadSimpleReplyAsync(ulong cookie, string what, CancellationToken ct)
    {
        var reply = await ReadReplyHeaderAsync(cookie, ct).ConfigureAwait(false);
        if (!reply.Simple) throw new IOException("Unexpected NBD reply.");
        if (reply.SimpleError != 0) throw new IOException($"NBD {what} failed with error {reply.SimpleError}.");
    }

    private async Task<ulong> SendRequestAsync(ushort command, ushort flags, long offset, uint length, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var request = new byte[NbdProtocol.RequestHeaderSize];
        BinaryPrimitives.WriteUInt32BigEndian(request, NbdProtocol.RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(6), command);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(8), ++_cookie);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(16), (ulong)offset);
        BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(24), length);
        await _stream.WriteAsync(request, ct).ConfigureAwait(false);
        return _cookie;
    }

    private static byte[] DisconnectRequest()
    {
        var disc = new byte[NbdProtocol.RequestHeaderSize];
        BinaryPrimitives.WriteUInt32BigEndian(disc, NbdProtocol.RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(disc.AsSpan(6), NbdProtocol.CmdDisc);
        return disc;
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            await _stream.WriteAsync(DisconnectRequest()).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException) { /* the server may already be gone */ }
        _stream.Dispose();
        _socket.Dispose();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            _stream.Write(DisconnectRequest());
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException) { /* the server may already be gone */ }
        _stream.Dispose();
        _socket.Dispose();
    }
}
