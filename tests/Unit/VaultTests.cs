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
    public async Task A_name_claim_without_its_record_is_waited_for_and_taken_over_only_when_it_stays_so()
    {
        using var h = await EngineHarness.CreateAsync();
        var vault = h.Vault;
        string claim = VaultLayout.ItemNameClaim("m");
        var mine = new AsrModule.Engine.Items.AsrProtectedItem { Name = "m", Id = "mine000000000000" };
        async Task<string?> Owner() => await vault.Store.ReadAllAsync(claim, default) is { } b ? System.Text.Encoding.UTF8.GetString(b) : null;

        // Another session has claimed the name and saves its record a moment later (the race two Enable-AsrReplication
        // of one name ran into): this one must not take the claim over, but find the item.
        await vault.Store.WriteAsync(claim, "them000000000000"u8.ToArray(), default);
        var claiming = vault.ClaimItemNameAsync(mine, default);
        await Task.Delay(500);
        Assert.False(claiming.IsCompleted);
        await vault.SaveItemAsync(new AsrModule.Engine.Items.AsrProtectedItem { Name = "m", Id = "them000000000000" }, default);
        Assert.Equal(AsrErrorIds.ProtectedItemAlreadyExists, (await Assert.ThrowsAsync<AsrException>(() => claiming)).ErrorId);
        Assert.Equal("them000000000000", await Owner());

        // A claim released while waiting (a Disable finishing) is claimed again at once.
        await vault.Store.DeleteAsync(VaultLayout.Item("them000000000000"), default);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        claiming = vault.ClaimItemNameAsync(mine, default);
        await Task.Delay(300);
        await vault.Store.DeleteAsync(claim, default);
        await claiming;
        Assert.True(watch.Elapsed < vault.NameClaimTakeoverDelay, $"took {watch.Elapsed}");
        Assert.Equal("mine000000000000", await Owner());

        // A claim a crash left without its record is taken over once it has stayed so for the delay.
        await vault.Store.WriteAsync(claim, "dead000000000000"u8.ToArray(), default);
        vault.NameClaimTakeoverDelay = TimeSpan.FromSeconds(1);
        watch.Restart();
        await vault.ClaimItemNameAsync(mine, default);
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(1), $"taken over after only {watch.Elapsed}");
        Assert.Equal("mine000000000000", await Owner());
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
