using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Tests.Unit.Images;

/// <summary>
/// Images of every hypervisor format read through qemu-nbd: bit-exact content, allocation (what a copy must
/// read), image locking and errors. The images are made from a known raw disk by qemu-img convert.
/// </summary>
public sealed class QemuImageSourceTests
{
    [RequiresQemuTheory]
    [InlineData(DiskImageFormat.Qcow2)]
    [InlineData(DiskImageFormat.Vmdk)]
    [InlineData(DiskImageFormat.Vhdx)]
    [InlineData(DiskImageFormat.Vdi)]
    [InlineData(DiskImageFormat.Vpc)]
    public async Task Reads_every_format_bit_exact_and_its_data_ranges_hold_all_data(DiskImageFormat format)
    {
        using var dir = new TempDir();
        var regions = ImageTestKit.CreateScatteredRaw(dir["disk.raw"], ImageTestKit.DiskSize, seed: (int)format);
        string image = dir["disk." + DiskImageFormats.QemuName(format)];
        // force_size: keep the raw size instead of rounding it to a CHS geometry (what Hyper-V's VHDs do too).
        string[] options = format == DiskImageFormat.Vpc ? ["-o", "force_size=on"] : [];
        await ImageTestKit.QemuImgAsync(["convert", "-f", "raw", "-O", DiskImageFormats.QemuName(format), .. options, dir["disk.raw"], image]);

        Assert.Equal(format, DiskImageFormats.Detect(image));
        await using var source = await QemuImageSource.OpenAsync(image, format, null, ImageTestKit.Timeout());
        Assert.Equal(image, source.Path);
        Assert.Equal(ImageTestKit.DiskSize, source.Size);
        string expected = TestDisks.Sha256(dir["disk.raw"]);
        Assert.Equal(expected, await ImageTestKit.Sha256Async(source));

        var ranges = await source.GetDataRangesAsync(ImageTestKit.Timeout());
        Assert.NotNull(ranges);
        ImageTestKit.AssertSortedAndDisjoint(ranges, source.Size);
        foreach (var region in regions)
            Assert.Contains(ranges, r => r.Offset <= region.Offset && region.End <= r.End);
        // Reading only the data ranges gives the whole disk.
        Assert.Equal(expected, await ImageTestKit.Sha256OfRangesAsync(source, ranges));
        long data = ranges.Sum(r => r.Length);
        if (format == DiskImageFormat.Vhdx)
            Assert.True(data <= source.Size); // QEMU 7.2's VHDX driver reports no allocation: all data.
        else
            Assert.True(data < source.Size / 8, $"{format}: {data} of {source.Size} bytes reported as data; the image is sparse");
    }

    [RequiresQemuFact]
    public async Task Reads_a_vmdk_text_descriptor_with_a_flat_extent()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 64L << 20, seed: 11);
        await ImageTestKit.QemuImgAsync("convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat", dir["disk.raw"], dir["vm.vmdk"]);
        Assert.True(File.Exists(dir["vm-flat.vmdk"]));

        Assert.Equal(DiskImageFormat.Vmdk, DiskImageFormats.Detect(dir["vm.vmdk"]));
        await using var source = await QemuImageSource.OpenAsync(dir["vm.vmdk"], DiskImageFormat.Vmdk, null, ImageTestKit.Timeout());
        Assert.Equal(64L << 20, source.Size);
        Assert.Equal(TestDisks.Sha256(dir["disk.raw"]), await ImageTestKit.Sha256Async(source));
    }

    [RequiresQemuFact]
    public async Task Reads_unaligned_ranges_and_refuses_reads_past_the_end()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 64L << 20, seed: 12);
        await ImageTestKit.QemuImgAsync("convert", "-f", "raw", "-O", "qcow2", dir["disk.raw"], dir["disk.qcow2"]);
        byte[] raw = await File.ReadAllBytesAsync(dir["disk.raw"]);

        await using var source = await QemuImageSource.OpenAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, null, ImageTestKit.Timeout());
        foreach (var (offset, length) in new[] { (1L, 1), ((5L << 20) + 100, 100_007), (19L << 20, 33 << 20), (source.Size - 3, 3) })
        {
            var buffer = new byte[length];
            await source.ReadAsync(offset, buffer, ImageTestKit.Timeout());
            Assert.True(raw.AsSpan(checked((int)offset), length).SequenceEqual(buffer), $"read at {offset}+{length}");
        }
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () => await source.ReadAsync(source.Size - 1, new byte[2], ImageTestKit.Timeout()));
        await Assert.ThrowsAsync<InvalidOperationException>(() => source.DirtyRangesAsync(ImageTestKit.Timeout()));
    }

    [RequiresQemuFact]
    public async Task Reads_an_image_a_running_VM_holds_open_without_its_lock()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 64L << 20, seed: 13);
        await ImageTestKit.QemuImgAsync("convert", "-f", "raw", "-O", "qcow2", dir["disk.raw"], dir["disk.qcow2"]);
        // A read-write qemu-nbd holds QEMU's image lock, as the VM's QEMU would.
        await using var vm = await TestQemuNbd.StartAsync(dir["vm.sock"], "-f", "qcow2", dir["disk.qcow2"]);

        await using (var source = await QemuImageSource.OpenAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, null, ImageTestKit.Timeout()))
            Assert.Equal(TestDisks.Sha256(dir["disk.raw"]), await ImageTestKit.Sha256Async(source));

        // Writing back into it is refused: that would corrupt the running VM's disk.
        var ex = await Assert.ThrowsAsync<AsrException>(() => QemuImageTarget.OpenAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskImageFailed, ex.ErrorId);
        Assert.Equal(AsrErrorKind.ResourceBusy, ex.Kind);
        Assert.Contains("lock", ex.Message);
        Assert.Contains("shut the VM down", ex.Message);
    }

    [RequiresQemuFact]
    public async Task Source_connection_is_read_only_and_the_server_goes_away_on_dispose()
    {
        using var dir = new TempDir();
        await QemuImageConverter.CreateAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, 16L << 20, ImageTestKit.Timeout());
        var source = await QemuImageSource.OpenAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, null, ImageTestKit.Timeout());
        var ranges = await source.GetDataRangesAsync(ImageTestKit.Timeout());
        Assert.Empty(ranges!); // a new image holds nothing
        await source.DisposeAsync();
        await source.DisposeAsync(); // idempotent
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await source.ReadAsync(0, new byte[512], ImageTestKit.Timeout()));
        // Nothing holds the image any more: it can be opened for writing.
        await using var target = await QemuImageTarget.OpenAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout());
    }

    [RequiresQemuFact]
    public async Task Cancelled_open_starts_nothing_that_stays()
    {
        using var dir = new TempDir();
        await QemuImageConverter.CreateAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, 16L << 20, ImageTestKit.Timeout());
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => QemuImageSource.OpenAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, null, cts.Token));
        // Cancelled half-way through the start: qemu-nbd is stopped and the image can be written.
        using var soon = new CancellationTokenSource(TimeSpan.FromMilliseconds(5));
        try { await (await QemuImageSource.OpenAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, null, soon.Token)).DisposeAsync(); }
        catch (OperationCanceledException) { }
        await using var target = await QemuImageTarget.OpenAsync(dir["disk.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout());
    }

    [RequiresQemuFact]
    public async Task A_missing_image_is_DiskNotFound()
    {
        using var dir = new TempDir();
        var ex = await Assert.ThrowsAsync<AsrException>(() => QemuImageSource.OpenAsync(dir["missing.qcow2"], DiskImageFormat.Qcow2, null, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskNotFound, ex.ErrorId);
        Assert.Equal(AsrErrorKind.ObjectNotFound, ex.Kind);
        Assert.Contains(dir["missing.qcow2"], ex.Message);
    }

    [RequiresQemuFact]
    public async Task A_corrupt_qcow2_is_DiskImageFailed_with_qemu_nbds_message()
    {
        using var dir = new TempDir();
        await QemuImageConverter.CreateAsync(dir["good.qcow2"], DiskImageFormat.Qcow2, 16L << 20, ImageTestKit.Timeout());
        // A real header, then garbage where the header extensions, tables and clusters should be.
        var corrupt = new byte[1 << 20];
        Array.Fill(corrupt, (byte)0xff);
        (await File.ReadAllBytesAsync(dir["good.qcow2"])).AsSpan(0, 200).CopyTo(corrupt);
        await File.WriteAllBytesAsync(dir["corrupt.qcow2"], corrupt);
        Assert.Equal(DiskImageFormat.Qcow2, DiskImageFormats.Detect(dir["corrupt.qcow2"]));

        var ex = await Assert.ThrowsAsync<AsrException>(() => QemuImageSource.OpenAsync(dir["corrupt.qcow2"], DiskImageFormat.Qcow2, null, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskImageFailed, ex.ErrorId);
        Assert.Equal(AsrErrorKind.ReadError, ex.Kind);
        Assert.Contains("qemu-nbd could not open disk image", ex.Message);
        Assert.Contains(dir["corrupt.qcow2"], ex.Message);
        Assert.Contains("Header extension too large", ex.Message); // qemu-nbd's own words
        Assert.Contains("qemu-img check", ex.Message);
    }

    [RequiresQemuFact]
    public async Task A_raw_disk_opened_as_the_wrong_format_fails_instead_of_guessing()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 16L << 20, seed: 14);
        var ex = await Assert.ThrowsAsync<AsrException>(() => QemuImageSource.OpenAsync(dir["disk.raw"], DiskImageFormat.Vhdx, null, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskImageFailed, ex.ErrorId);
        Assert.Contains("VHDX", ex.Message);
    }

    [RequiresQemuFact]
    public async Task Only_qcow2_images_are_opened_with_a_bitmap()
    {
        using var dir = new TempDir();
        await QemuImageConverter.CreateAsync(dir["disk.vmdk"], DiskImageFormat.Vmdk, 16L << 20, ImageTestKit.Timeout());
        var ex = await Assert.ThrowsAsync<AsrException>(() => QemuImageSource.OpenAsync(dir["disk.vmdk"], DiskImageFormat.Vmdk, "asr", ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, ex.ErrorId);
        await Assert.ThrowsAsync<ArgumentException>(() => QemuImageSource.OpenAsync(dir["disk.vmdk"], DiskImageFormat.Qcow2, "-bad name", ImageTestKit.Timeout()));
    }

    [RequiresQemuFact]
    public async Task NbdClient_refuses_writes_to_a_read_only_export()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 4L << 20, seed: 15);
        await using var server = await TestQemuNbd.StartAsync(dir["ro.sock"], "--read-only", "-f", "raw", dir["disk.raw"]);
        await using var client = await NbdClient.ConnectUnixAsync(server.SocketPath, "", null, ImageTestKit.Timeout());
        Assert.True(client.IsReadOnly);
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => client.WriteAsync(0, new byte[4096], ImageTestKit.Timeout()));
        Assert.Contains("read-only", ex.Message);
    }
}
