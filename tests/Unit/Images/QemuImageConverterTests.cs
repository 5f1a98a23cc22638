using System.Text;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Tests.Unit.Images;

/// <summary>Recovered disks written out as hypervisor images with qemu-img, read back through qemu-nbd.</summary>
public sealed class QemuImageConverterTests
{
    [RequiresQemuTheory]
    [InlineData(DiskImageFormat.Qcow2)]
    [InlineData(DiskImageFormat.Vmdk)]
    [InlineData(DiskImageFormat.Vhdx)]
    [InlineData(DiskImageFormat.Vdi)]
    [InlineData(DiskImageFormat.Raw)]
    public async Task Converts_a_raw_disk_into_each_format_bit_exact(DiskImageFormat format)
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], ImageTestKit.DiskSize, seed: 20 + (int)format);
        string output = dir["out." + DiskImageFormats.QemuName(format)];

        await QemuImageConverter.ConvertAsync(dir["disk.raw"], DiskImageFormat.Raw, output, format, ImageTestKit.Timeout());

        Assert.False(Directory.Exists(output + ".partial"));
        Assert.Equal(format, DiskImageFormats.Detect(output));
        // Sparse: the zero regions were not written.
        Assert.True(new FileInfo(output).Length < ImageTestKit.DiskSize || format == DiskImageFormat.Raw);
        await using var image = await QemuImageSource.OpenAsync(output, format, null, ImageTestKit.Timeout());
        Assert.Equal(ImageTestKit.DiskSize, image.Size);
        Assert.Equal(TestDisks.Sha256(dir["disk.raw"]), await ImageTestKit.Sha256Async(image));
    }

    [RequiresQemuFact]
    public async Task A_vmdk_names_its_final_file_in_its_descriptor()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 16L << 20, seed: 30);
        await QemuImageConverter.ConvertAsync(dir["disk.raw"], DiskImageFormat.Raw, dir["web01.vmdk"], DiskImageFormat.Vmdk, ImageTestKit.Timeout());

        // The embedded descriptor of a monolithicSparse VMDK names its extent (the file itself).
        byte[] head = new byte[64 << 10];
        using (var fs = File.OpenRead(dir["web01.vmdk"])) fs.ReadExactly(head);
        string text = Encoding.ASCII.GetString(head);
        Assert.Contains("createType=\"monolithicSparse\"", text);
        Assert.Contains("SPARSE \"web01.vmdk\"", text);
    }

    [RequiresQemuFact]
    public async Task Converts_from_an_NBD_export()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], ImageTestKit.DiskSize, seed: 31);
        await using (var server = await TestQemuNbd.StartAsync(dir["src.sock"], "--read-only", "-f", "raw", dir["disk.raw"]))
            await QemuImageConverter.ConvertAsync(server.Uri, DiskImageFormat.Raw, dir["out.vhdx"], DiskImageFormat.Vhdx, ImageTestKit.Timeout());

        await using var image = await QemuImageSource.OpenAsync(dir["out.vhdx"], DiskImageFormat.Vhdx, null, ImageTestKit.Timeout());
        Assert.Equal(TestDisks.Sha256(dir["disk.raw"]), await ImageTestKit.Sha256Async(image));
    }

    [RequiresQemuFact]
    public async Task Converts_between_image_formats()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 64L << 20, seed: 32);
        await QemuImageConverter.ConvertAsync(dir["disk.raw"], DiskImageFormat.Raw, dir["a.vdi"], DiskImageFormat.Vdi, ImageTestKit.Timeout());
        await QemuImageConverter.ConvertAsync(dir["a.vdi"], DiskImageFormat.Vdi, dir["b.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout());

        await using var image = await QemuImageSource.OpenAsync(dir["b.qcow2"], DiskImageFormat.Qcow2, null, ImageTestKit.Timeout());
        Assert.Equal(TestDisks.Sha256(dir["disk.raw"]), await ImageTestKit.Sha256Async(image));
    }

    [RequiresQemuFact]
    public async Task Never_overwrites_and_replaces_a_leftover_partial()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 16L << 20, seed: 33);
        await File.WriteAllTextAsync(dir["taken.qcow2"], "precious");
        var exists = await Assert.ThrowsAsync<AsrException>(() =>
            QemuImageConverter.ConvertAsync(dir["disk.raw"], DiskImageFormat.Raw, dir["taken.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.ExportDestinationExists, exists.ErrorId);
        Assert.Equal("precious", await File.ReadAllTextAsync(dir["taken.qcow2"]));

        // What an interrupted conversion leaves behind.
        Directory.CreateDirectory(dir["new.qcow2.partial"]);
        await File.WriteAllTextAsync(Path.Combine(dir["new.qcow2.partial"], "new.qcow2"), "half");
        await QemuImageConverter.ConvertAsync(dir["disk.raw"], DiskImageFormat.Raw, dir["new.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout());
        Assert.Equal(DiskImageFormat.Qcow2, DiskImageFormats.Detect(dir["new.qcow2"]));
        Assert.False(Directory.Exists(dir["new.qcow2.partial"]));
    }

    [RequiresQemuFact]
    public async Task A_failed_conversion_leaves_nothing_and_says_why()
    {
        using var dir = new TempDir();
        await File.WriteAllBytesAsync(dir["not-a.vdi"], new byte[1 << 20]);
        var ex = await Assert.ThrowsAsync<AsrException>(() =>
            QemuImageConverter.ConvertAsync(dir["not-a.vdi"], DiskImageFormat.Vdi, dir["out.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskImageFailed, ex.ErrorId);
        Assert.Contains("qemu-img could not convert", ex.Message);
        Assert.Contains("not-a.vdi", ex.Message);
        Assert.False(File.Exists(dir["out.qcow2"]));
        Assert.False(Directory.Exists(dir["out.qcow2.partial"]));
    }

    [RequiresQemuFact]
    public async Task Cancellation_stops_qemu_img_and_removes_the_partial_image()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 16L << 20, seed: 34);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            QemuImageConverter.ConvertAsync(dir["disk.raw"], DiskImageFormat.Raw, dir["out.qcow2"], DiskImageFormat.Qcow2, cts.Token));
        Assert.False(File.Exists(dir["out.qcow2"]));
        Assert.False(Directory.Exists(dir["out.qcow2.partial"]));
    }

    [RequiresQemuFact]
    public async Task Legacy_vhd_is_read_only_and_unknown_sources_are_refused()
    {
        using var dir = new TempDir();
        ImageTestKit.CreateScatteredRaw(dir["disk.raw"], 16L << 20, seed: 35);
        var vhd = await Assert.ThrowsAsync<AsrException>(() =>
            QemuImageConverter.ConvertAsync(dir["disk.raw"], DiskImageFormat.Raw, dir["out.vhd"], DiskImageFormat.Vpc, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, vhd.ErrorId);
        Assert.Contains("VHDX", vhd.Message);
        var create = await Assert.ThrowsAsync<AsrException>(() => QemuImageConverter.CreateAsync(dir["new.vhd"], DiskImageFormat.Vpc, 1 << 20, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, create.ErrorId);

        var missing = await Assert.ThrowsAsync<AsrException>(() =>
            QemuImageConverter.ConvertAsync(dir["missing.raw"], DiskImageFormat.Raw, dir["out.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskNotFound, missing.ErrorId);
    }

    [RequiresQemuTheory]
    [InlineData(DiskImageFormat.Qcow2)]
    [InlineData(DiskImageFormat.Vmdk)]
    [InlineData(DiskImageFormat.Vhdx)]
    [InlineData(DiskImageFormat.Vdi)]
    [InlineData(DiskImageFormat.Raw)]
    public async Task Creates_empty_images_of_each_writable_format(DiskImageFormat format)
    {
        using var dir = new TempDir();
        string path = dir["empty." + DiskImageFormats.QemuName(format)];
        await QemuImageConverter.CreateAsync(path, format, 64L << 20, ImageTestKit.Timeout());
        Assert.Equal(format, DiskImageFormats.Detect(path));
        await using var image = await QemuImageSource.OpenAsync(path, format, null, ImageTestKit.Timeout());
        Assert.Equal(64L << 20, image.Size);
        var zeros = await ImageTestKit.Sha256OfRangesAsync(image, []);
        Assert.Equal(zeros, await ImageTestKit.Sha256Async(image));
    }
}
