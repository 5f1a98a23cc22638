using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using AsrModule.Engine.Exports;

namespace AsrModule.Tests.Unit;

/// <summary>
/// The NBD block export: real Debian clients (libnbd-bin: nbdinfo, nbdcopy; qemu-utils: qemu-io,
/// qemu-img) against <see cref="NbdServer"/>, plus a minimal in-process client for protocol edge cases.
/// </summary>
public sealed class NbdServerTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    // ------------------------------------------------------------------ real clients

    [RequiresTool("nbdinfo")]
    public async Task Nbdinfo_reports_size_and_read_only_flag_of_each_export()
    {
        var ro = MemoryBlockDevice.Random(3 * 1024 * 1024 + 512, seed: 1, readOnly: true);
        var rw = MemoryBlockDevice.Random(5 * 1024 * 1024, seed: 2, readOnly: false);
        await using var server = await StartAsync(("recovered-os", ro), ("scratch", rw));

        using var roInfo = JsonDocument.Parse(await RunAsync("nbdinfo", "--json", server.ExportUri("recovered-os").ToString()));
        var roExport = roInfo.RootElement.GetProperty("exports")[0];
        Assert.Equal(ro.Length, roExport.GetProperty("export-size").GetInt64());
        Assert.True(roExport.GetProperty("is_read_only").GetBoolean());
        Assert.True(roExport.GetProperty("can_multi_conn").GetBoolean());
        Assert.False(roInfo.RootElement.GetProperty("structured").GetBoolean()); // STRUCTURED_REPLY refused

        using var rwInfo = JsonDocument.Parse(await RunAsync("nbdinfo", "--json", server.ExportUri("scratch").ToString()));
        var rwExport = rwInfo.RootElement.GetProperty("exports")[0];
        Assert.Equal(rw.Length, rwExport.GetProperty("export-size").GetInt64());
        Assert.False(rwExport.GetProperty("is_read_only").GetBoolean());
        Assert.True(rwExport.GetProperty("can_flush").GetBoolean());
        Assert.True(rwExport.GetProperty("can_fua").GetBoolean());
        Assert.True(rwExport.GetProperty("can_zero").GetBoolean());
        Assert.False(rwExport.GetProperty("can_multi_conn").GetBoolean());
    }

    [RequiresTool("nbdinfo")]
    public async Task Nbdinfo_list_shows_every_export()
    {
        await using var server = await StartAsync(
            ("disk-0", MemoryBlockDevice.Random(1 << 20, 3, readOnly: true)),
            ("disk-1", MemoryBlockDevice.Random(2 << 20, 4, readOnly: true)));

        using var list = JsonDocument.Parse(await RunAsync("nbdinfo", "--list", "--json", $"nbd://127.0.0.1:{server.Port}"));
        var exports = list.RootElement.GetProperty("exports").EnumerateArray()
            .ToDictionary(e => e.GetProperty("export-name").GetString()!, e => e.GetProperty("export-size").GetInt64());
        Assert.Equal(new Dictionary<string, long> { ["disk-0"] = 1 << 20, ["disk-1"] = 2 << 20 }, exports);
    }

    [RequiresTool("nbdcopy")]
    public async Task Nbdcopy_reads_the_whole_export_bit_exact()
    {
        // Not a multiple of any block size, to exercise the unaligned tail.
        var device = MemoryBlockDevice.Random(24 * 1024 * 1024 + 4097, seed: 5, readOnly: true);
        await using var server = await StartAsync(("vm-disk", device));
        using var dir = new TempDir();

        await RunAsync("nbdcopy", server.ExportUri("vm-disk").ToString(), dir["out.img"]);

        Assert.Equal(device.Length, new FileInfo(dir["out.img"]).Length);
        Assert.Equal(device.Sha256(), TestDisks.Sha256(dir["out.img"]));
    }

    [RequiresTool("qemu-io")]
    public async Task QemuIo_writes_zeroes_and_flushes_into_a_writable_export()
    {
        var device = MemoryBlockDevice.Random(4 * 1024 * 1024, seed: 6, readOnly: false);
        byte[] before = device.Snapshot();
        await using var server = await StartAsync(("scratch", device));

        await RunAsync("qemu-io", "-f", "raw",
            "-c", "write -P 0xab 0 64k",
            "-c", "write -P 0xcd -f 1048577 4097",   // unaligned, with FUA
            "-c", "write -z 2M 256k",
            "-c", "flush",
            server.ExportUri("scratch").ToString());

        byte[] after = device.Snapshot();
        Assert.All(after.AsSpan(0, 64 * 1024).ToArray(), b => Assert.Equal(0xab, b));
        Assert.All(after.AsSpan(1048577, 4097).ToArray(), b => Assert.Equal(0xcd, b));
        Assert.All(after.AsSpan(2 * 1024 * 1024, 256 * 1024).ToArray(), b => Assert.Equal(0, b));
        // Everything else is untouched.
        Assert.True(after.AsSpan(64 * 1024, 1048577 - 64 * 1024).SequenceEqual(before.AsSpan(64 * 1024, 1048577 - 64 * 1024)));
        Assert.True(after.AsSpan(2 * 1024 * 1024 + 256 * 1024).SequenceEqual(before.AsSpan(2 * 1024 * 1024 + 256 * 1024)));
        Assert.True(device.FlushCount >= 2); // FUA write and explicit flush
    }

    [RequiresTool("qemu-io")]
    public async Task QemuIo_write_to_a_read_only_export_fails()
    {
        var device = MemoryBlockDevice.Random(1 << 20, seed: 7, readOnly: true);
        string hash = device.Sha256();
        await using var server = await StartAsync(("ro", device));

        var (code, stdout, stderr) = await RunRawAsync("qemu-io", "-f", "raw", "-c", "write -P 0xab 0 4k", server.ExportUri("ro").ToString());
        // qemu sees NBD_FLAG_READ_ONLY and refuses to open the export for writing.
        Assert.True(code != 0, $"qemu-io should fail: {stdout}{stderr}");
        Assert.Contains("Permission denied", stderr);
        Assert.Equal(hash, device.Sha256());
    }

    [RequiresTool("qemu-img")]
    public async Task QemuImg_convert_copies_a_file_into_a_writable_export_and_back()
    {
        using var dir = new TempDir();
        TestDisks.Create(dir["source.img"], 8 * 1024 * 1024, seed: 8);
        var device = new MemoryBlockDevice(new byte[8 * 1024 * 1024], readOnly: false);
        await using var server = await StartAsync(("target", device));
        string uri = server.ExportUri("target").ToString();

        // -n: the NBD target already exists; qemu-img zeroes the zero regions with WRITE_ZEROES.
        await RunAsync("qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", dir["source.img"], uri);
        Assert.Equal(TestDisks.Sha256(dir["source.img"]), device.Sha256());

        await RunAsync("qemu-img", "convert", "-f", "raw", "-O", "raw", uri, dir["back.img"]);
        Assert.Equal(TestDisks.Sha256(dir["source.img"]), TestDisks.Sha256(dir["back.img"]));
    }

    [RequiresTool("nbdcopy")]
    public async Task Several_clients_at_once_read_the_same_export()
    {
        var device = MemoryBlockDevice.Random(8 * 1024 * 1024, seed: 9, readOnly: true);
        await using var server = await StartAsync(("shared", device));
        using var dir = new TempDir();

        // --connections=4 uses multi-conn (advertised for read-only exports).
        await Task.WhenAll(Enumerable.Range(0, 3).Select(i =>
            RunAsync("nbdcopy", "--connections=4", server.ExportUri("shared").ToString(), dir[$"copy{i}.img"])));

        for (int i = 0; i < 3; i++) Assert.Equal(device.Sha256(), TestDisks.Sha256(dir[$"copy{i}.img"]));
    }

    // ------------------------------------------------------------------ in-process client: handshake

    [Fact]
    public async Task Server_binds_loopback_ephemeral_port_and_builds_export_uris()
    {
        await using var server = await StartAsync(("a b", MemoryBlockDevice.Random(4096, 1, true)));
        Assert.NotEqual(0, server.Port);
        Assert.Equal("127.0.0.1", server.EndPoint.Address.ToString());
        Assert.Equal($"nbd://127.0.0.1:{server.Port}/a%20b", server.ExportUri("a b").AbsoluteUri);
        Assert.Throws<ArgumentException>(() => server.ExportUri("missing"));
    }

    [Fact]
    public async Task Handshake_advertises_fixed_newstyle_and_no_zeroes()
    {
        await using var server = await StartAsync(("d", MemoryBlockDevice.Random(4096, 1, true)));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        ushort flags = await client.ReadHelloAsync();
        Assert.Equal(0x0003, flags); // FIXED_NEWSTYLE | NO_ZEROES
    }

    [Fact]
    public async Task Go_with_unknown_export_gets_ERR_UNKNOWN_and_negotiation_continues()
    {
        var device = MemoryBlockDevice.Random(65536, 1, readOnly: true);
        await using var server = await StartAsync(("known", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();

        await client.SendOptionAsync(NbdTestClient.OptGo, NbdTestClient.GoData("nope"));
        var reply = await client.ReadOptionReplyAsync();
        Assert.Equal(NbdTestClient.OptGo, reply.Option);
        Assert.Equal(NbdTestClient.RepErrUnknown, reply.Type);
        Assert.Contains("nope", Encoding.UTF8.GetString(reply.Data));

        // Still negotiating: the right name now works.
        var (size, _) = await client.GoAsync("known");
        Assert.Equal(65536UL, size);
        byte[] data = await client.ReadAsync(1, 100, 200);
        Assert.Equal(device.Snapshot().AsSpan(100, 200).ToArray(), data);
    }

    [Fact]
    public async Task Export_name_option_for_unknown_export_drops_the_connection()
    {
        await using var server = await StartAsync(("known", MemoryBlockDevice.Random(4096, 1, true)));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        await client.SendOptionAsync(NbdTestClient.OptExportName, Encoding.UTF8.GetBytes("nope"));
        Assert.Equal(0, await client.ReadToEndCountAsync());
    }

    [Theory]
    [InlineData(true, 10)]
    [InlineData(false, 134)]
    public async Task Export_name_option_honours_client_no_zeroes(bool noZeroes, int replyBytes)
    {
        var device = MemoryBlockDevice.Random(8192, 1, readOnly: false);
        await using var server = await StartAsync(("d", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync(noZeroes ? 3u : 1u);
        await client.SendOptionAsync(NbdTestClient.OptExportName, Encoding.UTF8.GetBytes("d"));
        byte[] reply = await client.ReadExactAsync(replyBytes);
        Assert.Equal(8192UL, BinaryPrimitives.ReadUInt64BigEndian(reply));
        ushort flags = BinaryPrimitives.ReadUInt16BigEndian(reply.AsSpan(8));
        Assert.Equal(0x1 | 0x4 | 0x8 | 0x20 | 0x40, flags); // HAS_FLAGS, SEND_FLUSH, SEND_FUA, SEND_TRIM, SEND_WRITE_ZEROES
        Assert.All(reply.Skip(10), b => Assert.Equal(0, b));
        // The stream is in sync: the next bytes are a reply to our read.
        Assert.Equal(device.Snapshot().AsSpan(0, 512).ToArray(), await client.ReadAsync(7, 0, 512));
    }

    [Fact]
    public async Task Info_replies_export_and_block_size_then_ack_without_entering_transmission()
    {
        await using var server = await StartAsync(("ro", MemoryBlockDevice.Random(1 << 20, 1, readOnly: true)));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();

        await client.SendOptionAsync(NbdTestClient.OptInfo, NbdTestClient.GoData("ro", 3 /* NBD_INFO_BLOCK_SIZE */));
        var infos = new Dictionary<ushort, byte[]>();
        while (true)
        {
            var r = await client.ReadOptionReplyAsync();
            if (r.Type == NbdTestClient.RepAck) break;
            Assert.Equal(NbdTestClient.RepInfo, r.Type);
            infos[BinaryPrimitives.ReadUInt16BigEndian(r.Data)] = r.Data;
        }
        Assert.Equal(1UL << 20, BinaryPrimitives.ReadUInt64BigEndian(infos[0].AsSpan(2)));
        Assert.Equal(0x1 | 0x2 | 0x4 | 0x8 | 0x100, BinaryPrimitives.ReadUInt16BigEndian(infos[0].AsSpan(10))); // + READ_ONLY, CAN_MULTI_CONN
        Assert.Equal(1u, BinaryPrimitives.ReadUInt32BigEndian(infos[3].AsSpan(2)));
        Assert.Equal(4096u, BinaryPrimitives.ReadUInt32BigEndian(infos[3].AsSpan(6)));
        Assert.Equal(32u << 20, BinaryPrimitives.ReadUInt32BigEndian(infos[3].AsSpan(10)));

        // INFO does not end negotiation: LIST still answers.
        await client.SendOptionAsync(NbdTestClient.OptList, []);
        var server1 = await client.ReadOptionReplyAsync();
        Assert.Equal(2u, server1.Type); // NBD_REP_SERVER
        Assert.Equal("ro", Encoding.UTF8.GetString(server1.Data, 4, (int)BinaryPrimitives.ReadUInt32BigEndian(server1.Data)));
        Assert.Equal(NbdTestClient.RepAck, (await client.ReadOptionReplyAsync()).Type);

        await client.SendOptionAsync(2 /* NBD_OPT_ABORT */, []);
        Assert.Equal(NbdTestClient.RepAck, (await client.ReadOptionReplyAsync()).Type);
        Assert.Equal(0, await client.ReadToEndCountAsync());
    }

    [Theory]
    [InlineData(8u)]  // NBD_OPT_STRUCTURED_REPLY
    [InlineData(10u)] // NBD_OPT_SET_META_CONTEXT
    [InlineData(5u)]  // NBD_OPT_STARTTLS
    [InlineData(11u)] // NBD_OPT_EXTENDED_HEADERS
    [InlineData(999u)]
    public async Task Unsupported_options_get_ERR_UNSUP(uint option)
    {
        await using var server = await StartAsync(("d", MemoryBlockDevice.Random(4096, 1, true)));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        await client.SendOptionAsync(option, option == 10 ? new byte[] { 0, 0, 0, 1, (byte)'d', 0, 0, 0, 0 } : []);
        var reply = await client.ReadOptionReplyAsync();
        Assert.Equal(option, reply.Option);
        Assert.Equal(NbdTestClient.RepErrUnsup, reply.Type);
        // Simple replies are used afterwards.
        await client.GoAsync("d");
        Assert.Equal(4096, (await client.ReadAsync(1, 0, 4096)).Length);
    }

    [Fact]
    public async Task Empty_name_selects_the_only_export()
    {
        await using var server = await StartAsync(("only", MemoryBlockDevice.Random(12345, 1, true)));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        var (size, _) = await client.GoAsync("");
        Assert.Equal(12345UL, size);
    }

    // ------------------------------------------------------------------ in-process client: transmission

    [Fact]
    public async Task Out_of_range_and_oversized_requests_get_errors_and_the_connection_stays_usable()
    {
        var device = MemoryBlockDevice.Random(1 << 20, 1, readOnly: false);
        await using var server = await StartAsync(("d", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        await client.GoAsync("d");

        Assert.Equal(22u, await client.RequestErrorAsync(0, 1, (1 << 20) - 100, 200));              // READ past the end: EINVAL
        Assert.Equal(22u, await client.RequestErrorAsync(0, 2, ulong.MaxValue - 10, 100));          // offset + length overflows: EINVAL
        Assert.Equal(75u, await client.RequestErrorAsync(0, 3, 0, (32u << 20) + 1));                // READ over 32 MiB: EOVERFLOW
        Assert.Equal(28u, await client.RequestErrorAsync(1, 4, (1 << 20) - 10, 20, new byte[20]));  // WRITE past the end: ENOSPC
        Assert.Equal(28u, await client.RequestErrorAsync(6, 5, 1 << 20, 1));                        // WRITE_ZEROES past the end: ENOSPC
        Assert.Equal(22u, await client.RequestErrorAsync(4, 6, 1 << 20, 4096));                     // TRIM past the end: EINVAL
        Assert.Equal(75u, await client.RequestErrorAsync(1, 7, 0, (32u << 20) + 1, new byte[(32 << 20) + 1])); // oversized WRITE: payload consumed, EOVERFLOW
        Assert.Equal(22u, await client.RequestErrorAsync(7, 8, 0, 4096));                           // BLOCK_STATUS (not negotiated): EINVAL
        Assert.Equal(22u, await client.RequestErrorAsync(0, 9, 0, 4096, flags: 0x4));               // DF without structured replies: EINVAL
        Assert.Equal(22u, await client.RequestErrorAsync(42, 10, 0, 4096));                         // unknown command: EINVAL

        // Nothing was written, and the stream is still in sync.
        Assert.Equal(device.Snapshot().AsSpan((1 << 20) - 512, 512).ToArray(), await client.ReadAsync(11, (1 << 20) - 512, 512));
        Assert.Equal(0, device.WriteCount);
    }

    [Fact]
    public async Task Writes_to_a_read_only_export_get_EPERM()
    {
        var device = MemoryBlockDevice.Random(1 << 20, 1, readOnly: true);
        string hash = device.Sha256();
        await using var server = await StartAsync(("ro", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        var (_, flags) = await client.GoAsync("ro");
        Assert.NotEqual(0, flags & 0x2); // READ_ONLY

        Assert.Equal(1u, await client.RequestErrorAsync(1, 1, 0, 4096, new byte[4096]));  // WRITE
        Assert.Equal(1u, await client.RequestErrorAsync(6, 2, 0, 4096));                  // WRITE_ZEROES
        Assert.Equal(1u, await client.RequestErrorAsync(4, 3, 0, 4096));                  // TRIM
        Assert.Equal(0u, await client.RequestErrorAsync(3, 4, 0, 0));                     // FLUSH is harmless
        Assert.Equal(device.Snapshot().AsSpan(0, 4096).ToArray(), await client.ReadAsync(5, 0, 4096));
        Assert.Equal(hash, device.Sha256());
    }

    [Fact]
    public async Task Write_fua_flush_trim_and_write_zeroes_reach_the_device()
    {
        var device = MemoryBlockDevice.Random(1 << 20, 1, readOnly: false);
        byte[] before = device.Snapshot();
        await using var server = await StartAsync(("d", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        await client.GoAsync("d");

        byte[] data = Enumerable.Range(0, 10000).Select(i => (byte)(i * 7)).ToArray();
        Assert.Equal(0u, await client.RequestErrorAsync(1, 1, 12345, (uint)data.Length, data));
        Assert.Equal(0, device.FlushCount);
        Assert.Equal(0u, await client.RequestErrorAsync(1, 2, 0, 4, [1, 2, 3, 4], flags: 0x1)); // FUA
        Assert.Equal(1, device.FlushCount);
        Assert.Equal(0u, await client.RequestErrorAsync(3, 3, 0, 0));                            // FLUSH
        Assert.Equal(2, device.FlushCount);
        Assert.Equal(0u, await client.RequestErrorAsync(6, 4, 600_000, 300_000, flags: 0x2));    // WRITE_ZEROES, NO_HOLE
        Assert.Equal(0u, await client.RequestErrorAsync(4, 5, 4096, 4096));                      // TRIM: no-op

        byte[] after = device.Snapshot();
        Assert.Equal(new byte[] { 1, 2, 3, 4 }, after[..4]);
        Assert.Equal(before.AsSpan(4, 12345 - 4).ToArray(), after.AsSpan(4, 12345 - 4).ToArray()); // trim left data alone
        Assert.Equal(data, after.AsSpan(12345, data.Length).ToArray());
        Assert.All(after.AsSpan(600_000, 300_000).ToArray(), b => Assert.Equal(0, b));
        Assert.Equal(before.AsSpan(900_000).ToArray(), after.AsSpan(900_000).ToArray());
        Assert.Equal(data, await client.ReadAsync(6, 12345, (uint)data.Length));
    }

    [Fact]
    public async Task Many_requests_in_flight_are_processed_concurrently_and_answered_by_handle()
    {
        var device = new GatedBlockDevice(MemoryBlockDevice.Random(1 << 20, 1, readOnly: true));
        await using var server = await StartAsync(("d", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        await client.GoAsync("d");

        // 32 pipelined reads before reading a single reply.
        const int count = 32;
        var expected = new Dictionary<ulong, byte[]>();
        byte[] content = device.Inner.Snapshot();
        for (int i = 0; i < count; i++)
        {
            ulong handle = 1000 + (ulong)i;
            uint offset = (uint)(i * 4096 + i), length = (uint)(512 + i * 100);
            expected[handle] = content.AsSpan((int)offset, (int)length).ToArray();
            await client.SendRequestAsync(0, handle, offset, length);
        }

        // The server works on 8 at once (bounded), none finished yet.
        await device.WaitForConcurrentAsync(NbdServer.MaxRequestsInFlight, Timeout);
        await Task.Delay(200);
        Assert.Equal(NbdServer.MaxRequestsInFlight, device.MaxConcurrent);

        device.Open();
        var seen = new List<ulong>();
        for (int i = 0; i < count; i++)
        {
            var (error, handle) = await client.ReadReplyHeaderAsync();
            Assert.Equal(0u, error);
            Assert.True(expected.TryGetValue(handle, out var want), $"unexpected handle {handle}");
            Assert.Equal(want, await client.ReadExactAsync(want.Length));
            seen.Add(handle);
        }
        Assert.Equal(expected.Keys.Order(), seen.Order());
    }

    [Fact]
    public async Task A_slow_request_does_not_hold_back_later_replies()
    {
        // Reads at offset 0 wait at the gate; others go straight through.
        var device = new GatedBlockDevice(MemoryBlockDevice.Random(1 << 20, 1, readOnly: true), offset => offset == 0);
        await using var server = await StartAsync(("d", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        await client.GoAsync("d");

        await client.SendRequestAsync(0, 1, 0, 4096);     // slow
        await client.SendRequestAsync(0, 2, 8192, 4096);  // fast
        var (error, handle) = await client.ReadReplyHeaderAsync();
        Assert.Equal((0u, 2UL), (error, handle));
        Assert.Equal(device.Inner.Snapshot().AsSpan(8192, 4096).ToArray(), await client.ReadExactAsync(4096));

        device.Open();
        (error, handle) = await client.ReadReplyHeaderAsync();
        Assert.Equal((0u, 1UL), (error, handle));
        Assert.Equal(device.Inner.Snapshot().AsSpan(0, 4096).ToArray(), await client.ReadExactAsync(4096));
    }

    [Fact]
    public async Task Disc_closes_the_connection_after_pending_replies()
    {
        var device = MemoryBlockDevice.Random(1 << 16, 1, readOnly: true);
        await using var server = await StartAsync(("d", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        await client.GoAsync("d");
        await client.SendRequestAsync(0, 1, 0, 1000);
        await client.SendRequestAsync(2, 2, 0, 0); // NBD_CMD_DISC
        var (error, handle) = await client.ReadReplyHeaderAsync();
        Assert.Equal((0u, 1UL), (error, handle));
        Assert.Equal(device.Snapshot()[..1000], await client.ReadExactAsync(1000));
        Assert.Equal(0, await client.ReadToEndCountAsync());
    }

    [Fact]
    public async Task Dispose_closes_open_connections_and_stops_listening()
    {
        var server = await StartAsync(("d", MemoryBlockDevice.Random(1 << 16, 1, true)));
        int port = server.Port;
        using var transmitting = await NbdTestClient.ConnectAsync(port);
        await transmitting.HandshakeAsync();
        await transmitting.GoAsync("d");
        using var handshaking = await NbdTestClient.ConnectAsync(port);
        await handshaking.ReadHelloAsync();
        await WaitUntilAsync(() => server.ConnectionCount == 2);

        var dispose = server.DisposeAsync().AsTask();
        Assert.Same(dispose, await Task.WhenAny(dispose, Task.Delay(Timeout)));
        Assert.Equal(0, server.ConnectionCount);
        Assert.Equal(0, await transmitting.ReadToEndCountAsync());
        Assert.Equal(0, await handshaking.ReadToEndCountAsync());
        await Assert.ThrowsAnyAsync<SocketException>(() => NbdTestClient.ConnectAsync(port));
    }

    [Fact]
    public async Task Device_failure_becomes_EIO()
    {
        var device = new FailingBlockDevice(1 << 16);
        await using var server = await StartAsync(("bad", device));
        using var client = await NbdTestClient.ConnectAsync(server.Port);
        await client.HandshakeAsync();
        await client.GoAsync("bad");
        Assert.Equal(5u, await client.RequestErrorAsync(0, 1, 0, 4096));
        Assert.Equal(5u, await client.RequestErrorAsync(1, 2, 0, 4, [1, 2, 3, 4]));
    }

    // ------------------------------------------------------------------ helpers

    private static async Task<NbdServer> StartAsync(params (string Name, IBlockDevice Device)[] exports)
    {
        var server = new NbdServer(exports.ToDictionary(e => e.Name, e => e.Device));
        await server.StartAsync(CancellationToken.None);
        return server;
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > Timeout) throw new TimeoutException();
            await Task.Delay(10);
        }
    }

    private static async Task<string> RunAsync(string tool, params string[] args)
    {
        var (code, stdout, stderr) = await RunRawAsync(tool, args);
        Assert.True(code == 0, $"{tool} {string.Join(' ', args)} exited {code}: {stderr}{stdout}");
        return stdout;
    }

    private static async Task<(int Code, string Stdout, string Stderr)> RunRawAsync(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(RequiresToolAttribute.PathOf(tool)!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(Timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{tool} did not finish within {Timeout}");
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    // ------------------------------------------------------------------ test doubles and tools

    /// <summary>A <see cref="FactAttribute"/> skipped when one of the named client programs is not installed.</summary>
    public sealed class RequiresToolAttribute : FactAttribute
    {
        public RequiresToolAttribute(params string[] tools)
        {
            var missing = tools.Where(t => PathOf(t) is null).ToArray();
            // CI installs these tools: there a missing tool must fail the test, not skip it.
            if (missing.Length > 0 && Environment.GetEnvironmentVariable("CI") != "true")
                Skip = $"Not installed: {string.Join(", ", missing)} (apt-get install libnbd-bin qemu-utils qemu-system-x86)";
        }

        internal static string? PathOf(string tool)
        {
            foreach (var dir in new[] { "/usr/bin", "/usr/local/bin", "/bin" }
                         .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)))
            {
                string candidate = Path.Combine(dir, tool);
                if (File.Exists(candidate)) return candidate;
            }
            return null;
        }
    }

    /// <summary>A byte[]-backed disk.</summary>
    private sealed class MemoryBlockDevice(byte[] content, bool readOnly) : IBlockDevice
    {
        private int _flushes, _writes;

        public static MemoryBlockDevice Random(int size, int seed, bool readOnly)
        {
            byte[] content = new byte[size];
            new Random(seed).NextBytes(content);
            return new MemoryBlockDevice(content, readOnly);
        }

        public long Length => content.Length;
        public bool IsReadOnly => readOnly;
        public int FlushCount => Volatile.Read(ref _flushes);
        public int WriteCount => Volatile.Read(ref _writes);

        public byte[] Snapshot()
        {
            lock (content) return (byte[])content.Clone();
        }

        public string Sha256()
        {
            lock (content) return Convert.ToHexString(SHA256.HashData(content));
        }

        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan(offset + buffer.Length, Length);
            lock (content) content.AsSpan((int)offset, buffer.Length).CopyTo(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            if (readOnly) throw new NotSupportedException("read-only");
            ArgumentOutOfRangeException.ThrowIfGreaterThan(offset + data.Length, Length);
            Interlocked.Increment(ref _writes);
            lock (content) data.Span.CopyTo(content.AsSpan((int)offset));
            return ValueTask.CompletedTask;
        }

        public ValueTask FlushAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _flushes);
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>Reads wait at a gate, to observe how many the server runs at once.</summary>
    private sealed class GatedBlockDevice(MemoryBlockDevice inner, Func<long, bool>? gated = null) : IBlockDevice
    {
        private readonly TaskCompletionSource _gate = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _concurrent, _max;

        public MemoryBlockDevice Inner => inner;
        public int MaxConcurrent => Volatile.Read(ref _max);
        public long Length => inner.Length;
        public bool IsReadOnly => inner.IsReadOnly;

        public void Open() => _gate.TrySetResult();

        public async Task WaitForConcurrentAsync(int n, TimeSpan timeout)
        {
            var sw = Stopwatch.StartNew();
            while (Volatile.Read(ref _concurrent) < n)
            {
                if (sw.Elapsed > timeout) throw new TimeoutException($"only {_concurrent} concurrent reads");
                await Task.Delay(10);
            }
        }

        public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            int now = Interlocked.Increment(ref _concurrent);
            int seen;
            while (now > (seen = Volatile.Read(ref _max)) && Interlocked.CompareExchange(ref _max, now, seen) != seen) { }
            try
            {
                if (gated is null || gated(offset)) await _gate.Task.WaitAsync(cancellationToken);
                await inner.ReadAsync(offset, buffer, cancellationToken);
            }
            finally
            {
                Interlocked.Decrement(ref _concurrent);
            }
        }

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => inner.WriteAsync(offset, data, cancellationToken);
        public ValueTask FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>Every I/O fails, as a vault pack that cannot be read would.</summary>
    private sealed class FailingBlockDevice(long length) : IBlockDevice
    {
        public long Length => length;
        public bool IsReadOnly => false;
        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) => throw new IOException("pack unreadable");
        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => ValueTask.FromException(new IOException("disk full"));
        public ValueTask FlushAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;
        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    /// <summary>A minimal NBD client speaking the fixed newstyle handshake and simple replies.</summary>
    private sealed class NbdTestClient : IDisposable
    {
        public const uint OptExportName = 1, OptList = 3, OptInfo = 6, OptGo = 7;
        public const uint RepAck = 1, RepInfo = 3, RepErrUnsup = 0x80000001, RepErrUnknown = 0x80000006;

        private readonly TcpClient _tcp;
        private readonly NetworkStream _stream;
        private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));

        private NbdTestClient(TcpClient tcp)
        {
            _tcp = tcp;
            _stream = tcp.GetStream();
        }

        public static async Task<NbdTestClient> ConnectAsync(int port)
        {
            var tcp = new TcpClient { NoDelay = true };
            try
            {
                await tcp.ConnectAsync("127.0.0.1", port);
            }
            catch
            {
                tcp.Dispose();
                throw;
            }
            return new NbdTestClient(tcp);
        }

        private CancellationToken Ct => _timeout.Token;

        public async Task<byte[]> ReadExactAsync(int count)
        {
            byte[] buffer = new byte[count];
            await _stream.ReadExactlyAsync(buffer, Ct);
            return buffer;
        }

        /// <summary>Bytes read until the server closes (0 when it closes right away).</summary>
        public async Task<int> ReadToEndCountAsync()
        {
            byte[] buffer = new byte[4096];
            int total = 0, n;
            try
            {
                while ((n = await _stream.ReadAsync(buffer, Ct)) > 0) total += n;
            }
            catch (IOException) { } // reset by peer counts as closed
            return total;
        }

        public async Task<ushort> ReadHelloAsync()
        {
            byte[] hello = await ReadExactAsync(18);
            Assert.Equal("NBDMAGIC", Encoding.ASCII.GetString(hello, 0, 8));
            Assert.Equal("IHAVEOPT", Encoding.ASCII.GetString(hello, 8, 8));
            return BinaryPrimitives.ReadUInt16BigEndian(hello.AsSpan(16));
        }

        public async Task HandshakeAsync(uint clientFlags = 3)
        {
            await ReadHelloAsync();
            byte[] flags = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(flags, clientFlags);
            await _stream.WriteAsync(flags, Ct);
        }

        public async Task SendOptionAsync(uint option, byte[] data)
        {
            byte[] message = new byte[16 + data.Length];
            Encoding.ASCII.GetBytes("IHAVEOPT", message);
            BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(8), option);
            BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(12), (uint)data.Length);
            data.CopyTo(message, 16);
            await _stream.WriteAsync(message, Ct);
        }

        public static byte[] GoData(string name, params ushort[] infos)
        {
            byte[] nameBytes = Encoding.UTF8.GetBytes(name);
            byte[] data = new byte[4 + nameBytes.Length + 2 + 2 * infos.Length];
            BinaryPrimitives.WriteUInt32BigEndian(data, (uint)nameBytes.Length);
            nameBytes.CopyTo(data, 4);
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(4 + nameBytes.Length), (ushort)infos.Length);
            for (int i = 0; i < infos.Length; i++)
                BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(6 + nameBytes.Length + 2 * i), infos[i]);
            return data;
        }

        public async Task<(uint Option, uint Type, byte[] Data)> ReadOptionReplyAsync()
        {
            byte[] header = await ReadExactAsync(20);
            Assert.Equal(0x0003e889045565a9UL, BinaryPrimitives.ReadUInt64BigEndian(header));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
            return (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)), BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12)), await ReadExactAsync((int)length));
        }

        /// <summary>NBD_OPT_GO; returns the export size and transmission flags.</summary>
        public async Task<(ulong Size, ushort Flags)> GoAsync(string name)
        {
            await SendOptionAsync(OptGo, GoData(name));
            ulong size = 0;
            ushort flags = 0;
            while (true)
            {
                var reply = await ReadOptionReplyAsync();
                if (reply.Type == RepAck) return (size, flags);
                Assert.Equal(RepInfo, reply.Type);
                if (BinaryPrimitives.ReadUInt16BigEndian(reply.Data) == 0)
                {
                    size = BinaryPrimitives.ReadUInt64BigEndian(reply.Data.AsSpan(2));
                    flags = BinaryPrimitives.ReadUInt16BigEndian(reply.Data.AsSpan(10));
                }
            }
        }

        public async Task SendRequestAsync(ushort type, ulong handle, ulong offset, uint length, byte[]? payload = null, ushort flags = 0)
        {
            byte[] header = new byte[28];
            BinaryPrimitives.WriteUInt32BigEndian(header, 0x25609513);
            BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(4), flags);
            BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(6), type);
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(8), handle);
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(16), offset);
            BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(24), length);
            await _stream.WriteAsync(header, Ct);
            if (payload is not null) await _stream.WriteAsync(payload, Ct);
        }

        public async Task<(uint Error, ulong Handle)> ReadReplyHeaderAsync()
        {
            byte[] reply = await ReadExactAsync(16);
            Assert.Equal(0x67446698u, BinaryPrimitives.ReadUInt32BigEndian(reply));
            return (BinaryPrimitives.ReadUInt32BigEndian(reply.AsSpan(4)), BinaryPrimitives.ReadUInt64BigEndian(reply.AsSpan(8)));
        }

        /// <summary>Sends one request and returns the error of its reply (which must carry no data unless it is a successful READ).</summary>
        public async Task<uint> RequestErrorAsync(ushort type, ulong handle, ulong offset, uint length, byte[]? payload = null, ushort flags = 0)
        {
            await SendRequestAsync(type, handle, offset, length, payload, flags);
            var (error, replyHandle) = await ReadReplyHeaderAsync();
            Assert.Equal(handle, replyHandle);
            if (error == 0 && type == 0) await ReadExactAsync((int)length);
            return error;
        }

        public async Task<byte[]> ReadAsync(ulong handle, ulong offset, uint length)
        {
            await SendRequestAsync(0, handle, offset, length);
            var (error, replyHandle) = await ReadReplyHeaderAsync();
            Assert.Equal((0u, handle), (error, replyHandle));
            return await ReadExactAsync((int)length);
        }

        public void Dispose()
        {
            _stream.Dispose();
            _tcp.Dispose();
            _timeout.Dispose();
        }
    }
}
