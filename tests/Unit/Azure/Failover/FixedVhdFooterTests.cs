using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;
using AsrModule.Engine.Azure.Failover;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Tests.Unit.Azure.Failover;

/// <summary>The fixed VHD footer and the upload size rules of Azure's direct upload.</summary>
public sealed class FixedVhdFooterTests
{
    private static readonly DateTimeOffset PointTime = new(2025, 6, 1, 9, 14, 5, 221, TimeSpan.Zero);

    private static AsrRecoveryPoint Point(long diskBytes, Guid? pointId = null) => new()
    {
        PointId = pointId ?? Guid.Parse("6f1c2a9e-0b7d-4f3a-8e21-5c9d4b7a1e03"),
        Sequence = 42,
        ItemId = "item-0d6f2a53",
        ItemName = "web01",
        RecoveryPointTimeUtc = PointTime,
        Disks = [new RecoveryPointDisk { DiskId = "disk-os", Name = "web01-os.img", SizeBytes = diskBytes, BlockSize = 4096 }],
    };

    [Theory]
    // The specification's algorithm for exactly 1 GiB (Azure PowerShell's DiskGeometry.CreateFromVirtualSize is the same code).
    [InlineData(1L << 30, 2080, 16, 63)]
    // Reference values written by an independent implementation: `qemu-img create -f vpc -o subformat=fixed <size>`
    // (qemu-img 7.2.22) rounds the size up to a whole geometry and records both; read back from its footers.
    [InlineData(1073995776L, 2081, 16, 63)]     // 1G
    [InlineData(136365219840L, 65279, 16, 255)] // 127G, Hyper-V's default OS disk size
    [InlineData(20994048L, 603, 4, 17)]         // 20M
    [InlineData(22038528L, 633, 4, 17)]         // 21M
    [InlineData(104865792L, 1004, 12, 17)]      // 100M
    [InlineData(2139217920L, 4145, 16, 63)]     // 2040M
    [InlineData(42951106560L, 20561, 16, 255)]  // 40G
    // Beyond 65535 x 16 x 255 sectors the geometry stays at its maximum.
    [InlineData(2L << 40, 65535, 16, 255)]
    public void Geometry_follows_the_vhd_specification(long size, int cylinders, int heads, int sectors)
    {
        Assert.Equal(new VhdGeometry((ushort)cylinders, (byte)heads, (byte)sectors), VhdGeometry.FromSize(size));
    }

    [Fact]
    public void Footer_fields_sit_where_the_specification_puts_them()
    {
        long payload = ManagedDiskSize.PayloadBytes((6 << 20) + 36 * 1024 + 512);
        Assert.Equal(20L << 20, payload);
        var footer = FixedVhdFooter.ForRecoveryPoint(Point(payload), Point(payload).Disks[0]);
        byte[] b = footer.ToBytes();

        Assert.Equal(512, b.Length);
        Assert.Equal("conectix"u8.ToArray(), b[..8]);
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(8)));
        Assert.Equal(0x00010000u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(12)));
        Assert.Equal(ulong.MaxValue, BinaryPrimitives.ReadUInt64BigEndian(b.AsSpan(16)));
        // 2025-06-01 09:14:05 UTC is 802_084_445 s after 2000-01-01 (9283 days + 33245 s); milliseconds dropped.
        Assert.Equal(9283u * 86400 + 9 * 3600 + 14 * 60 + 5, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(24)));
        Assert.Equal("win "u8.ToArray(), b[28..32]);
        Assert.Equal(FixedVhdFooter.ModuleCreatorVersion, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(32)));
        Assert.Equal(0x5769326Bu, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(36))); // "Wi2k"
        Assert.Equal(payload, BinaryPrimitives.ReadInt64BigEndian(b.AsSpan(40)));
        Assert.Equal(payload, BinaryPrimitives.ReadInt64BigEndian(b.AsSpan(48)));
        Assert.Equal(VhdGeometry.FromSize(payload), new VhdGeometry(BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(56)), b[58], b[59]));
        Assert.Equal(2u, BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(60)));
        Assert.Equal(footer.UniqueId, new Guid(b.AsSpan(68, 16)));
        Assert.Equal(0, b[84]);
        Assert.All(b[85..], x => Assert.Equal(0, x));
    }

    [Fact]
    public void Checksum_is_the_ones_complement_of_the_byte_sum()
    {
        byte[] b = FixedVhdFooter.ForRecoveryPoint(Point(1L << 30), Point(1L << 30).Disks[0]).ToBytes();
        uint stored = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(64));
        // Summed independently: every byte but the checksum's own four, then complemented.
        uint sum = 0;
        for (int i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += b[i];
        Assert.Equal(~sum, stored);
        Assert.Equal(stored, FixedVhdFooter.ComputeChecksum(b));

        b[100] ^= 1; // a reserved byte: still summed
        Assert.False(FixedVhdFooter.TryParse(b, out _, out string? error));
        Assert.Contains("checksum", error);
        var ex = Assert.Throws<AsrException>(() => FixedVhdFooter.Parse(b, "web01-os.img"));
        Assert.Equal(ManagedDiskErrorIds.VhdFooterInvalid, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidData, ex.Kind);
    }

    [Theory]
    [InlineData(20L << 20)]
    [InlineData(1L << 30)]
    [InlineData(127L << 30)]
    [InlineData(32L << 40)]
    public void Parse_of_build_is_the_same_footer(long payload)
    {
        var footer = FixedVhdFooter.Create(payload, Guid.NewGuid(), PointTime);
        byte[] bytes = footer.ToBytes();
        var parsed = FixedVhdFooter.Parse(bytes);
        Assert.Equal(footer, parsed);
        Assert.Equal(bytes, parsed.ToBytes());
        Assert.Equal(footer.Checksum, BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(64)));
    }

    [Fact]
    public void Parse_rejects_what_is_not_a_fixed_disk()
    {
        byte[] good = FixedVhdFooter.Create(20L << 20, Guid.NewGuid(), PointTime).ToBytes();
        static byte[] Resum(byte[] b)
        {
            BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(64), FixedVhdFooter.ComputeChecksum(b));
            return b;
        }
        var cases = new (string Why, byte[] Bytes)[]
        {
            ("cookie", Resum(Patch(good, 0, "cxsparse"u8.ToArray()))),
            ("disk type", Resum(Patch(good, 60, [0, 0, 0, 3]))),
            ("data offset", Resum(Patch(good, 16, [0, 0, 0, 0, 0, 0, 2, 0]))),
            ("current size", Resum(Patch(good, 48, [0, 0, 0, 0, 0, 0, 1, 1]))),
            ("512 bytes", good[..511]),
            ("zeros", new byte[512]),
        };
        foreach (var (why, bytes) in cases)
            Assert.False(FixedVhdFooter.TryParse(bytes, out _, out _), why);
    }

    private static byte[] Patch(byte[] source, int offset, byte[] with)
    {
        byte[] copy = (byte[])source.Clone();
        with.CopyTo(copy, offset);
        return copy;
    }

    [Fact]
    public void A_points_footer_is_the_same_on_every_attempt_and_differs_per_point_and_disk()
    {
        var point = Point(5 << 20);
        byte[] first = FixedVhdFooter.ForRecoveryPoint(point, point.Disks[0]).ToBytes();
        Assert.Equal(first, FixedVhdFooter.ForRecoveryPoint(Point(5 << 20), Point(5 << 20).Disks[0]).ToBytes());

        var id = FixedVhdFooter.DeriveUniqueId(point.ItemId, "disk-os", point.PointId);
        Assert.Equal(5, id.Version);
        Assert.NotEqual(id, FixedVhdFooter.DeriveUniqueId(point.ItemId, "disk-data", point.PointId));
        Assert.NotEqual(id, FixedVhdFooter.DeriveUniqueId(point.ItemId, "disk-os", Guid.NewGuid()));
        Assert.NotEqual(id, FixedVhdFooter.DeriveUniqueId("item-other", "disk-os", point.PointId));
    }

    [Theory]
    [InlineData(1L, 20L << 20)]                           // Azure's minimum payload is 20 MiB
    [InlineData((6L << 20) + 36 * 1024 + 512, 20L << 20)]
    [InlineData(20L << 20, 20L << 20)]
    [InlineData((20L << 20) + 1, 21L << 20)]
    [InlineData((1L << 30) - 4096, 1L << 30)]
    [InlineData(1L << 30, 1L << 30)]
    [InlineData(32L << 40, 32L << 40)]
    public void Upload_size_is_the_disk_rounded_up_to_a_mib_plus_the_footer(long disk, long payload)
    {
        Assert.Equal(payload, ManagedDiskSize.PayloadBytes(disk));
        Assert.Equal(payload + 512, ManagedDiskSize.UploadSizeBytes(disk));
        Assert.Equal(payload, ManagedDiskSize.FooterOffset(disk));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData((32L << 40) + 1)]
    public void A_disk_azure_cannot_take_is_refused(long disk)
    {
        var ex = Assert.Throws<AsrException>(() => ManagedDiskSize.UploadSizeBytes(disk));
        Assert.Equal(ManagedDiskErrorIds.ManagedDiskUploadSizeInvalid, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidArgument, ex.Kind);
    }

    /// <summary>
    /// qemu-img (an independent VHD reader) accepts the footer: it checks the checksum and reads the fixed disk at
    /// its full current size (creator "win "), as Azure and Hyper-V do; so does the explicit current-size option.
    /// </summary>
    [NbdServerTests.RequiresTool("qemu-img")]
    public async Task Qemu_img_reads_the_footer()
    {
        using var dir = new TempDir();
        string path = dir["disk.vhd"];
        long payload = ManagedDiskSize.PayloadBytes((21 << 20) + 100);
        var footer = FixedVhdFooter.Create(payload, Guid.NewGuid(), PointTime);
        using (var fs = new FileStream(path, FileMode.Create, FileAccess.Write))
        {
            fs.SetLength(payload);
            fs.Position = payload;
            fs.Write(footer.ToBytes());
        }

        var info = await QemuImgInfoAsync(path);
        Assert.Equal("vpc", info.GetProperty("format").GetString());
        Assert.Equal(payload, info.GetProperty("virtual-size").GetInt64());
        var current = await QemuImgInfoAsync($"driver=vpc,force_size_calc=current_size,file.filename={path}", imageOpts: true);
        Assert.Equal(payload, current.GetProperty("virtual-size").GetInt64());

        // A wrong checksum is refused by qemu too.
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write)) { fs.Position = payload + 100; fs.WriteByte(1); }
        var (exit, _, stderr) = await RunAsync("qemu-img", "info", "-f", "vpc", path);
        Assert.NotEqual(0, exit);
        Assert.Contains("checksum", stderr, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<JsonElement> QemuImgInfoAsync(string image, bool imageOpts = false)
    {
        var (exit, stdout, stderr) = imageOpts
            ? await RunAsync("qemu-img", "info", "--output=json", "--image-opts", image)
            : await RunAsync("qemu-img", "info", "--output=json", "-f", "vpc", image);
        Assert.True(exit == 0, $"qemu-img info failed ({exit}): {stderr}");
        return JsonDocument.Parse(stdout).RootElement.Clone();
    }

    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string tool, params string[] args)
    {
        var psi = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await process.WaitForExitAsync(timeout.Token);
        return (process.ExitCode, await stdout, await stderr);
    }
}
