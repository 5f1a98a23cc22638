using AsrModule.Engine.Agent;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Events;
using AsrModule.Engine.Vault;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Logging.Abstractions;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>
/// How a container URL and one credential become a store, how the credential reaches an agent process
/// (environment, never argv) and that no secret shows in what may be displayed.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class BlobVaultConnectionTests(AzuriteFixture azurite)
{
    private const string Key = AzuriteServer.AccountKey;
    private static readonly Uri Container = new("https://contoso.blob.core.windows.net/asr-vault");

    private static Func<string, string?> Env(params (string Name, string Value)[] vars) =>
        name => vars.FirstOrDefault(v => v.Name == name).Value;

    [Fact]
    public void The_environment_supplies_the_credential_in_the_documented_order()
    {
        string cs = $"DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey={Key};EndpointSuffix=core.windows.net";
        string otherAccount = $"DefaultEndpointsProtocol=https;AccountName=fabrikam;AccountKey={Key};EndpointSuffix=core.windows.net";
        Assert.Equal(BlobVaultAuthentication.ConnectionString,
            BlobVaultConnection.FromEnvironment(Container, Env((BlobVaultConnection.ConnectionStringVariable, cs), (BlobVaultConnection.AccountKeyVariable, Key))).Authentication);
        // A connection string of another account is not sent to this one.
        Assert.Equal(BlobVaultAuthentication.AccountKey,
            BlobVaultConnection.FromEnvironment(Container, Env((BlobVaultConnection.ConnectionStringVariable, otherAccount), (BlobVaultConnection.AccountKeyVariable, Key))).Authentication);
        Assert.Equal(BlobVaultAuthentication.DefaultAzureCredential,
            BlobVaultConnection.FromEnvironment(Container, Env((BlobVaultConnection.AccountKeyVariable, Key), (BlobVaultConnection.AccountNameVariable, "fabrikam"))).Authentication);
        Assert.Equal(BlobVaultAuthentication.SasToken,
            BlobVaultConnection.FromEnvironment(Container, Env((BlobVaultConnection.SasTokenVariable, "?sv=2024-08-04&sp=racwdl&sig=abc"))).Authentication);
        Assert.Equal(BlobVaultAuthentication.SasToken,
            BlobVaultConnection.FromEnvironment(new Uri(Container + "?sv=2024-08-04&sig=abc"), Env()).Authentication);
        Assert.Equal(BlobVaultAuthentication.ManagedIdentity,
            BlobVaultConnection.FromEnvironment(Container, Env((BlobVaultConnection.CredentialVariable, "ManagedIdentity"), (BlobVaultConnection.AccountKeyVariable, Key))).Authentication);
        Assert.Equal(BlobVaultAuthentication.DefaultAzureCredential, BlobVaultConnection.FromEnvironment(Container, Env()).Authentication);
        var bad = Assert.Throws<AsrException>(() => BlobVaultConnection.FromEnvironment(Container, Env((BlobVaultConnection.CredentialVariable, "Password"))));
        Assert.Equal(AsrErrorKind.InvalidArgument, bad.Kind);
    }

    public static TheoryData<string> Credentials() => new()
    {
        "ConnectionString", "SasToken", "AccountKey", "ServicePrincipal", "ManagedIdentity", "DefaultAzureCredential",
    };

    private static BlobVaultConnection Make(string kind) => kind switch
    {
        "ConnectionString" => BlobVaultConnection.WithConnectionString($"DefaultEndpointsProtocol=https;AccountName=contoso;AccountKey={Key};EndpointSuffix=core.windows.net", "asr-vault"),
        "SasToken" => BlobVaultConnection.WithSasToken(Container, "sv=2024-08-04&sp=racwdl&sig=SECRETSIGNATURE"),
        "AccountKey" => BlobVaultConnection.WithAccountKey(Container, Key),
        "ServicePrincipal" => BlobVaultConnection.WithServicePrincipal(Container, "tenant-1", "client-1", "SECRETCLIENTSECRET"),
        "ManagedIdentity" => BlobVaultConnection.WithManagedIdentity(Container, "mi-client"),
        _ => BlobVaultConnection.WithDefaultCredential(Container),
    };

    [Theory]
    [MemberData(nameof(Credentials))]
    public void An_agent_environment_reopens_the_same_vault_the_same_way_and_nothing_shown_holds_the_secret(string kind)
    {
        var connection = Make(kind);
        // Stale variables of another credential must not win in the child.
        var environment = new Dictionary<string, string?>
        {
            [BlobVaultConnection.AccountKeyVariable] = "c3RhbGU=",
            [BlobVaultConnection.CredentialVariable] = "ManagedIdentity",
        };
        connection.ForwardTo(environment);
        var reopened = BlobVaultConnection.FromEnvironment(Container, name => environment.GetValueOrDefault(name));
        Assert.Equal(connection.Authentication, reopened.Authentication);
        Assert.Equal("https://contoso.blob.core.windows.net/asr-vault", reopened.Location);

        var store = connection.OpenStore();
        foreach (string shown in new[] { connection.ToString(), connection.Location, store.Location, store.Authentication })
        {
            Assert.DoesNotContain(Key, shown);
            Assert.DoesNotContain("SECRET", shown);
        }
    }

    [Fact]
    public void An_access_token_is_not_handed_to_an_agent_and_its_expiry_comes_from_the_token()
    {
        string payload = Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes("{\"exp\":4102444800}")).TrimEnd('=');
        var connection = BlobVaultConnection.WithAccessToken(Container, $"Bearer eyJhbGciOiJub25lIn0.{payload}.c2ln");
        var ex = Assert.Throws<AsrException>(() => connection.ForwardTo(new Dictionary<string, string?>()));
        Assert.Equal(AsrErrorIds.VaultCredentialNotForwardable, ex.ErrorId);
        Assert.DoesNotContain(payload, ex.Message);
    }

    [Theory]
    [InlineData("https://contoso.blob.core.windows.net/asr-vault/sub/blob")]
    [InlineData("https://contoso.blob.core.windows.net/Asr_Vault")]
    [InlineData("https://contoso.blob.core.windows.net/")]
    [InlineData("ftp://contoso.blob.core.windows.net/asr-vault")]
    public void A_url_that_does_not_name_a_container_is_an_invalid_argument(string url)
    {
        var ex = Assert.Throws<AsrException>(() => BlobVaultConnection.WithAccountKey(new Uri(url), Key));
        Assert.Equal(AsrErrorIds.VaultNotFound, ex.ErrorId);
        Assert.Equal(AsrErrorKind.InvalidArgument, ex.Kind);
    }

    [Fact]
    public void A_malformed_key_or_connection_string_is_refused_without_quoting_it()
    {
        var key = Assert.Throws<AsrException>(() => BlobVaultConnection.WithAccountKey(Container, "not base64 SECRET!"));
        Assert.DoesNotContain("SECRET", key.Message);
        var cs = Assert.Throws<AsrException>(() => BlobVaultConnection.WithConnectionString("AccountName=x;AccountKey=SECRET;Bogus", "asr-vault"));
        Assert.DoesNotContain("SECRET", cs.Message);
        Assert.Equal(AsrErrorKind.InvalidArgument, cs.Kind);
    }

    [RequiresAzurite]
    public async Task An_agent_whose_lease_lapses_stops_with_AgentLockLost_and_leaves_the_host_record_alone()
    {
        string container = AzuriteServer.NewContainerName();
        // The shortest lease the service allows, renewed every 5 s.
        var store = await azurite.Server.NewStoreAsync(container, new BlobVaultStoreOptions { LockLeaseDuration = TimeSpan.FromSeconds(15) });
        var vault = await AsrVault.CreateAsync(store, null, null, default);
        var agent = new ReplicationAgent(vault, new AgentOptions { HostName = "h1", TickInterval = TimeSpan.FromMilliseconds(200) }, NullLogger.Instance);
        var run = agent.RunAsync(CancellationToken.None);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (await AgentDirectory.FindAsync(vault, "h1", default) is null && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.NotNull(await AgentDirectory.FindAsync(vault, "h1", default));

        // What an outage longer than the lease amounts to: the lease is gone when the agent next renews it.
        var lockBlob = azurite.Server.ContainerClient(container).GetBlobClient(VaultLayout.AgentLock("h1"));
        await lockBlob.GetBlobLeaseClient().BreakAsync(TimeSpan.Zero);
        var finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.Same(run, finished);
        var ex = await Assert.ThrowsAsync<AsrException>(() => run);
        Assert.Equal(AsrErrorIds.AgentLockLost, ex.ErrorId);
        Assert.Equal(AsrErrorKind.ConnectionError, ex.Kind);

        var record = await AgentDirectory.FindAsync(vault, "h1", default);
        Assert.NotEqual(AsrAgentState.Stopped, record!.RecordedState);
        var events = await vault.Events.ListAsync(DateTimeOffset.UtcNow.AddHours(-1), default);
        Assert.Contains(events, e => e.EventType == AsrEventTypes.AgentStopped && e.Severity == AsrEventSeverity.Error && e.Message.Contains("lapsed", StringComparison.Ordinal));
    }

    [RequiresAzurite]
    public async Task A_cycle_whose_item_lease_lapsed_does_not_publish_and_fails_as_busy()
    {
        string container = AzuriteServer.NewContainerName();
        var store = await azurite.Server.NewStoreAsync(container, new BlobVaultStoreOptions { LockLeaseDuration = TimeSpan.FromSeconds(15) });
        using var h = await EngineHarness.CreateAsync(store: store);
        var (disk, item) = await h.NewMachineAsync("m", 4 << 20, 1);
        long before = (await h.Vault.GetItemAsync("m", default)).LastPointSequence;
        TestDisks.ScatterWrites(disk, 0.05, 2);

        using var lease = await h.Replication.PrepareCycleAsync(item, false, default);
        // What an outage longer than the lease amounts to: another holder could take the item from here on.
        await azurite.Server.ContainerClient(container).GetBlobClient(VaultLayout.ItemLock(item.Id)).GetBlobLeaseClient().BreakAsync(TimeSpan.Zero);
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!store.LockLapsed(VaultLayout.ItemLock(item.Id)) && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.True(store.LockLapsed(VaultLayout.ItemLock(item.Id)));

        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Replication.RunCycleAsync(item, false, Engine.Jobs.JobContext.Detached()));
        Assert.Equal(AsrErrorIds.ProtectedItemBusy, ex.ErrorId);
        Assert.Contains("lost its lock", ex.Message);
        Assert.Equal(before, (await h.Vault.GetItemAsync("m", default)).LastPointSequence);
        Assert.Empty(await store.ListAsync(VaultLayout.PointManifest(item.Id, before + 1), default));
    }
}
