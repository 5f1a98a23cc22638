using System.Security.Cryptography;
using System.Text.Json.Nodes;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Items;
using AsrModule.Engine.Replication.Tracking;
using AsrModule.Engine.Replication.Tracking.Qemu;
using Microsoft.Extensions.Logging.Abstractions;
using RequiresTool = AsrModule.Tests.Unit.NbdServerTests.RequiresToolAttribute;

namespace AsrModule.Tests.Unit.Tracking;

/// <summary>
/// <see cref="QemuDirtyBitmapTracker"/> against a real QEMU (qemu-system-x86_64 -machine none) whose
/// disks are written through its block layer, so the dirty bitmaps, the fleecing and the NBD exports
/// are QEMU's own.
/// </summary>
public sealed class QemuDirtyBitmapTrackerTests : IAsyncLifetime
{
    private const long DiskSize = 32 * 1024 * 1024;
    private const long MiB = 1024 * 1024;

    private readonly TempDir _dir = new();
    private QemuVm _vm = null!;
    private AsrProtectedItem _item = null!;

    public async Task InitializeAsync()
    {
        TestDisks.Create(_dir["disk0.img"], DiskSize, seed: 1);
        TestDisks.Create(_dir["disk1.img"], DiskSize / 2, seed: 2);
        _vm = await QemuVm.StartAsync(_dir.Path, _dir["disk0.img"], _dir["disk1.img"]);
        _item = _vm.Item();
    }

    public async Task DisposeAsync()
    {
        if (_vm is not null) await _vm.DisposeAsync();
        _dir.Dispose();
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task First_capture_has_no_history_and_later_ones_report_exactly_the_written_blocks_of_each_disk()
    {
        await using var tracker = await OpenAsync();
        var first = await tracker.CaptureAsync(_item, 0, 1, default);
        Assert.All(first, c => Assert.Null(c.ChangedRanges));
        Assert.All(first, c => Assert.Contains("No earlier point", c.HistoryLostReason));
        Assert.Equal([DiskSize, DiskSize / 2], first.Select(c => c.Size));
        await tracker.CommitAsync(default);

        await _vm.WriteAsync(MiB + 512, 100, 0xaa);             // unaligned: one 4 KiB block
        await _vm.WriteAsync(20 * MiB, 64 * 1024, 0xbb);         // 16 blocks
        await _vm.WriteAsync(3 * MiB - 4096, 8192, 0xcc, drive: 1); // straddles a MiB boundary
        var second = await tracker.CaptureAsync(_item, 1, 2, default);

        Assert.Equal([new ByteRange(MiB, 4096), new ByteRange(20 * MiB, 64 * 1024)], second[0].ChangedRanges);
        Assert.Equal([new ByteRange(3 * MiB - 4096, 8192)], second[1].ChangedRanges);
        Assert.All(second, c => Assert.Null(c.HistoryLostReason));
        await tracker.CommitAsync(default);

        var third = await tracker.CaptureAsync(_item, 2, 3, default);
        Assert.All(third, c => Assert.Empty(c.ChangedRanges!));
        await tracker.CommitAsync(default);
        Assert.Equal([Bitmap(0, 3)], await _vm.BitmapsAsync(0));
        Assert.Empty(await _vm.AsrObjectsAsync());
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task Reads_return_the_disks_as_of_the_capture_instant_while_QEMU_keeps_writing()
    {
        await using var tracker = await OpenAsync();
        for (long point = 1; point <= 2; point++)
        {
            await _vm.WriteAsync(point * MiB, 4096, (byte)point);
            var captures = await tracker.CaptureAsync(_item, point - 1, point, default);
            string[] atCapture = _vm.Disks.Select(QemuVm.Sha256).ToArray();

            // Overwrite blocks inside and outside the captured changes, on both disks, and grow nothing.
            await _vm.WriteAsync(0, 2 * MiB, 0xee);
            await _vm.WriteAsync(point * MiB, 4096, 0xef);
            await _vm.WriteAsync(DiskSize - 64 * 1024, 64 * 1024, 0x11);
            await _vm.WriteAsync(5 * MiB + 123, 7777, 0x22, drive: 1);
            Assert.NotEqual(atCapture[0], QemuVm.Sha256(_vm.Disks[0]));

            for (int d = 0; d < captures.Count; d++)
                Assert.Equal(atCapture[d], await HashAsync(captures[d]));
            await tracker.CommitAsync(default);
        }
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task Abort_keeps_the_captured_changes_and_those_written_since_for_the_next_capture()
    {
        await using var tracker = await OpenAsync();
        await tracker.CaptureAsync(_item, 0, 1, default);
        await tracker.CommitAsync(default);

        await _vm.WriteAsync(2 * MiB, 4096, 0xa1);
        var attempt = await tracker.CaptureAsync(_item, 1, 2, default);
        Assert.Equal([new ByteRange(2 * MiB, 4096)], attempt[0].ChangedRanges);
        await _vm.WriteAsync(9 * MiB, 4096, 0xa2); // after the capture: recorded in the new bitmap only
        await tracker.AbortAsync();
        Assert.Equal([Bitmap(0, 1)], await _vm.BitmapsAsync(0));

        var retry = await tracker.CaptureAsync(_item, 1, 2, default);
        Assert.Equal([new ByteRange(2 * MiB, 4096), new ByteRange(9 * MiB, 4096)], retry[0].ChangedRanges);
        Assert.Empty(retry[1].ChangedRanges!);
        await tracker.CommitAsync(default);
        Assert.Empty(await _vm.AsrObjectsAsync());
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task Commit_forgets_the_published_changes()
    {
        await using var tracker = await OpenAsync();
        await tracker.CaptureAsync(_item, 0, 1, default);
        await tracker.CommitAsync(default);
        await _vm.WriteAsync(4 * MiB, 4096, 0xb1);
        await tracker.CaptureAsync(_item, 1, 2, default);
        await _vm.WriteAsync(12 * MiB, 4096, 0xb2);
        await tracker.CommitAsync(default);

        var next = await tracker.CaptureAsync(_item, 2, 3, default);
        Assert.Equal([new ByteRange(12 * MiB, 4096)], next[0].ChangedRanges);
        await tracker.CommitAsync(default);
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task A_restarted_QEMU_reports_lost_history_and_the_next_capture_has_history_again()
    {
        await using (var tracker = await OpenAsync())
        {
            await tracker.CaptureAsync(_item, 0, 1, default);
            await tracker.CommitAsync(default);
        }
        await _vm.WriteAsync(6 * MiB, 4096, 0xc1);
        await _vm.RestartAsync();
        await _vm.WriteAsync(7 * MiB, 4096, 0xc2);

        await using (var tracker = await OpenAsync())
        {
            var lost = await tracker.CaptureAsync(_item, 1, 2, default);
            Assert.All(lost, c => Assert.Null(c.ChangedRanges));
            Assert.All(lost, c => Assert.Equal("QEMU's dirty bitmap for point 1 is gone (QEMU restarted?): every block is read.", c.HistoryLostReason));
            Assert.Equal(QemuVm.Sha256(_vm.Disks[0]), await HashAsync(lost[0]));
            await tracker.CommitAsync(default);

            await _vm.WriteAsync(8 * MiB, 4096, 0xc3);
            var again = await tracker.CaptureAsync(_item, 2, 3, default);
            Assert.Equal([new ByteRange(8 * MiB, 4096)], again[0].ChangedRanges);
            await tracker.CommitAsync(default);
        }
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task Leftovers_of_a_killed_tracker_are_removed_and_no_write_is_lost()
    {
        var tracker = await OpenAsync();
        await tracker.CaptureAsync(_item, 0, 1, default);
        await tracker.CommitAsync(default);

        // Killed during the cycle of point 2, which is never published.
        await _vm.WriteAsync(MiB, 4096, 0xd1);
        await tracker.CaptureAsync(_item, 1, 2, default);
        await _vm.WriteAsync(10 * MiB, 4096, 0xd2);
        await tracker.AbandonAsync();
        Assert.NotEmpty(await _vm.AsrObjectsAsync());
        Assert.NotEmpty(Directory.GetFiles(_dir.Path, ".asr-fleece-*"));

        tracker = await OpenAsync();
        Assert.Empty(await _vm.AsrObjectsAsync());
        Assert.Empty(Directory.GetFiles(_dir.Path, ".asr-fleece-*"));
        Assert.Empty(Directory.GetFiles(_dir.Path, "asr-nbd-*"));
        var retry = await tracker.CaptureAsync(_item, 1, 2, default);
        Assert.Equal([new ByteRange(MiB, 4096), new ByteRange(10 * MiB, 4096)], retry[0].ChangedRanges);
        await tracker.CommitAsync(default);

        // Killed after point 3 was published but before the tracker heard of it.
        await _vm.WriteAsync(11 * MiB, 4096, 0xd3);
        await tracker.CaptureAsync(_item, 2, 3, default);
        await _vm.WriteAsync(14 * MiB, 4096, 0xd4);
        await tracker.AbandonAsync();
        Assert.Equal([Bitmap(0, 2), Bitmap(0, 3)], await _vm.BitmapsAsync(0));

        await using (tracker = await OpenAsync())
        {
            var next = await tracker.CaptureAsync(_item, 3, 4, default);
            Assert.Equal([new ByteRange(14 * MiB, 4096)], next[0].ChangedRanges);
            await tracker.CommitAsync(default);
            Assert.Equal([Bitmap(0, 4)], await _vm.BitmapsAsync(0));
        }
        Assert.Empty(await _vm.AsrObjectsAsync());
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task Pause_stops_the_guest_and_resume_restarts_only_a_guest_the_tracker_paused()
    {
        await using (var tracker = await OpenAsync())
        {
            // The instant of a group: paused, captured, resumed.
            await tracker.PauseSourceAsync(default);
            Assert.False(await _vm.IsRunningAsync());
            var captures = await tracker.CaptureAsync(_item, 0, 1, default);
            string atCapture = QemuVm.Sha256(_vm.Disks[0]);
            await tracker.ResumeSourceAsync();
            Assert.True(await _vm.IsRunningAsync());
            await _vm.WriteAsync(0, MiB, 0x99);
            Assert.Equal(atCapture, await HashAsync(captures[0]));
            await tracker.CommitAsync(default);
            await tracker.ResumeSourceAsync(); // safe when not paused
            Assert.True(await _vm.IsRunningAsync());

            await _vm.ExecuteAsync("stop"); // paused by someone else: theirs to resume
            await tracker.PauseSourceAsync(default);
            await tracker.ResumeSourceAsync();
            Assert.False(await _vm.IsRunningAsync());
            await _vm.ExecuteAsync("cont");

            await tracker.PauseSourceAsync(default);
        }
        Assert.True(await _vm.IsRunningAsync()); // disposing never leaves the guest paused

        // An agent killed between pause and resume: the next one resumes the guest.
        var killed = await OpenAsync();
        await killed.PauseSourceAsync(default);
        await killed.AbandonAsync();
        Assert.False(await _vm.IsRunningAsync());
        await using (await OpenAsync())
            Assert.True(await _vm.IsRunningAsync());
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task A_disk_QEMU_does_not_have_open_or_an_unreachable_socket_is_a_clear_error()
    {
        TestDisks.Create(_dir["other.img"], MiB, seed: 3);
        _item.Disks.Add(new ProtectedDisk { DiskId = "disk2", Name = "other.img", SourcePath = _dir["other.img"], SizeBytes = MiB, BlockSize = 4096 });
        await using (var tracker = await OpenAsync())
        {
            var ex = await Assert.ThrowsAsync<AsrException>(() => tracker.CaptureAsync(_item, 0, 1, default));
            Assert.Equal(AsrErrorIds.QemuSourceUnavailable, ex.ErrorId);
            Assert.Contains("other.img", ex.Message);
            Assert.Empty(await _vm.AsrObjectsAsync());
        }

        _item.QmpSocketPath = _dir["nobody.sock"];
        var unreachable = await Assert.ThrowsAsync<AsrException>(OpenAsync);
        Assert.Equal(AsrErrorIds.QemuSourceUnavailable, unreachable.ErrorId);
        Assert.Contains("nobody.sock", unreachable.Message);
    }

    [RequiresTool("qemu-system-x86_64")]
    public async Task NbdClient_reads_a_QEMU_export_over_a_unix_socket_with_structured_replies_and_block_status()
    {
        await _vm.WriteAsync(0, 4096, 0x5a);
        var node = (await _vm.ExecuteAsync("query-block")).EnumerateArray().First().GetProperty("inserted").GetProperty("node-name").GetString();
        string socket = _dir["nbd.sock"];
        await _vm.ExecuteAsync("nbd-server-start", new JsonObject { ["addr"] = new JsonObject { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = socket } } });
        await _vm.ExecuteAsync("block-export-add", new JsonObject { ["type"] = "nbd", ["id"] = "t", ["node-name"] = node, ["name"] = "disk 0", ["writable"] = false });

        await using (var client = await NbdClient.ConnectAsync(new Uri($"nbd+unix:///disk%200?socket={socket}"),
                         new NbdClientOptions { MetaContexts = ["base:allocation"] }, default))
        {
            Assert.True(client.StructuredReplies);
            Assert.Equal(DiskSize, client.Size);
            var extents = await client.BlockStatusAsync("base:allocation", 0, DiskSize, default);
            Assert.Equal(0, extents[0].Offset);
            Assert.Equal(DiskSize, extents[^1].End);
            // TestDisks leaves MiB 2 and 3 of every 4 as zeros, which QEMU reports with NBD_STATE_ZERO.
            Assert.Contains(extents, e => (e.Flags & 2) != 0 && e.Offset <= 2 * MiB && e.End >= 4 * MiB);

            // The largest request QEMU accepts (32 MiB), answered with data and hole chunks.
            var content = new byte[DiskSize];
            await client.ReadAsync(0, content, default);
            Assert.Equal(QemuVm.Sha256(_vm.Disks[0]), Convert.ToHexString(SHA256.HashData(content)));
            var unaligned = new byte[10_000];
            await client.ReadAsync(MiB * 2 - 5_000, unaligned, default);
            Assert.True(unaligned.AsSpan().SequenceEqual(content.AsSpan((int)(MiB * 2 - 5_000), 10_000)));
        }

        // Without options the client stays on simple replies.
        await using var simple = await NbdClient.ConnectUnixAsync(socket, "disk 0", null, default);
        Assert.False(simple.StructuredReplies);
        var head = new byte[4096];
        await simple.ReadAsync(0, head, default);
        Assert.All(head, b => Assert.Equal(0x5a, b));
    }

    private Task<QemuDirtyBitmapTracker> OpenAsync() => QemuDirtyBitmapTracker.OpenAsync(_item, NullLogger.Instance, default);

    private string Bitmap(int disk, long sequence) => $"asr-{_item.Id}-disk{disk}-{sequence}";

    private static async Task<string> HashAsync(IDiskCapture capture)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[4 * MiB];
        for (long offset = 0; offset < capture.Size; offset += buffer.Length)
        {
            int length = (int)Math.Min(buffer.Length, capture.Size - offset);
            await capture.ReadAsync(offset, buffer.AsMemory(0, length), default);
            sha.AppendData(buffer, 0, length);
        }
        return Convert.ToHexString(sha.GetHashAndReset());
    }
}
