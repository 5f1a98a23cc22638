using AsrModule.Engine.Errors;
using AsrModule.Engine.Replication.Sources.Images;
using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Tests.Unit.Images;

/// <summary>
/// Persistent dirty bitmaps of stopped qcow2 images: qemu-img manages them, any QEMU that writes the image
/// (qemu-io here, the VM in production) marks them, and qemu-nbd exposes them as NBD block status.
/// </summary>
public sealed class QemuImageBitmapsTests
{
    private const long Granularity = 64 << 10;

    [RequiresQemuFact]
    public async Task Writes_to_a_stopped_image_show_up_as_dirty_ranges_at_the_bitmaps_granularity()
    {
        using var dir = new TempDir();
        string image = dir["vm.qcow2"];
        await QemuImageConverter.CreateAsync(image, DiskImageFormat.Qcow2, 128L << 20, ImageTestKit.Timeout());
        await QemuImageBitmaps.AddAsync(image, "asr-test", Granularity, ImageTestKit.Timeout());

        var bitmap = Assert.Single(await QemuImageBitmaps.ListAsync(image, ImageTestKit.Timeout()));
        Assert.Equal(new QemuImageBitmap("asr-test", Granularity, Enabled: true, InUse: false), bitmap);
        Assert.True(bitmap.IsConsistent);

        // qemu-io opens the image read-write, like a VM: it loads the enabled bitmap, marks it and stores it on close.
        await ImageTestKit.QemuIoAsync("-f", "qcow2", "-c", "write -P 0xab 1M 64k", "-c", "write -P 0xcd 50M 4k", "-c", "write -P 0xef 104857700 10", image);

        await using (var source = await QemuImageSource.OpenAsync(image, DiskImageFormat.Qcow2, "asr-test", ImageTestKit.Timeout()))
        {
            Assert.Equal("asr-test", source.DirtyBitmap);
            var dirty = await source.DirtyRangesAsync(ImageTestKit.Timeout());
            Assert.Equal(new ByteRange[]
            {
                new(1 << 20, Granularity),
                new(50L << 20, Granularity),       // a 4 KiB write marks its whole 64 KiB granule
                new(100L << 20, Granularity),
            }, dirty);
            // Reading the dirty ranges gives the written data.
            var block = new byte[4096];
            await source.ReadAsync(50L << 20, block, ImageTestKit.Timeout());
            Assert.All(block, b => Assert.Equal(0xcd, b));
            // The allocation view is independent of the bitmap.
            Assert.NotEmpty((await source.GetDataRangesAsync(ImageTestKit.Timeout()))!);
        }

        await QemuImageBitmaps.ClearAsync(image, "asr-test", ImageTestKit.Timeout());
        await using (var source = await QemuImageSource.OpenAsync(image, DiskImageFormat.Qcow2, "asr-test", ImageTestKit.Timeout()))
            Assert.Empty(await source.DirtyRangesAsync(ImageTestKit.Timeout()));

        // Still enabled after the clear: the next write is recorded.
        await ImageTestKit.QemuIoAsync("-f", "qcow2", "-c", "write -P 0x11 127M 512", image);
        await using (var source = await QemuImageSource.OpenAsync(image, DiskImageFormat.Qcow2, "asr-test", ImageTestKit.Timeout()))
            Assert.Equal([new ByteRange(127L << 20, Granularity)], await source.DirtyRangesAsync(ImageTestKit.Timeout()));

        await QemuImageBitmaps.RemoveAsync(image, "asr-test", ImageTestKit.Timeout());
        Assert.Empty(await QemuImageBitmaps.ListAsync(image, ImageTestKit.Timeout()));
    }

    [RequiresQemuFact]
    public async Task A_bitmap_left_in_use_by_a_crashed_QEMU_is_reported_unusable_and_can_only_be_removed()
    {
        using var dir = new TempDir();
        string image = dir["vm.qcow2"];
        await QemuImageConverter.CreateAsync(image, DiskImageFormat.Qcow2, 16L << 20, ImageTestKit.Timeout());
        await QemuImageBitmaps.AddAsync(image, "asr", 4096, ImageTestKit.Timeout());
        // A QEMU that opens the image read-write marks the bitmap in use; SIGKILL leaves it so.
        var vm = await TestQemuNbd.StartAsync(dir["vm.sock"], "-f", "qcow2", image);
        await vm.CrashAsync();
        await vm.DisposeAsync();

        var bitmap = Assert.Single(await QemuImageBitmaps.ListAsync(image, ImageTestKit.Timeout()));
        Assert.True(bitmap.InUse);
        Assert.False(bitmap.IsConsistent);

        var open = await Assert.ThrowsAsync<AsrException>(() => QemuImageSource.OpenAsync(image, DiskImageFormat.Qcow2, "asr", ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskImageFailed, open.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidData, open.Kind);
        Assert.Contains("inconsistent", open.Message);
        Assert.Contains("remove the bitmap and add it again", open.Message);

        var clear = await Assert.ThrowsAsync<AsrException>(() => QemuImageBitmaps.ClearAsync(image, "asr", ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskImageFailed, clear.ErrorId);

        await QemuImageBitmaps.RemoveAsync(image, "asr", ImageTestKit.Timeout());
        await QemuImageBitmaps.AddAsync(image, "asr", 4096, ImageTestKit.Timeout());
        Assert.True(Assert.Single(await QemuImageBitmaps.ListAsync(image, ImageTestKit.Timeout())).IsConsistent);
    }

    [RequiresQemuFact]
    public async Task Bitmap_commands_on_an_image_a_VM_has_open_are_ResourceBusy()
    {
        using var dir = new TempDir();
        string image = dir["vm.qcow2"];
        await QemuImageConverter.CreateAsync(image, DiskImageFormat.Qcow2, 16L << 20, ImageTestKit.Timeout());
        await using var vm = await TestQemuNbd.StartAsync(dir["vm.sock"], "-f", "qcow2", image);

        var add = await Assert.ThrowsAsync<AsrException>(() => QemuImageBitmaps.AddAsync(image, "asr", 65536, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskImageFailed, add.ErrorId);
        Assert.Equal(AsrErrorKind.ResourceBusy, add.Kind);
        Assert.Contains(image, add.Message);
        var list = await Assert.ThrowsAsync<AsrException>(() => QemuImageBitmaps.ListAsync(image, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorKind.ResourceBusy, list.Kind);
    }

    [RequiresQemuFact]
    public async Task Bad_names_granularities_and_duplicates_are_refused()
    {
        using var dir = new TempDir();
        string image = dir["vm.qcow2"];
        await QemuImageConverter.CreateAsync(image, DiskImageFormat.Qcow2, 16L << 20, ImageTestKit.Timeout());

        await Assert.ThrowsAsync<ArgumentException>(() => QemuImageBitmaps.AddAsync(image, "-q", 65536, ImageTestKit.Timeout()));
        await Assert.ThrowsAsync<ArgumentException>(() => QemuImageBitmaps.AddAsync(image, "a b", 65536, ImageTestKit.Timeout()));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => QemuImageBitmaps.AddAsync(image, "asr", 1000, ImageTestKit.Timeout()));

        await QemuImageBitmaps.AddAsync(image, "asr", 65536, ImageTestKit.Timeout());
        var duplicate = await Assert.ThrowsAsync<AsrException>(() => QemuImageBitmaps.AddAsync(image, "asr", 65536, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskImageFailed, duplicate.ErrorId);
        Assert.Contains("already exists", duplicate.Message);

        var missing = await Assert.ThrowsAsync<AsrException>(() => QemuImageBitmaps.ClearAsync(image, "other", ImageTestKit.Timeout()));
        Assert.Contains("not found", missing.Message);

        var notQcow2 = await Assert.ThrowsAsync<AsrException>(() => QemuImageBitmaps.ListAsync(dir["none.qcow2"], ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskNotFound, notQcow2.ErrorId);
    }
}
