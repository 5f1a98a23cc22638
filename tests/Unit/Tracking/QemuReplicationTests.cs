using AsrModule.Engine.Replication;
using RequiresTool = AsrModule.Tests.Unit.NbdServerTests.RequiresToolAttribute;

namespace AsrModule.Tests.Unit.Tracking;

/// <summary>Replication cycles of an item whose disks a running QEMU holds open (the item has a QMP socket).</summary>
public sealed class QemuReplicationTests
{
    private const long MiB = 1024 * 1024;

    [RequiresTool("qemu-system-x86_64")]
    public async Task Cycles_publish_the_disk_as_of_the_capture_while_QEMU_writes_and_deltas_read_only_changed_blocks()
    {
        using var h = await EngineHarness.CreateAsync();
        const long size = 48 * MiB;
        string disk = h.Dir["vm.img"];
        TestDisks.Create(disk, size, seed: 11);
        await using var vm = await QemuVm.StartAsync(h.Dir.Path, disk);
        await h.Replication.RegisterAsync("qvm", [disk], "default", default,
            settings: new ItemReplicationSettings { QmpSocketPath = vm.QmpSocketPath });

        // The first progress report of the scan comes after the capture and after the first 4 MiB were
        // read: writes then land in blocks the cycle has yet to read.
        string? atCapture = null;
        EngineHarness.SyncProgress WriteDuringScan(params (long Offset, long Length, byte Pattern)[] writes) => new(p =>
        {
            if (atCapture is not null || !p.StatusMessage.Contains(" read, ", StringComparison.Ordinal)) return;
            atCapture = QemuVm.Sha256(disk);
            foreach (var (offset, length, pattern) in writes) vm.WriteAsync(offset, length, pattern).GetAwaiter().GetResult();
        });

        var initial = await h.CycleAsync("qvm", progress: WriteDuringScan((40 * MiB, 64 * 1024, 0x71), (size - 4096, 4096, 0x72)));
        Assert.Equal("Initial", initial.Mode);
        Assert.Equal(size, initial.BytesScanned);
        Assert.NotNull(atCapture);
        Assert.NotEqual(atCapture, QemuVm.Sha256(disk));
        var item = await h.Vault.GetItemAsync("qvm", default);
        Assert.Equal(atCapture, (await h.ExportHashesAsync((await h.Vault.GetLatestPointAsync(item.Id, default))!)).Values.Single());

        // The writes during the first scan came after its capture: the delta sends them, plus new ones.
        await vm.WriteAsync(2 * MiB, 4096, 0x73);
        await vm.WriteAsync(30 * MiB + 100, 10_000, 0x74);
        atCapture = null;
        var delta = await h.CycleAsync("qvm", progress: WriteDuringScan((40 * MiB, 64 * 1024, 0x75), (44 * MiB, 4096, 0x76)));
        Assert.Equal("Delta", delta.Mode);
        Assert.NotNull(atCapture);
        Assert.NotEqual(atCapture, QemuVm.Sha256(disk));
        // 64 KiB + 4 KiB written during the first scan, 4 KiB + 12 KiB before this one.
        Assert.True(delta.BytesScanned <= 96 * 1024, $"scanned {delta.BytesScanned} bytes of a {size}-byte disk");
        Assert.True(delta.ChangedBytes > 0);
        Assert.Equal(atCapture, (await h.ExportHashesAsync((await h.Vault.GetLatestPointAsync(item.Id, default))!)).Values.Single());

        // Nothing of ASR's stays inside QEMU between cycles.
        Assert.Empty(await vm.AsrObjectsAsync());
        Assert.Equal([$"asr-{item.Id}-disk0-2"], await vm.BitmapsAsync());
    }
}
