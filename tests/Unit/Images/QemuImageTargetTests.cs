using AsrModule.Engine.Errors;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Tests.Unit.Images;

/// <summary>Failback into a hypervisor image: guest-visible writes through a read-write qemu-nbd.</summary>
public sealed class QemuImageTargetTests
{
    [RequiresQemuTheory]
    [InlineData(DiskImageFormat.Qcow2)]
    [InlineData(DiskImageFormat.Vmdk)]
    [InlineData(DiskImageFormat.Vhdx)]
    [InlineData(DiskImageFormat.Vdi)]
    [InlineData(DiskImageFormat.Raw)]
    public async Task Writes_land_at_guest_offsets_of_the_image(DiskImageFormat format)
    {
        using var dir = new TempDir();
        const long size = 64L << 20;
        var data = ImageTestKit.CreateScatteredRaw(dir["disk.raw"], size, seed: 40)[2];
        string image = dir["image." + DiskImageFormats.QemuName(format)];
        await QemuImageConverter.ConvertAsync(dir["disk.raw"], DiskImageFormat.Raw, image, format, ImageTestKit.Timeout());
        byte[] expected = await File.ReadAllBytesAsync(dir["disk.raw"]);

        var rng = new Random(41);
        await using (var target = await QemuImageTarget.OpenAsync(image, format, ImageTestKit.Timeout()))
        {
            Assert.Equal(size, target.Size);
            // Aligned, unaligned, over existing data, in a hole, the last block, and a zero block over data.
            foreach (long offset in new[] { 0L, 4096 * 3 + 17, data.Offset, 40L << 20, size - 4096 })
            {
                var block = new byte[4096];
                rng.NextBytes(block);
                await target.WriteAsync(offset, block, ImageTestKit.Timeout());
                block.CopyTo(expected, offset);
            }
            await target.WriteAsync(data.Offset + 8192, new byte[4096], ImageTestKit.Timeout());
            Array.Clear(expected, checked((int)data.Offset + 8192), 4096);
            await target.FlushAsync(ImageTestKit.Timeout());
            await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => target.WriteAsync(size - 100, new byte[4096], ImageTestKit.Timeout()));
        }

        byte[] actual = await ImageTestKit.ToRawBytesAsync(image, format, dir["check.raw"]);
        Assert.Equal(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(expected)),
            Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(actual)));
        Assert.Equal(format, DiskImageFormats.Detect(image));
    }

    [RequiresQemuFact]
    public async Task Writes_mark_the_images_persistent_bitmaps_and_leave_them_consistent()
    {
        using var dir = new TempDir();
        string image = dir["vm.qcow2"];
        await QemuImageConverter.CreateAsync(image, DiskImageFormat.Qcow2, 32L << 20, ImageTestKit.Timeout());
        await QemuImageBitmaps.AddAsync(image, "asr", 65536, ImageTestKit.Timeout());

        await using (var target = await QemuImageTarget.OpenAsync(image, DiskImageFormat.Qcow2, ImageTestKit.Timeout()))
            await target.WriteAsync(3L << 20, new byte[] { 1, 2, 3 }, ImageTestKit.Timeout());

        // A clean stop stored the bitmap (a killed qemu-nbd would have left it in use).
        Assert.True(Assert.Single(await QemuImageBitmaps.ListAsync(image, ImageTestKit.Timeout())).IsConsistent);
        await using var source = await QemuImageSource.OpenAsync(image, DiskImageFormat.Qcow2, "asr", ImageTestKit.Timeout());
        Assert.Equal([new(3L << 20, 65536)], await source.DirtyRangesAsync(ImageTestKit.Timeout()));
    }

    [RequiresQemuFact]
    public async Task Legacy_vhd_and_missing_images_cannot_be_written()
    {
        using var dir = new TempDir();
        var vhd = await Assert.ThrowsAsync<AsrException>(() => QemuImageTarget.OpenAsync(dir["x.vhd"], DiskImageFormat.Vpc, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, vhd.ErrorId);
        var missing = await Assert.ThrowsAsync<AsrException>(() => QemuImageTarget.OpenAsync(dir["x.qcow2"], DiskImageFormat.Qcow2, ImageTestKit.Timeout()));
        Assert.Equal(AsrErrorIds.DiskNotFound, missing.ErrorId);
    }
}
