using System.Diagnostics;
using System.Net.Sockets;
using AsrModule.Engine.Errors;

namespace AsrModule.Tests.Unit.Inputs;

/// <summary>
/// Issue #12: a disk that is not a regular file or block device is refused at once (a FIFO must not
/// hang), and one disk named twice through a link is refused; a refused registration writes nothing.
/// </summary>
public sealed class DiskInputTests
{
    private static async Task<string> RefusedAsync(EngineHarness h, params string[] disks)
    {
        // Run off the test thread with a time limit: before the fix, opening a FIFO blocked forever.
        var register = Task.Run(() => h.Replication.RegisterAsync("m", disks, "default", default));
        var ex = await Assert.ThrowsAsync<AsrException>(() => register.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Empty(await h.Vault.GetItemsAsync(default));
        return ex.ErrorId;
    }

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { UseShellExecute = false })!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    [Fact]
    public async Task Fifo_IsRefusedWithoutHanging()
    {
        using var h = await EngineHarness.CreateAsync();
        string fifo = h.Dir["pipe"];
        Run("mkfifo", fifo);
        var ex = await Assert.ThrowsAsync<AsrException>(() =>
            Task.Run(() => h.Replication.RegisterAsync("m", [fifo], "default", default)).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Equal(AsrErrorIds.DiskUnsupported, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidArgument, ex.Kind);
        Assert.Contains("FIFO", ex.Message);
        Assert.Empty(await h.Vault.GetItemsAsync(default));
    }

    [Theory]
    [InlineData("/dev/null")]
    [InlineData("/dev/zero")]
    public async Task CharacterDevice_IsRefused(string device)
    {
        using var h = await EngineHarness.CreateAsync();
        Assert.Equal(AsrErrorIds.DiskUnsupported, await RefusedAsync(h, device));
    }

    [Fact]
    public async Task Directory_IsUnsupportedNotMissing()
    {
        using var h = await EngineHarness.CreateAsync();
        string dir = h.Dir["adir"];
        Directory.CreateDirectory(dir);
        Assert.Equal(AsrErrorIds.DiskUnsupported, await RefusedAsync(h, dir));
    }

    [Fact]
    public async Task Socket_IsRefused()
    {
        using var h = await EngineHarness.CreateAsync();
        string path = h.Dir["sock"];
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        Assert.Equal(AsrErrorIds.DiskUnsupported, await RefusedAsync(h, path));
    }

    [Fact]
    public async Task SymlinkToTheSameDisk_IsDuplicate()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["d.img"];
        TestDisks.Create(disk, 64 * 1024, 1);
        string link = h.Dir["link.img"];
        File.CreateSymbolicLink(link, disk);
        Assert.Equal(AsrErrorIds.DiskDuplicate, await RefusedAsync(h, disk, link));
    }

    [Fact]
    public async Task HardLinkToTheSameDisk_IsDuplicate()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["d.img"];
        TestDisks.Create(disk, 64 * 1024, 1);
        string link = h.Dir["hard.img"];
        Run("ln", disk, link);
        Assert.Equal(AsrErrorIds.DiskDuplicate, await RefusedAsync(h, link, disk));
    }

    [Fact]
    public async Task TwoDistinctFiles_AreStillAccepted()
    {
        using var h = await EngineHarness.CreateAsync();
        string a = h.Dir["a.img"], b = h.Dir["b.img"];
        TestDisks.Create(a, 64 * 1024, 1);
        TestDisks.Create(b, 64 * 1024, 2);
        var item = await h.Replication.RegisterAsync("m", [a, b], "default", default);
        Assert.Equal(2, item.Disks.Count);
    }

    [Fact]
    public async Task BlockDevice_IsStillAccepted_WhenOneIsReadable()
    {
        // A block device must stay a valid disk; use one only if this machine lets us read it.
        string? device = Directory.Exists("/sys/class/block")
            ? Directory.GetDirectories("/sys/class/block").Select(d => "/dev/" + Path.GetFileName(d))
                .FirstOrDefault(p => File.Exists(p) && CanRead(p))
            : null;
        if (device is null) return;
        Assert.Equal(AsrModule.Engine.Replication.DiskFileKind.BlockDevice, AsrModule.Engine.Replication.DiskFileType.Of(device)!.Value.Kind);
        using var h = await EngineHarness.CreateAsync();
        try
        {
            var item = await h.Replication.RegisterAsync("m", [device], "default", default);
            Assert.True(item.Disks[0].IsBlockDevice);
        }
        catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.DiskEmpty) { }
    }

    private static bool CanRead(string path)
    {
        try { using var f = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite); return true; }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return false; }
    }
}
