using System.Security.Cryptography;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Tests.Unit.Images;

/// <summary>
/// Export-AsrRecoveryPoint -Format and local failovers in a format: the raw export verified, converted with qemu-img, read
/// back through qemu-nbd and verified; files named by <see cref="DiskImageFileNames"/>. Bytes compared by SHA-256 of the
/// guest's view (qemu-img convert -O raw, independent of the code under test).
/// </summary>
public sealed class RecoveryPointExportFormatTests
{
    [RequiresQemuTheory]
    [InlineData(DiskOutputFormat.Qcow2, DiskImageFormat.Qcow2, "d.qcow2")]
    [InlineData(DiskOutputFormat.Vmdk, DiskImageFormat.Vmdk, "d.vmdk")]
    [InlineData(DiskOutputFormat.Vhdx, DiskImageFormat.Vhdx, "d.vhdx")]
    [InlineData(DiskOutputFormat.Vdi, DiskImageFormat.Vdi, "d.vdi")]
    public async Task Exports_a_point_as_each_format_read_back_and_verified(DiskOutputFormat output, DiskImageFormat format, string fileName)
    {
        using var h = await EngineHarness.CreateAsync();
        // Not a whole number of 512-byte sectors: the image is rounded up and the extra bytes must read as zeros.
        const long size = (6L << 20) + 100;
        var (disk, item) = await h.NewMachineAsync("m1", size, seed: 41);
        string expected = TestDisks.Sha256(disk);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        string dest = h.Dir["out"];

        var files = await RecoveryPointExporter.ExportAsync(h.Vault, point, dest, false, null, JobContext.Detached(), output);

        Assert.Equal([Path.Combine(dest, fileName)], files);
        Assert.Equal([fileName], Directory.EnumerateFileSystemEntries(dest).Select(Path.GetFileName));
        Assert.Equal(format, DiskImageFormats.Detect(files[0]));
        byte[] guest = await ImageTestKit.ToRawBytesAsync(files[0], format, h.Dir["guest.raw"]);
        Assert.Equal(RecoveredImageFile.RoundUpToSector(size), guest.Length);
        Assert.Equal(expected, Convert.ToHexString(SHA256.HashData(guest.AsSpan(0, (int)size))));
        Assert.All(guest.AsSpan((int)size).ToArray(), b => Assert.Equal(0, b));
    }

    [RequiresQemuFact]
    public async Task Source_writes_each_disk_in_its_source_format_and_keeps_its_name()
    {
        using var h = await EngineHarness.CreateAsync();
        TestDisks.Create(h.Dir["vm.raw"], 4L << 20, seed: 42);
        await ImageTestKit.QemuImgAsync("convert", "-f", "raw", "-O", "vmdk", h.Dir["vm.raw"], h.Dir["vm01.vmdk"]);
        TestDisks.Create(h.Dir["data.img"], 2L << 20, seed: 43);
        var item = await h.EnableAsync("vm01", h.Dir["vm01.vmdk"], h.Dir["data.img"]);
        Assert.Equal(["vmdk", null], item.Disks.Select(d => d.SourceFormat));
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        string dest = h.Dir["out"];

        var sourceFormats = RecoveryPointExporter.SourceFormatsOf(item);
        var (_, planned) = RecoveryPointExporter.Plan(point, dest, false, null, h.Vault.Store, DiskOutputFormat.Source, sourceFormats);
        var files = await RecoveryPointExporter.ExportAsync(h.Vault, point, dest, false, null, JobContext.Detached(), DiskOutputFormat.Source, sourceFormats);

        Assert.Equal(planned, files);
        Assert.Equal([Path.Combine(dest, "vm01.vmdk"), Path.Combine(dest, "data.img")], files);
        Assert.Equal(DiskImageFormat.Vmdk, DiskImageFormats.Detect(files[0]));
        Assert.Equal(TestDisks.Sha256(h.Dir["vm.raw"]), Convert.ToHexString(SHA256.HashData(await ImageTestKit.ToRawBytesAsync(files[0], DiskImageFormat.Vmdk, h.Dir["g.raw"]))));
        Assert.Equal(TestDisks.Sha256(h.Dir["data.img"]), TestDisks.Sha256(files[1]));
    }

    [RequiresQemuFact]
    public async Task Source_of_a_legacy_vhd_is_refused_before_anything_is_written()
    {
        using var h = await EngineHarness.CreateAsync();
        TestDisks.Create(h.Dir["vm.raw"], 4L << 20, seed: 44);
        await ImageTestKit.QemuImgAsync("convert", "-f", "raw", "-O", "vpc", "-o", "force_size=on", h.Dir["vm.raw"], h.Dir["old.vhd"]);
        var item = await h.EnableAsync("old", h.Dir["old.vhd"]);
        Assert.Equal("vpc", item.Disks[0].SourceFormat);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        string dest = h.Dir["out"];

        var ex = Assert.Throws<AsrException>(() => RecoveryPointExporter.Plan(point, dest, false, null, h.Vault.Store, DiskOutputFormat.Source, RecoveryPointExporter.SourceFormatsOf(item)));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, ex.ErrorId);
        Assert.Contains("'old.vhd'", ex.Message);
        Assert.Contains("-Format Vhdx", ex.Message);
        Assert.False(Directory.Exists(dest));
        // A failover with -Format Source is refused by the target's check, before any job.
        var target = new AsrLocalTarget(h.Dir["recovery"], DiskOutputFormat.Source);
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported,
            (await Assert.ThrowsAsync<AsrException>(() => target.ValidateAsync(h.Vault, item, RecoveryPurpose.Failover, default))).ErrorId);
        // Vhdx writes it.
        var files = await RecoveryPointExporter.ExportAsync(h.Vault, point, dest, false, null, JobContext.Detached(), DiskOutputFormat.Vhdx);
        Assert.Equal([Path.Combine(dest, "old.vhdx")], files);
    }

    [Fact]
    public async Task Plan_checks_the_final_names_existing_files_and_collisions()
    {
        using var h = await EngineHarness.CreateAsync();
        TestDisks.Create(h.Dir["a.img"], 1L << 20, seed: 45);
        TestDisks.Create(h.Dir["a.raw"], 1L << 20, seed: 46);
        var item = await h.EnableAsync("pair", h.Dir["a.img"], h.Dir["a.raw"]);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        string dest = h.Dir["out"];

        var collision = Assert.Throws<AsrException>(() => RecoveryPointExporter.Plan(point, dest, false, null, h.Vault.Store, DiskOutputFormat.Qcow2));
        Assert.Equal(AsrErrorIds.DiskDuplicate, collision.ErrorId);
        Assert.Contains("'a.qcow2'", collision.Message);
        // One disk at a time is fine, and names the final file.
        Assert.Equal([Path.Combine(dest, "a.qcow2")], RecoveryPointExporter.Plan(point, dest, false, ["a.raw"], h.Vault.Store, DiskOutputFormat.Qcow2).Targets);
        // An existing file with the final name is refused without -Force; one with the raw name is not in the way.
        Directory.CreateDirectory(dest);
        File.WriteAllText(Path.Combine(dest, "a.img"), "not in the way");
        RecoveryPointExporter.Plan(point, dest, false, ["a.img"], h.Vault.Store, DiskOutputFormat.Vdi);
        File.WriteAllText(Path.Combine(dest, "a.vdi"), "in the way");
        var exists = Assert.Throws<AsrException>(() => RecoveryPointExporter.Plan(point, dest, false, ["a.img"], h.Vault.Store, DiskOutputFormat.Vdi));
        Assert.Equal(AsrErrorIds.ExportDestinationExists, exists.ErrorId);
        RecoveryPointExporter.Plan(point, dest, true, ["a.img"], h.Vault.Store, DiskOutputFormat.Vdi);
    }

    [RequiresQemuFact]
    public async Task A_failover_in_a_format_writes_machine_json_records_the_format_and_reads_the_disks_back_through_qemu()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("web01", 4L << 20, seed: 47, file: "web01-os.img");
        var target = new AsrLocalTarget(h.Dir["recovery"], DiskOutputFormat.Qcow2);
        var failover = new FailoverService(h.Vault);
        await failover.ValidateTargetAsync(item, target, default);
        await failover.FailoverAsync(item, FailoverType.Unplanned, RecoveryPointChoice.LatestProcessed, target, JobContext.Detached());

        item = await h.Vault.GetItemAsync("web01", default);
        var machine = item.Failover!.Machine!;
        string file = Path.Combine(h.Dir["recovery"], "web01", "web01-os.qcow2");
        Assert.Equal(file, machine.Disks["disk0"]);
        Assert.Equal("Qcow2", machine.Properties[AsrLocalTarget.DiskFormatProperty]);
        Assert.Equal(DiskImageFormat.Qcow2, DiskImageFormats.Detect(file));
        string json = File.ReadAllText(Path.Combine(h.Dir["recovery"], "web01", MachineDescription.FileName));
        Assert.Contains("file=web01-os.qcow2,format=qcow2", json);
        Assert.Contains("\"format\": \"qcow2\"", json);

        // Found again from the item's disk names and the recorded format, whatever target object is given.
        var resolved = FailoverService.TargetOf(item, null);
        await using (var disks = await resolved.OpenRecoveredDisksAsync(item, machine, default))
        {
            var reader = Assert.IsType<RecoveredImageFile>(disks.Disks["disk0"]);
            Assert.Equal(4L << 20, reader.Size);
            var bytes = new byte[reader.Size];
            await reader.ReadAsync(0, bytes, default);
            Assert.Equal(TestDisks.Sha256(disk), Convert.ToHexString(SHA256.HashData(bytes)));
        }
        var removed = await new AsrLocalTarget(h.Dir["recovery"]).RemoveAsync(item, machine, JobContext.Detached());
        Assert.Contains(file, removed);
        Assert.False(Directory.Exists(Path.Combine(h.Dir["recovery"], "web01")));
    }
}

/// <summary>The read-back verification of a converted image catches an image that differs from the point.</summary>
public sealed class ConvertedImageVerificationTests
{
    [RequiresQemuFact]
    public async Task An_image_that_does_not_read_back_as_the_point_fails_without_marking_the_point_damaged()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("m2", 2L << 20, seed: 48);
        var point = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        var files = await RecoveryPointExporter.ExportAsync(h.Vault, point, h.Dir["out"], false, null, JobContext.Detached(), DiskOutputFormat.Qcow2);
        var disk = new RecoveryPointExporter.ExportDisk(point.Disks[0], files[0], DiskImageFormat.Qcow2);
        await RecoveryPointExporter.VerifyImageAsync(h.Vault, point, disk, files[0], null, default);

        // One byte of the guest changed (written through QEMU, so the image stays a valid qcow2).
        await ImageTestKit.QemuIoAsync("-f", "qcow2", "-c", "write -P 0x5a 1000 1", files[0]);
        var ex = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointExporter.VerifyImageAsync(h.Vault, point, disk, files[0], null, default));
        Assert.Equal(AsrErrorIds.DiskImageFailed, ex.ErrorId);
        Assert.Contains("content digest", ex.Message);
        Assert.Null((await h.Vault.GetItemAsync("m2", default)).ResyncReason);

        // An image of another size fails too.
        await ImageTestKit.QemuImgAsync("resize", "-f", "qcow2", files[0], "+1M");
        ex = await Assert.ThrowsAsync<AsrException>(() => RecoveryPointExporter.VerifyImageAsync(h.Vault, point, disk, files[0], null, default));
        Assert.Contains("not the disk's", ex.Message);
    }
}
