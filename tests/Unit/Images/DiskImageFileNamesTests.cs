using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Tests.Unit.Images;

/// <summary>The one naming rule for disks written in a format, and how formats are read back from records.</summary>
public sealed class DiskImageFileNamesTests
{
    [Theory]
    [InlineData("web01-os.img", DiskImageFormat.Raw, "web01-os.img")]
    [InlineData("vm01.vmdk", DiskImageFormat.Raw, "vm01.vmdk")]
    [InlineData("web01-os.img", DiskImageFormat.Qcow2, "web01-os.qcow2")]
    [InlineData("web01-os.img", DiskImageFormat.Vmdk, "web01-os.vmdk")]
    [InlineData("disk.raw", DiskImageFormat.Vhdx, "disk.vhdx")]
    [InlineData("disk.RAW", DiskImageFormat.Vdi, "disk.vdi")]
    [InlineData("vm01.vmdk", DiskImageFormat.Vmdk, "vm01.vmdk")]
    [InlineData("VM01.VMDK", DiskImageFormat.Vmdk, "VM01.VMDK")]
    [InlineData("vm01.vmdk", DiskImageFormat.Qcow2, "vm01.qcow2")]
    [InlineData("old.vhd", DiskImageFormat.Vhdx, "old.vhdx")]
    [InlineData("new.vhdx", DiskImageFormat.Vdi, "new.vdi")]
    [InlineData("box.vdi", DiskImageFormat.Vdi, "box.vdi")]
    [InlineData("data", DiskImageFormat.Vhdx, "data.vhdx")]
    [InlineData("backup.tar", DiskImageFormat.Qcow2, "backup.tar.qcow2")]
    [InlineData("a.b.img", DiskImageFormat.Qcow2, "a.b.qcow2")]
    [InlineData(".img", DiskImageFormat.Qcow2, ".img.qcow2")]
    [InlineData("disk1-web.img", DiskImageFormat.Vdi, "disk1-web.vdi")]
    public void Names_a_disk_by_its_format(string diskName, DiskImageFormat format, string expected) =>
        Assert.Equal(expected, DiskImageFileNames.For(diskName, format));

    [Fact]
    public void Joins_inside_the_directory_and_refuses_a_name_from_the_vault_that_leaves_it()
    {
        Assert.Equal(Path.Combine("/srv/r", "web01.vmdk"), DiskImageFileNames.JoinInside("/srv/r", "web01.img", DiskImageFormat.Vmdk, "items/x.json"));
        foreach (var bad in new[] { "../web01.img", "a/b.img", "..", "" })
        {
            var ex = Assert.Throws<AsrException>(() => DiskImageFileNames.JoinInside("/srv/r", bad, DiskImageFormat.Qcow2, "items/x.json"));
            Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        }
    }

    [Theory]
    [InlineData(null, DiskOutputFormat.Raw)]
    [InlineData("", DiskOutputFormat.Raw)]
    [InlineData("Raw", DiskOutputFormat.Raw)]
    [InlineData("Source", DiskOutputFormat.Source)]
    [InlineData("source", DiskOutputFormat.Source)]
    [InlineData("Vmdk", DiskOutputFormat.Vmdk)]
    [InlineData("qcow2", DiskOutputFormat.Qcow2)]
    [InlineData("VHDX", DiskOutputFormat.Vhdx)]
    [InlineData("Vdi", DiskOutputFormat.Vdi)]
    public void Reads_a_recorded_format(string? recorded, DiskOutputFormat expected) =>
        Assert.Equal(expected, DiskOutputFormats.Parse(recorded, "test"));

    [Theory]
    [InlineData("vpc")]
    [InlineData("vhd")]
    [InlineData("../../etc/passwd")]
    [InlineData("json:{\"driver\":\"file\"}")]
    public void A_recorded_format_that_is_not_writable_is_an_error_never_a_path(string recorded)
    {
        var ex = Assert.Throws<AsrException>(() => DiskOutputFormats.Parse(recorded, "test"));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, ex.ErrorId);
        // And a local target refuses such a record before it touches a file.
        var record = new RecoveredMachineRecord { TargetKind = "Local", TargetLocation = "/srv/r", MachineId = "/srv/r/x", Properties = { [AsrLocalTarget.DiskFormatProperty] = recorded } };
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, Assert.Throws<AsrException>(() => AsrLocalTarget.Of(record)).ErrorId);
    }

    [Fact]
    public void Source_resolves_each_disk_and_refuses_a_legacy_vhd_naming_the_disk_and_the_way_forward()
    {
        Assert.Equal(DiskImageFormat.Raw, DiskOutputFormats.Resolve(DiskOutputFormat.Source, null, "os.img", "web01"));
        Assert.Equal(DiskImageFormat.Vmdk, DiskOutputFormats.Resolve(DiskOutputFormat.Source, "vmdk", "os.vmdk", "web01"));
        Assert.Equal(DiskImageFormat.Qcow2, DiskOutputFormats.Resolve(DiskOutputFormat.Qcow2, "vpc", "os.vhd", "web01"));
        var ex = Assert.Throws<AsrException>(() => DiskOutputFormats.Resolve(DiskOutputFormat.Source, "vpc", "os.vhd", "web01"));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, ex.ErrorId);
        Assert.Contains("'os.vhd'", ex.Message);
        Assert.Contains("-Format Vhdx", ex.Message);
        Assert.Contains("-Format Raw", ex.Message);
    }

    [Fact]
    public void A_local_target_shows_its_format()
    {
        Assert.Equal(DiskOutputFormat.Raw, new AsrLocalTarget("/srv/r").Format);
        var vmdk = new AsrLocalTarget("/srv/r", DiskOutputFormat.Vmdk);
        Assert.Contains("VMDK", vmdk.Describe("web01", RecoveryPurpose.Failover));
        Assert.Contains("source disk's format", new AsrLocalTarget("/srv/r", DiskOutputFormat.Source).Describe("web01", RecoveryPurpose.Failover));
        Assert.Equal("'/srv/r/web01'", new AsrLocalTarget("/srv/r").Describe("web01", RecoveryPurpose.Failover));
        var record = new RecoveredMachineRecord { TargetKind = "Local", TargetLocation = "/srv/r", Properties = { [AsrLocalTarget.DiskFormatProperty] = "Vmdk" } };
        Assert.Equal(DiskOutputFormat.Vmdk, AsrLocalTarget.Of(record).Format);
        Assert.Equal(DiskOutputFormat.Raw, AsrLocalTarget.Of(new RecoveredMachineRecord { TargetKind = "Local", TargetLocation = "/srv/r" }).Format);
    }
}
