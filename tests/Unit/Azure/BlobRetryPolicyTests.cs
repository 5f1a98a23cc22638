using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Errors;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>
/// An outage is waited out once, not once per request (#12, item 10): once a request has spent its retries
/// unanswered, the failure path's requests fail at once until the service answers again.
/// </summary>
public sealed class BlobRetryPolicyTests(ITestOutputHelper output)
{
    private static int ClosedPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Answers every request with 404 (any answer means the service is reachable).</summary>
    private static async Task AnswerAsync(TcpListener listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await listener.AcceptTcpClientAsync(ct); }
            catch (Exception) { return; }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    var stream = client.GetStream();
                    var buffer = new byte[16384];
                    var seen = new StringBuilder();
                    while (!seen.ToString().Contains("\r\n\r\n"))
                    {
                        int n = await stream.ReadAsync(buffer, ct);
                        if (n == 0) return;
                        seen.Append(Encoding.ASCII.GetString(buffer, 0, n));
                    }
                    await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nx-ms-error-code: BlobNotFound\r\nConnection: close\r\n\r\n"), ct);
                }
            }, ct);
        }
    }

    /// <summary>Counts the attempts (each try of each request) that reach the network.</summary>
    private sealed class CountingTransport : global::Azure.Core.Pipeline.HttpClientTransport
    {
        private int _attempts;
        public int Attempts => Volatile.Read(ref _attempts);

        public override void Process(global::Azure.Core.HttpMessage message)
        {
            Interlocked.Increment(ref _attempts);
            base.Process(message);
        }

        public override ValueTask ProcessAsync(global::Azure.Core.HttpMessage message)
        {
            Interlocked.Increment(ref _attempts);
            return base.ProcessAsync(message);
        }
    }

    [Fact]
    public async Task After_one_request_spends_its_retries_unanswered_the_next_fail_at_once_until_the_service_answers()
    {
        int port = ClosedPort();
        var transport = new CountingTransport();
        var options = new BlobVaultStoreOptions { MaxRetries = 3, RetryDelay = TimeSpan.FromMilliseconds(200), MaxRetryDelay = TimeSpan.FromSeconds(1), Transport = transport };
        string cs = $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.Account};AccountKey={AzuriteServer.AccountKey};BlobEndpoint=http://127.0.0.1:{port}/{AzuriteServer.Account};";
        var store = BlobVaultStore.FromConnectionString(cs, "vault", options);

        var watch = Stopwatch.StartNew();
        var first = await Assert.ThrowsAsync<AsrException>(() => store.WriteAsync("items/x/item.json", new byte[10], default));
        var budget = watch.Elapsed;
        Assert.Equal(AsrErrorIds.VaultUnavailable, first.ErrorId);
        Assert.Equal(options.MaxRetries + 1, transport.Attempts); // the whole retry budget, once

        // The failure path (item record, job end, lock release) does not spend the budget again: one attempt each.
        watch.Restart();
        for (int i = 0; i < 4; i++)
            Assert.Equal(AsrErrorIds.VaultUnavailable, (await Assert.ThrowsAsync<AsrException>(() => store.WriteAsync($"jobs/{i}.json", new byte[10], default))).ErrorId);
        var fast = watch.Elapsed;
        output.WriteLine($"first request: {budget.TotalSeconds:F2} s (its retry budget); 4 more during the outage: {fast.TotalSeconds:F2} s");
        Assert.Equal(options.MaxRetries + 1 + 4, transport.Attempts);

        // The service answers again (here: 404 to everything): requests retry as before.
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        using var stop = new CancellationTokenSource();
        var server = AnswerAsync(listener, stop.Token);
        Assert.False(await store.ExistsAsync("items/x/item.json", default));
        stop.Cancel();
        listener.Stop();
        await server;
        watch.Restart();
        int before = transport.Attempts;
        await Assert.ThrowsAsync<AsrException>(() => store.WriteAsync("items/y/item.json", new byte[10], default));
        output.WriteLine($"after the service answered once, a new outage is again retried: {watch.Elapsed.TotalSeconds:F2} s");
        Assert.Equal(options.MaxRetries + 1, transport.Attempts - before);
    }
}
