using System.Net;
using System.Net.Sockets;
using System.Text;

namespace AsrModule.Engine.Failover.Boot;

/// <summary>
/// Whether a guest TCP port answers through QEMU's user-mode host forward. The forward itself accepts every connection
/// at once (QEMU then tries the guest), so "connected" proves nothing: the port counts as answering when the guest
/// sends something, either a banner of its own (SSH, SMTP, FTP) within a second, or a reply to <c>HEAD / HTTP/1.0</c>
/// (web servers) within three. A service that needs a client of its own is better checked by the item's check.
/// </summary>
public static class GuestPortProbe
{
    private static readonly TimeSpan BannerWait = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan ReplyWait = TimeSpan.FromSeconds(3);

    public static async Task<bool> AnswersAsync(int hostPort, CancellationToken ct)
    {
        using var client = new TcpClient();
        try
        {
            await client.ConnectAsync(IPAddress.Loopback, hostPort, ct).ConfigureAwait(false);
            var stream = client.GetStream();
            var buffer = new byte[256];
            var first = await ReadSomeAsync(stream, buffer, BannerWait, ct).ConfigureAwait(false);
            if (first is { } n) return n > 0; // a banner, or closed: the guest refused (QEMU closes the forward)
            await stream.WriteAsync(Encoding.ASCII.GetBytes("HEAD / HTTP/1.0\r\n\r\n"), ct).ConfigureAwait(false);
            return await ReadSomeAsync(stream, buffer, ReplyWait, ct).ConfigureAwait(false) is > 0;
        }
        catch (Exception ex) when (ex is SocketException or IOException)
        {
            return false;
        }
    }

    /// <summary>Bytes read (0: closed), or null when nothing came within <paramref name="wait"/>.</summary>
    private static async Task<int?> ReadSomeAsync(NetworkStream stream, byte[] buffer, TimeSpan wait, CancellationToken ct)
    {
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timer.CancelAfter(wait);
        try
        {
            return await stream.ReadAsync(buffer, timer.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return null;
        }
    }
}
