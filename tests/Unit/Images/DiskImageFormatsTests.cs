using System.Buffers.Binary;
using System.Text;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Replication.Sources.Images;

namespace AsrModule.Tests.Unit.Images;

/// <summary>Format detection by magic bytes only, and the format names users and QEMU use.</summary>
public sealed class DiskImageFormatsTests
{
    [Fact]
    public void A_file_of_zeros_is_raw()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["zeros.img"], new byte[1 << 20]);
        Assert.Equal(DiskImageFormat.Raw, DiskImageFormats.Detect(dir["zeros.img"]));
    }

    [Fact]
    public void Empty_and_tiny_files_are_raw()
    {
        using var dir = new TempDir();
        File.WriteAllBytes(dir["empty.img"], []);
        File.WriteAllBytes(dir["tiny.img"], [(byte)'Q', (byte)'F']);
        Assert.Equal(DiskImageFormat.Raw, DiskImageFormats.Detect(dir["empty.img"]));
        Assert.Equal(DiskImageFormat.Raw, DiskImageFormats.Detect(dir["tiny.img"]));
    }

    [Fact]
    public void Detection_reads_magic_only_so_a_raw_disk_whose_guest_wrote_a_qcow2_header_detects_as_qcow2()
    {
        // What a guest can do to its own raw disk. Detect cannot tell, by design: the defence is that the format is
        // pinned when the disk is protected and passed explicitly afterwards, never probed again.
        using var dir = new TempDir();
        var disk = new byte[1 << 20];
        new byte[] { (byte)'Q', (byte)'F', (byte)'I', 0xfb, 0, 0, 0, 3 }.CopyTo(disk, 0);
        File.WriteAllBytes(dir["raw-with-header.img"], disk);
        Assert.Equal(DiskImageFormat.Qcow2, DiskImageFormats.Detect(dir["raw-with-header.img"]));
    }

    [Theory]
    [InlineData("KDMV", DiskImageFormat.Vmdk)]
    [InlineData("COWD", DiskImageFormat.Vmdk)]
    [InlineData("# Disk DescriptorFile\nversion=1\n", DiskImageFormat.Vmdk)]
    [InlineData("vhdxfile", DiskImageFormat.Vhdx)]
    [InlineData("conectix", DiskImageFormat.Vpc)]
    [InlineData("QFI", DiskImageFormat.Raw)]              // magic cut short
    [InlineData("# Disk Descriptor", DiskImageFormat.Raw)]
    [InlineData("VHDXFILE", DiskImageFormat.Raw)]         // case matters
    public void Header_magic_decides_the_format(string header, DiskImageFormat expected)
    {
        using var dir = new TempDir();
        var disk = new byte[64 << 10];
        Encoding.ASCII.GetBytes(header).CopyTo(disk, 0);
        File.WriteAllBytes(dir["disk"], disk);
        Assert.Equal(expected, DiskImageFormats.Detect(dir["disk"]));
    }

    [Fact]
    public void Vdi_signature_at_offset_64_is_vdi()
    {
        using var dir = new TempDir();
        var disk = new byte[4096];
        Encoding.ASCII.GetBytes("<<< Oracle VM VirtualBox Disk Image >>>\n").CopyTo(disk, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(disk.AsSpan(64), 0xbeda107f);
        File.WriteAllBytes(dir["disk.vdi"], disk);
        Assert.Equal(DiskImageFormat.Vdi, DiskImageFormats.Detect(dir["disk.vdi"]));

        // Big-endian is not the signature.
        BinaryPrimitives.WriteUInt32BigEndian(disk.AsSpan(64), 0xbeda107f);
        File.WriteAllBytes(dir["other"], disk);
        Assert.Equal(DiskImageFormat.Raw, DiskImageFormats.Detect(dir["other"]));
    }

    [Fact]
    public void A_fixed_vhd_is_told_by_its_footer()
    {
        using var dir = new TempDir();
        var disk = new byte[(1 << 20) + 512];
        Encoding.ASCII.GetBytes("conectix").CopyTo(disk, 1 << 20);
        File.WriteAllBytes(dir["fixed.vhd"], disk);
        Assert.Equal(DiskImageFormat.Vpc, DiskImageFormats.Detect(dir["fixed.vhd"]));
    }

    [Fact]
    public void Detect_of_a_missing_file_is_DiskNotFound_and_of_a_directory_DiskUnsupported()
    {
        using var dir = new TempDir();
        var missing = Assert.Throws<AsrException>(() => DiskImageFormats.Detect(dir["nope.qcow2"]));
        Assert.Equal(AsrErrorIds.DiskNotFound, missing.ErrorId);
        Assert.Contains("nope.qcow2", missing.Message);
        var directory = Assert.Throws<AsrException>(() => DiskImageFormats.Detect(dir.Path));
        Assert.Equal(AsrErrorIds.DiskUnsupported, directory.ErrorId);
    }

    [Theory]
    [InlineData("raw", DiskImageFormat.Raw)]
    [InlineData("QCOW2", DiskImageFormat.Qcow2)]
    [InlineData("Vmdk", DiskImageFormat.Vmdk)]
    [InlineData("vhdx", DiskImageFormat.Vhdx)]
    [InlineData(" vdi ", DiskImageFormat.Vdi)]
    [InlineData("VHD", DiskImageFormat.Vpc)]
    [InlineData("vpc", DiskImageFormat.Vpc)]
    public void Parse_accepts_the_user_spellings(string name, DiskImageFormat expected) =>
        Assert.Equal(expected, DiskImageFormats.Parse(name));

    [Theory]
    [InlineData("vmdkx")]
    [InlineData("qcow")]
    [InlineData("")]
    [InlineData("vhd x")]
    public void Parse_refuses_anything_else_naming_the_allowed_formats(string name)
    {
        var ex = Assert.Throws<AsrException>(() => DiskImageFormats.Parse(name));
        Assert.Equal(AsrErrorIds.DiskFormatUnsupported, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains(DiskImageFormats.AcceptedNames, ex.Message);
    }

    [Fact]
    public void Qemu_names()
    {
        Assert.Equal(["raw", "qcow2", "vmdk", "vhdx", "vdi", "vpc"], Enum.GetValues<DiskImageFormat>().Select(DiskImageFormats.QemuName));
        // Every name Parse accepts round-trips.
        foreach (var format in Enum.GetValues<DiskImageFormat>())
            Assert.Equal(format, DiskImageFormats.Parse(DiskImageFormats.QemuName(format)));
    }
}
