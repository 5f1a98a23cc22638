using System.Net;
using System.Net.Sockets;
using System.Text;
using AsrModule.Engine.Failover.Boot;
using Xunit;

namespace AsrModule.Tests.Unit.Boot;

/// <summary>
/// A forwarded port answers only when the service behind it does: QEMU's forward accepts every connection itself and
/// closes it when the guest refuses, or keeps it silent while the guest is not up yet.
/// </summary>
public class GuestPortProbeTests
{
    private static async Task<bool> ProbeAgainst(Func<TcpClient, Task> serve)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var server = Task.Run(async () =>
        {
            using var client = await listener.AcceptTcpClientAsync();
            await serve(client);
        });
        bool answers = await GuestPortProbe.AnswersAsync(port, CancellationToken.None);
        listener.Stop();
        try { await server.WaitAsync(TimeSpan.FromSeconds(10)); } catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException) { }
        return answers;
    }

    [Fact]
    public async Task A_banner_answers() =>
        Assert.True(await ProbeAgainst(async c => { await c.GetStream().WriteAsync(Encoding.ASCII.GetBytes("SSH-2.0-OpenSSH_9.2\r\n")); await Task.Delay(500); }));

    [Fact]
    public async Task A_web_server_answers_its_HEAD_request() =>
        Assert.True(await ProbeAgainst(async c =>
        {
            var buffer = new byte[256];
            int n = await c.GetStream().ReadAsync(buffer);
            Assert.StartsWith("HEAD / HTTP/1.0", Encoding.ASCII.GetString(buffer, 0, n));
            await c.GetStream().WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.0 200 OK\r\n\r\n"));
        }));

    [Fact]
    public async Task A_forward_whose_guest_refuses_does_not() => Assert.False(await ProbeAgainst(c => { c.Close(); return Task.CompletedTask; }));

    [Fact]
    public async Task A_forward_whose_guest_never_answers_does_not() => Assert.False(await ProbeAgainst(c => Task.Delay(6000)));

    [Fact]
    public async Task A_port_nobody_listens_on_does_not()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        Assert.False(await GuestPortProbe.AnswersAsync(port, CancellationToken.None));
    }
}
