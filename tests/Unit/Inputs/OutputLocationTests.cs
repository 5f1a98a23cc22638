using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Storage;

namespace AsrModule.Tests.Unit.Inputs;

/// <summary>Issue #12: restored disks are never written inside a local vault or under /proc, /sys, /dev.</summary>
public sealed class OutputLocationTests
{
    [Theory]
    [InlineData("/proc")]
    [InlineData("/proc/self/x")]
    [InlineData("/sys/kernel/x")]
    [InlineData("/dev/shm/x")]
    public void SystemDirectories_AreRefused(string path)
    {
        var ex = Assert.Throws<AsrException>(() => OutputLocation.EnsureAllowed(path, null, AsrErrorIds.ExportDestinationInvalid, "Export destination"));
        Assert.Equal(AsrErrorIds.ExportDestinationInvalid, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidArgument, ex.Kind);
    }

    [Fact]
    public void LookAlikeNames_AreAllowed()
    {
        using var dir = new TempDir();
        OutputLocation.EnsureAllowed(dir["proc"], null, AsrErrorIds.ExportDestinationInvalid, "Export destination");
        var store = new LocalDirectoryStore(dir["vault"]);
        OutputLocation.EnsureAllowed(dir["vault-export"], store, AsrErrorIds.ExportDestinationInvalid, "Export destination");
    }

    [Fact]
    public async Task ExportInsideTheVault_IsRefusedBeforeAnythingIsWritten()
    {
        using var h = await EngineHarness.CreateAsync();
        await h.NewMachineAsync("m", 64 * 1024, 1);
        var point = (await h.Vault.GetPointsAsync(await h.Vault.GetItemAsync("m", default), default)).Last();
        foreach (var dest in new[] { h.Vault.Location, Path.Combine(h.Vault.Location, "sub", "dir") })
        {
            var ex = Assert.Throws<AsrException>(() => RecoveryPointExporter.Plan(point, dest, false, null, h.Vault.Store));
            Assert.Equal(AsrErrorIds.ExportDestinationInvalid, ex.ErrorId);
        }
        Assert.False(Directory.Exists(Path.Combine(h.Vault.Location, "sub")));
    }

    [Fact]
    public async Task ExportThroughASymlinkIntoTheVault_IsRefused()
    {
        using var h = await EngineHarness.CreateAsync();
        await h.NewMachineAsync("m", 64 * 1024, 1);
        var point = (await h.Vault.GetPointsAsync(await h.Vault.GetItemAsync("m", default), default)).Last();
        string link = h.Dir["link"];
        Directory.CreateSymbolicLink(link, h.Vault.Location);
        var ex = Assert.Throws<AsrException>(() => RecoveryPointExporter.Plan(point, Path.Combine(link, "out"), false, null, h.Vault.Store));
        Assert.Equal(AsrErrorIds.ExportDestinationInvalid, ex.ErrorId);
    }

    [Fact]
    public async Task FailoverTargetInsideTheVault_IsRefused()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, item) = await h.NewMachineAsync("m", 64 * 1024, 1);
        var service = new FailoverService(h.Vault);
        foreach (var target in new[] { Path.Combine(h.Vault.Location, "target"), "/proc/target" })
        {
            var ex = await Assert.ThrowsAsync<AsrException>(() => service.ValidateTargetAsync(item, new AsrLocalTarget(target), default));
            Assert.Equal(AsrErrorIds.FailoverTargetInvalid, ex.ErrorId);
            Assert.Equal(AsrErrorKind.InvalidArgument, ex.Kind);
        }
        await service.ValidateTargetAsync(item, new AsrLocalTarget(h.Dir["target"]), default);
    }
}

/// <summary>Issue #12 item 7: New-AsrVault over an existing file is VaultAlreadyExists, not an I/O error.</summary>
public sealed class VaultOverFileTests
{
    [Fact]
    public async Task CreatingAVaultAtAnExistingFile_IsVaultAlreadyExists_AndLeavesTheFile()
    {
        using var dir = new TempDir();
        string file = dir["file"];
        File.WriteAllText(file, "keep");
        var ex = await Assert.ThrowsAsync<AsrException>(() =>
            AsrModule.Engine.Vault.AsrVault.CreateAsync(new LocalDirectoryStore(file), null, null, default));
        Assert.Equal(AsrErrorIds.VaultAlreadyExists, ex.ErrorId);
        Assert.Equal(AsrErrorKind.ResourceExists, ex.Kind);
        Assert.Equal("keep", File.ReadAllText(file));
    }
}
