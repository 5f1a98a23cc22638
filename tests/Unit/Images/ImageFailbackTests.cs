using System.Security.Cryptography;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Tests.Unit.Images;

/// <summary>
/// Reprotect and failback into originals in an image format: the original is hashed and written through QEMU (the guest's
/// bytes), so the image stays an image of its format and holds what the recovered machine holds. Bytes by SHA-256 of the
/// guest's view (qemu-img convert -O raw).
/// </summary>
public sealed class ImageFailbackTests
{
    private static async Task<string> GuestSha256Async(string image, DiskImageFormat format, string scratch) =>
        Convert.ToHexString(SHA256.HashData(await ImageTestKit.ToRawBytesAsync(image, format, scratch)));

    [RequiresQemuTheory]
    [InlineData(DiskImageFormat.Vmdk, DiskOutputFormat.Source)]
    [InlineData(DiskImageFormat.Qcow2, DiskOutputFormat.Raw)]
    public async Task Failback_writes_the_recovered_machine_into_the_original_image(DiskImageFormat format, DiskOutputFormat targetFormat)
    {
        using var h = await EngineHarness.CreateAsync();
        TestDisks.Create(h.Dir["vm.raw"], 4L << 20, seed: 50);
        string original = h.Dir["vm01" + DiskImageFileNames.Extension(format)];
        await ImageTestKit.QemuImgAsync("convert", "-f", "raw", "-O", DiskImageFormats.QemuName(format), h.Dir["vm.raw"], original);
        var item = await h.EnableAsync("vm01", original);
        string identity = item.Disks[0].SourceIdentity!;
        var failover = new FailoverService(h.Vault);
        using (h.Replication.AcquireLease(item))
            await failover.FailoverAsync(item, FailoverType.Unplanned, RecoveryPointChoice.LatestProcessed, new AsrLocalTarget(h.Dir["recovery"], targetFormat), JobContext.Detached());
        item = await h.Vault.GetItemAsync("vm01", default);
        await failover.CommitAsync(item, JobContext.Detached());
        item = await h.Vault.GetItemAsync("vm01", default);

        // The recovered machine writes (through QEMU when its disk is an image).
        var recoveredFormat = targetFormat == DiskOutputFormat.Source ? format : DiskImageFormat.Raw;
        string recovered = item.Failover!.RecoveredDisks["disk0"];
        await ImageTestKit.QemuIoAsync("-f", DiskImageFormats.QemuName(recoveredFormat), "-c", "write -P 0x5a 1M 64k", recovered);
        string expected = await GuestSha256Async(recovered, recoveredFormat, h.Dir["r.raw"]);
        Assert.NotEqual(await GuestSha256Async(original, format, h.Dir["o.raw"]), expected);

        using (h.Replication.AcquireLease(item))
            await failover.ReprotectAsync(item, null, null, JobContext.Detached());
        Assert.Equal(expected, await GuestSha256Async(original, format, h.Dir["o.raw"]));
        item = await h.Vault.GetItemAsync("vm01", default);
        await ImageTestKit.QemuIoAsync("-f", DiskImageFormats.QemuName(recoveredFormat), "-c", "write -P 0xa5 2M 4k", recovered);
        expected = await GuestSha256Async(recovered, recoveredFormat, h.Dir["r.raw"]);
        AsrJobResult result;
        using (h.Replication.AcquireLease(item))
            result = await failover.FailbackAsync(item, null, JobContext.Detached());

        Assert.Equal(1, result.ChangedBlocks);
        Assert.Equal(format, DiskImageFormats.Detect(original));
        Assert.Equal(expected, await GuestSha256Async(original, format, h.Dir["o.raw"]));
        item = await h.Vault.GetItemAsync("vm01", default);
        Assert.Equal(ProtectedItemState.Protected, item.State);
        Assert.Equal(DiskImageFormats.QemuName(format), item.Disks[0].SourceFormat);
        Assert.Equal(identity, item.Disks[0].SourceIdentity);
        var hashes = await h.ExportHashesAsync((await h.Vault.GetLatestPointAsync(item.Id, default))!);
        Assert.Equal(expected, hashes[item.Disks[0].Name]);
    }

    [RequiresQemuFact]
    public async Task Reprotect_into_a_legacy_vhd_original_is_refused_naming_the_disk_and_the_way_forward()
    {
        using var h = await EngineHarness.CreateAsync();
        TestDisks.Create(h.Dir["vm.raw"], 4L << 20, seed: 51);
        await ImageTestKit.QemuImgAsync("convert", "-f", "raw", "-O", "vpc", "-o", "force_size=on", h.Dir["vm.raw"], h.Dir["old.vhd"]);
        var item = await h.EnableAsync("old", h.Dir["old.vhd"]);
        var failover = new FailoverService(h.Vault);
        using (h.Replication.AcquireLease(item))
            await failover.FailoverAsync(item, FailoverType.Unplanned, RecoveryPointChoice.LatestProcessed, new AsrLocalTarget(h.Dir["recovery"], DiskOutputFormat.Vhdx), JobContext.Detached());
        item = await h.Vault.GetItemAsync("old", default);
        await failover.CommitAsync(item, JobContext.Detached());
        item = await h.Vault.GetItemAsync("old", default);
        Assert.EndsWith("old.vhdx", item.Failover!.RecoveredDisks["disk0"]);

        var ex = Assert.Throws<AsrException>(() => failover.ValidateReprotect(item, null));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, ex.ErrorId);
        Assert.Contains("'old.vhd'", ex.Message);
        Assert.Contains("-AlternateDisk", ex.Message);

        // To a new raw alternate disk it works, and after failback that disk is the (raw) source.
        string alternate = h.Dir["new/old.img"];
        failover.ValidateReprotect(item, [alternate]);
        using (h.Replication.AcquireLease(item))
            await failover.ReprotectAsync(item, [alternate], null, JobContext.Detached());
        item = await h.Vault.GetItemAsync("old", default);
        using (h.Replication.AcquireLease(item))
            await failover.FailbackAsync(item, null, JobContext.Detached());
        item = await h.Vault.GetItemAsync("old", default);
        Assert.Equal(alternate, item.Disks[0].SourcePath);
        Assert.Null(item.Disks[0].SourceFormat);
        Assert.Equal(TestDisks.Sha256(h.Dir["vm.raw"]), TestDisks.Sha256(alternate));
    }

    [RequiresQemuFact]
    public async Task An_existing_alternate_image_is_written_in_its_format_and_becomes_the_source_in_it()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("raw01", 4L << 20, seed: 52, file: "raw01.img");
        var failover = new FailoverService(h.Vault);
        using (h.Replication.AcquireLease(item))
            await failover.FailoverAsync(item, FailoverType.Unplanned, RecoveryPointChoice.LatestProcessed, new AsrLocalTarget(h.Dir["recovery"]), JobContext.Detached());
        item = await h.Vault.GetItemAsync("raw01", default);
        await failover.CommitAsync(item, JobContext.Detached());
        item = await h.Vault.GetItemAsync("raw01", default);

        // An alternate image of another size is refused before any job; one of the disk's size is written through QEMU.
        await ImageTestKit.QemuImgAsync("create", "-q", "-f", "qcow2", h.Dir["small.qcow2"], "1M");
        Assert.Equal(AsrErrorIds.FailoverTargetInvalid, Assert.Throws<AsrException>(() => failover.ValidateReprotect(item, [h.Dir["small.qcow2"]])).ErrorId);
        string alternate = h.Dir["new.qcow2"];
        await ImageTestKit.QemuImgAsync("create", "-q", "-f", "qcow2", alternate, (4L << 20).ToString());
        using (h.Replication.AcquireLease(item))
            await failover.ReprotectAsync(item, [alternate], null, JobContext.Detached());
        item = await h.Vault.GetItemAsync("raw01", default);
        Assert.Equal("qcow2", item.Reverse!.TargetFormats!["disk0"]);
        using (h.Replication.AcquireLease(item))
            await failover.FailbackAsync(item, null, JobContext.Detached());

        item = await h.Vault.GetItemAsync("raw01", default);
        Assert.Equal(alternate, item.Disks[0].SourcePath);
        Assert.Equal("qcow2", item.Disks[0].SourceFormat);
        Assert.Equal(DiskImageFormat.Qcow2, DiskImageFormats.Detect(alternate));
        Assert.Equal(TestDisks.Sha256(disk), await GuestSha256Async(alternate, DiskImageFormat.Qcow2, h.Dir["a.raw"]));
    }
}
