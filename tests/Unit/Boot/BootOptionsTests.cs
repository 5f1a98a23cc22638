using System.Text.Json;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover.Boot;
using Xunit;

namespace AsrModule.Tests.Unit.Boot;

public class BootOptionsTests
{
    [Theory]
    [InlineData(null, null, "ReadyPattern")]
    [InlineData("([", null, "ReadyPattern")]
    [InlineData(null, 0, "ReadyPort")]
    [InlineData(null, 70000, "ReadyPort")]
    public void Settings_that_cannot_work_are_refused_naming_the_setting(string? pattern, int? port, string setting)
    {
        var ex = Assert.Throws<AsrException>(() => new BootOptions { ReadyPattern = pattern, ReadyPort = port }.Validate());
        Assert.Equal(AsrErrorIds.BootSettingInvalid, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidArgument, ex.Kind);
        Assert.Equal(setting, ex.Target);
    }

    [Fact]
    public void Limits_of_time_memory_cpus_nic_and_forwards()
    {
        var ok = new BootOptions { ReadyPort = 22 };
        ok.Validate();
        Assert.Throws<AsrException>(() => (ok with { Timeout = TimeSpan.FromSeconds(1) }).Validate());
        Assert.Throws<AsrException>(() => (ok with { MemoryMiB = 32 }).Validate());
        Assert.Throws<AsrException>(() => (ok with { Cpus = 0 }).Validate());
        Assert.Throws<AsrException>(() => (ok with { NicModel = "ne2k_pci,romfile=/etc/shadow" }).Validate());
        Assert.Throws<AsrException>(() => (ok with { ForwardPorts = Enumerable.Range(1000, 16).ToArray() }).Validate());
        Assert.Equal([22, 80], (ok with { ForwardPorts = [80, 22] }).GuestPorts);
    }

    /// <summary>
    /// Names from the vault (disk and export names) reach QEMU only inside JSON values of -blockdev and never as options;
    /// networking is restricted and forwards listen on the loopback address only.
    /// </summary>
    [Fact]
    public void The_QEMU_command_line_keeps_vault_names_inside_JSON_and_the_network_restricted()
    {
        string hostile = "d,file.driver=file,file.filename=/etc/shadow\"}";
        var disks = new[] { new BootDisk(hostile, "127.0.0.1", 10809, hostile, 1 << 20, "/tmp/drill/boot/d.qcow2"), new BootDisk("b", "127.0.0.1", 10809, "b", 1 << 20, "/tmp/drill/boot/b.qcow2") };
        var args = QemuBootMachine.Arguments("vm,evil", disks, new BootOptions { ReadyPort = 8080, ForwardPorts = [22] }, "tcg",
            new Dictionary<int, int> { [8080] = 40001, [22] = 40002 }, "/tmp/drill/boot/console,x.log", "/tmp/asr-boot-x/qmp.sock");
        var blockdevs = args.Select((a, i) => (a, i)).Where(p => p.a == "-blockdev").Select(p => args[p.i + 1]).ToList();
        Assert.Equal(8, blockdevs.Count);
        var nbd = JsonDocument.Parse(blockdevs[0]).RootElement;
        Assert.Equal("nbd", nbd.GetProperty("driver").GetString());
        Assert.Equal(hostile, nbd.GetProperty("export").GetString());
        Assert.True(nbd.GetProperty("read-only").GetBoolean());
        Assert.Equal("base0", JsonDocument.Parse(blockdevs[3]).RootElement.GetProperty("backing").GetString());
        Assert.Contains("-nodefaults", args);
        Assert.Equal("vm_evil", args[args.IndexOf("-name") + 1]);
        Assert.Equal("file,id=console,path=/tmp/drill/boot/console,,x.log", args[args.IndexOf("-chardev") + 1]);
        Assert.Equal("user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:40001-:8080,hostfwd=tcp:127.0.0.1:40002-:22", args[args.IndexOf("-netdev") + 1]);
        Assert.Contains("virtio-blk-pci,drive=disk0,bootindex=0", args);
        Assert.Contains("virtio-blk-pci,drive=disk1,bootindex=1", args);
        Assert.DoesNotContain(args, a => a.StartsWith("-drive", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(BootDiskBus.Ide, "ide-hd,drive=disk1,bus=ide.0,unit=1,bootindex=1")]
    [InlineData(BootDiskBus.Sata, "ide-hd,drive=disk1,bus=ahci.1,bootindex=1")]
    public void Disk_buses(BootDiskBus bus, string secondDisk)
    {
        var disks = new[] { new BootDisk("a", "127.0.0.1", 1, "a", 1, "/t/a.qcow2"), new BootDisk("b", "127.0.0.1", 1, "b", 1, "/t/b.qcow2") };
        var args = QemuBootMachine.Arguments("vm", disks, new BootOptions { ReadyPort = 1, DiskBus = bus }, "tcg", new Dictionary<int, int> { [1] = 2 }, "/t/c.log", "/t/q.sock");
        Assert.Contains(secondDisk, args);
        Assert.Equal(bus == BootDiskBus.Sata, args.Contains("ahci,id=ahci"));
    }
}
