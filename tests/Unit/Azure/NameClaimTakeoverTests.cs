using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>
/// A stale name claim (its item record never saved: a crash between claim and save) is taken over by one session only,
/// on a local vault and on a blob vault (Azurite): the takeover replaces the claim at the version it read.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class NameClaimTakeoverTests(AzuriteFixture azurite) : IDisposable
{
    public static TheoryData<string, string?> Backends()
    {
        var data = new TheoryData<string, string?> { { "local", null }, { "local", "claim key" } };
        if (AzuriteServer.ShouldRun) { data.Add("blob", null); data.Add("blob", "claim key"); }
        return data;
    }

    private readonly List<Action> _cleanup = new();

    public void Dispose()
    {
        foreach (var c in _cleanup) c();
    }

    /// <summary>Two vault instances on one store (two processes), the second opened on its own store instance.</summary>
    private async Task<(AsrVault A, AsrVault B)> TwoSessionsAsync(string backend, string? key)
    {
        IVaultStore first, second;
        if (backend == "local")
        {
            var dir = new TempDir();
            _cleanup.Add(dir.Dispose);
            (first, second) = (new LocalDirectoryStore(dir["vault"]), new LocalDirectoryStore(dir["vault"]));
        }
        else
        {
            string container = AzuriteServer.NewContainerName();
            var server = azurite.Server;
            first = await server.NewStoreAsync(container);
            // "Another process" asks the service, not this process's registry of held locks.
            second = server.OpenStore(container, new Engine.Azure.BlobVaultStoreOptions { SkipInProcessLockCheck = true });
            _cleanup.Add(() => server.ContainerClient(container).DeleteIfExists());
        }
        var a = await AsrVault.CreateAsync(first, key, null, default);
        var b = await AsrVault.OpenAsync(second, key, null, default);
        return (a, b);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Two_sessions_taking_over_one_stale_claim_at_once_cannot_both_win(string backend, string? key)
    {
        var (a, b) = await TwoSessionsAsync(backend, key);
        string claim = VaultLayout.ItemNameClaim("web01");
        // What a crash between claim and save left: a claim of an item that has no record.
        await a.Store.WriteAsync(claim, a.Records.SealBytes(claim, "dead000000000000"u8), default);
        a.NameClaimTakeoverDelay = b.NameClaimTakeoverDelay = TimeSpan.FromMilliseconds(300);
        var mine = new AsrProtectedItem { Name = "web01", Id = "aaaa000000000000", PolicyName = "default" };
        var theirs = new AsrProtectedItem { Name = "web01", Id = "bbbb000000000000", PolicyName = "default" };

        // Each session saves its record right after its claim, as Enable-AsrReplication does.
        async Task<string> EnableAsync(AsrVault vault, AsrProtectedItem item)
        {
            try
            {
                await vault.ClaimItemNameAsync(item, default);
                await vault.SaveItemAsync(item, default);
                return item.Id;
            }
            catch (AsrException ex) when (ex.ErrorId == AsrErrorIds.ProtectedItemAlreadyExists)
            {
                return "lost";
            }
        }
        var results = await Task.WhenAll(Task.Run(() => EnableAsync(a, mine)), Task.Run(() => EnableAsync(b, theirs)));

        string winner = Assert.Single(results, r => r != "lost");
        var stored = (await b.Store.ReadAllAsync(claim, default))!;
        Assert.Equal(winner, System.Text.Encoding.UTF8.GetString(b.Records.OpenBytes(claim, stored)));
        Assert.Equal(winner, (await a.GetItemAsync("web01", default)).Id);
    }
}
