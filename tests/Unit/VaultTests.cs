using AsrModule.Engine.Errors;
using AsrModule.Engine.Policies;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit;

public class VaultTests
{
    [Fact]
    public async Task WrongKey_MissingKey_UnexpectedKey_AreRefused()
    {
        using var d = new TempDir();
        await AsrVault.CreateLocalAsync(d["v"], "right");
        Assert.Equal(AsrErrorIds.VaultKeyInvalid, (await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenLocalAsync(d["v"], "wrong"))).ErrorId);
        Assert.Equal(AsrErrorIds.VaultKeyRequired, (await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenLocalAsync(d["v"], null))).ErrorId);
        await AsrVault.CreateLocalAsync(d["plain"], null);
        Assert.Equal(AsrErrorIds.VaultKeyNotExpected, (await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenLocalAsync(d["plain"], "x"))).ErrorId);
    }

    [Fact]
    public async Task UnknownFormatVersion_NotAVault_ExistingVault_AreRefused()
    {
        using var d = new TempDir();
        await AsrVault.CreateLocalAsync(d["v"], null);
        Assert.Equal(AsrErrorIds.VaultAlreadyExists, (await Assert.ThrowsAsync<AsrException>(() => AsrVault.CreateLocalAsync(d["v"], null))).ErrorId);
        string header = File.ReadAllText(Path.Combine(d["v"], VaultHeader.Key)).Replace("\"formatVersion\": 1", "\"formatVersion\": 99");
        File.WriteAllText(Path.Combine(d["v"], VaultHeader.Key), header);
        var ex = await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenLocalAsync(d["v"], null));
        Assert.Equal(AsrErrorIds.VaultFormatUnsupported, ex.ErrorId);
        Assert.Contains("99", ex.Message);
        Directory.CreateDirectory(d["empty"]);
        Assert.Equal(AsrErrorIds.VaultNotFound, (await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenLocalAsync(d["empty"], null))).ErrorId);
    }

    [Fact]
    public async Task BadRegistrations_ChangeNothing()
    {
        using var h = await EngineHarness.CreateAsync();
        string disk = h.Dir["d.img"];
        TestDisks.Create(disk, 1 << 20, 1);
        File.WriteAllBytes(h.Dir["empty.img"], []);
        var svc = new ReplicationService(h.Vault);
        async Task<string> Fails(string name, string[] disks, string policy = "default") =>
            (await Assert.ThrowsAsync<AsrException>(() => svc.RegisterAsync(name, disks, policy, default))).ErrorId;

        Assert.Equal(AsrErrorIds.DiskNotFound, await Fails("m", [disk, h.Dir["missing.img"]]));
        Assert.Equal(AsrErrorIds.PolicyNotFound, await Fails("m", [disk], "nope"));
        Assert.Equal(AsrErrorIds.DiskDuplicate, await Fails("m", [disk, disk]));
        Assert.Equal(AsrErrorIds.DiskEmpty, await Fails("m", [h.Dir["empty.img"]]));
        Assert.Equal(AsrErrorIds.ProtectedItemNameInvalid, await Fails("bad name!", [disk]));
        Assert.Empty(await h.Vault.GetItemsAsync(default));

        await h.EnableAsync("m", disk);
        Assert.Equal(AsrErrorIds.ProtectedItemAlreadyExists, await Fails("M", [disk]));
        Assert.Single(await h.Vault.GetItemsAsync(default));
    }

    [Fact]
    public async Task Policies_ValidateRanges_AndRefuseDuplicates()
    {
        using var d = new TempDir();
        var v = await AsrVault.CreateLocalAsync(d["v"], null);
        var ex = await Assert.ThrowsAsync<AsrException>(() => v.CreatePolicyAsync(new AsrPolicy { Name = "p", AppConsistentFrequencyHours = 13 }, default));
        Assert.Equal(AsrErrorIds.PolicySettingInvalid, ex.ErrorId);
        Assert.Contains("1 to 12", ex.Message);
        await v.CreatePolicyAsync(new AsrPolicy { Name = "p" }, default);
        Assert.Equal(AsrErrorIds.PolicyAlreadyExists, (await Assert.ThrowsAsync<AsrException>(() => v.CreatePolicyAsync(new AsrPolicy { Name = "P" }, default))).ErrorId);
        Assert.Single(await v.GetPoliciesAsync(default));
    }

    [Fact]
    public async Task ItemBusy_WhenAnotherCycleHoldsTheLock()
    {
        using var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("m", 1 << 20, 1);
        using var lease = await h.Replication.PrepareCycleAsync(item, false, default);
        var other = await AsrVault.OpenLocalAsync(h.Dir["vault"], null);
        var ex = await Assert.ThrowsAsync<AsrException>(() => new ReplicationService(other).PrepareCycleAsync(item, false, default));
        Assert.Equal(AsrErrorIds.ProtectedItemBusy, ex.ErrorId);
    }
}
