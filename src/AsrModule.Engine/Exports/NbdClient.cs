using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace AsrModule.Engine.Exports;

/// <summary>
/// A small NBD client (fixed newstyle, NBD_OPT_GO, simple replies, one request at a time): enough
/// for the engine to read a served disk the way a hypervisor would, e.g. to verify a drill.
/// </summary>
public sealed class NbdClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private ulong _cookie;

    private NbdClient(TcpClient tcp, long size)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        Size = size;
    }

    public long Size { get; }

    /// <summary>Connects to nbd://host:port/export and negotiates the export.</summary>
    public static async Task<NbdClient> ConnectAsync(Uri uri, CancellationToken ct)
    {
        if (uri.Scheme != "nbd") throw new ArgumentException($"Not an nbd:// URI: {uri}", nameof(uri));
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            await tcp.ConnectAsync(uri.Host, uri.Port, ct).ConfigureAwait(false);
            var s = tcp.GetStream();
            var hello = new byte[18];
            await s.ReadExactlyAsync(hello, ct).ConfigureAwait(false);
            if (BinaryPrimitives.ReadUInt64BigEndian(hello) != NbdProtocol.NbdMagic || BinaryPrimitives.ReadUInt64BigEndian(hello.AsSpan(8)) != NbdProtocol.IHaveOpt)
                throw new IOException($"{uri} is not a newstyle NBD server.");
            var clientFlags = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(clientFlags, NbdProtocol.ClientFlagFixedNewstyle | NbdProtocol.ClientFlagNoZeroes);
            await s.WriteAsync(clientFlags, ct).ConfigureAwait(false);

            byte[] name = Encoding.UTF8.GetBytes(Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')));
            var opt = new byte[16 + 4 + name.Length + 2];
            BinaryPrimitives.WriteUInt64BigEndian(opt, NbdProtocol.IHaveOpt);
            BinaryPrimitives.WriteUInt32BigEndian(opt.AsSpan(8), NbdProtocol.OptGo);
            BinaryPrimitives.WriteUInt32BigEndian(opt.AsSpan(12), (uint)(4 + name.Length + 2));
            BinaryPrimitives.WriteUInt32BigEndian(opt.AsSpan(16), (uint)name.Length);
            name.CopyTo(opt, 20);
            await s.WriteAsync(opt, ct).ConfigureAwait(false);

            long size = -1;
            var header = new byte[20];
            while (true)
            {
                await s.ReadExactlyAsync(header, ct).ConfigureAwait(false);
                uint type = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
                var payload = new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16))];
                await s.ReadExactlyAsync(payload, ct).ConfigureAwait(false);
                if (type == NbdProtocol.RepAck) break;
                if ((type & NbdProtocol.RepFlagError) != 0)
                    throw new IOException($"The NBD server refused export '{Encoding.UTF8.GetString(name)}' (reply 0x{type:x}).");
                if (type == NbdProtocol.RepInfo && payload.Length >= 12 && BinaryPrimitives.ReadUInt16BigEndian(payload) == NbdProtocol.InfoExport)
                    size = (long)BinaryPrimitives.ReadUInt64BigEndian(payload.AsSpan(2));
            }
            if (size < 0) throw new IOException($"The NBD server did not report the size of {uri}.");
            return new NbdClient(tcp, size);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    /// <summary>Reads buffer.Length bytes at offset (NBD_CMD_READ, simple reply).</summary>
    public async Task ReadAsync(long offset, Memory<byte> buffer, CancellationToken ct)
    {
        var request = new byte[28];
        BinaryPrimitives.WriteUInt32BigEndian(request, NbdProtocol.RequestMagic);
        BinaryPrimitives.WriteUInt16BigEndian(request.AsSpan(6), NbdProtocol.CmdRead);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(8), ++_cookie);
        BinaryPrimitives.WriteUInt64BigEndian(request.AsSpan(16), (ulong)offset);
        BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(24), (uint)buffer.Length);
        await _stream.WriteAsync(request, ct).ConfigureAwait(false);
        var reply = new byte[16];
        await _stream.ReadExactlyAsync(reply, ct).ConfigureAwait(false);
        uint error = BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4));
        if (BinaryPrimitives.ReadUInt32BigEndian(reply) != NbdProtocol.SimpleReplyMagic || BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(8)) != _cookie)
            throw new IOException("Unexpected NBD reply.");
        if (error != 0) throw new IOException($"NBD read at {offset}+{buffer.Length} failed with error {error}.");
        await _stream.ReadExactlyAsync(buffer, ct).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            var disc = new byte[28];
            BinaryPrimitives.WriteUInt32BigEndian(disc, NbdProtocol.RequestMagic);
            BinaryPrimitives.WriteUInt16BigEndian(disc.AsSpan(6), NbdProtocol.CmdDisc);
            await _stream.WriteAsync(disc).ConfigureAwait(false);
        }
        catch (IOException) { /* the server may already be gone */ }
        _tcp.Dispose();
    }
}
