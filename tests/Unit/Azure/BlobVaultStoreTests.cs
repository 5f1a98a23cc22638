using System.Diagnostics;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Azure.Storage;
using Azure.Storage.Blobs.Specialized;
using Xunit.Abstractions;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>What only the blob backend has: credentials and secrets, service errors, lease expiry.</summary>
[Collection(AzuriteCollection.Name)]
public sealed class BlobVaultStoreTests(AzuriteFixture azurite, ITestOutputHelper output)
{
    private AzuriteServer Server => azurite.Server;

    private static void AssertNoSecrets(string text, params string[] secrets)
    {
        foreach (var secret in secrets.Where(s => !string.IsNullOrEmpty(s)))
            Assert.False(text.Contains(secret, StringComparison.Ordinal), $"a secret appears in: {text}");
    }

    private static string SignatureOf(Uri sasUri) =>
        Uri.UnescapeDataString(sasUri.Query.TrimStart('?').Split('&').Single(p => p.StartsWith("sig=", StringComparison.Ordinal))[4..]);

    [RequiresAzurite]
    public async Task Location_is_the_container_uri_without_any_secret()
    {
        string container = AzuriteServer.NewContainerName();
        var sasUri = Server.ContainerSasUri(container);
        string expected = $"http://127.0.0.1:{Server.Port}/{AzuriteServer.Account}/{container}";
        var stores = new IVaultStore[]
        {
            BlobVaultStore.FromConnectionString(Server.ConnectionString, container),
            BlobVaultStore.FromSasUri(sasUri),
            BlobVaultStore.FromSharedKey(Server.ContainerUri(container), Server.SharedKey),
            new BlobVaultStore(Server.ContainerClient(container)),
        };
        await ((BlobVaultStore)stores[0]).CreateContainerIfNotExistsAsync(default);
        foreach (var store in stores)
        {
            Assert.Equal(expected, store.Location);
            AssertNoSecrets(store.Location, AzuriteServer.AccountKey, SignatureOf(sasUri), "sig=", "?");
        }

        // What the vault records and shows carries the location only.
        var vault = await AsrVault.CreateAsync(stores[1], "pass phrase", null, default);
        await vault.CreatePolicyAsync(new Engine.Policies.AsrPolicy { Name = "default" }, default);
        Assert.Equal(expected, vault.Location);
        foreach (var o in await stores[1].ListAsync("", default))
            AssertNoSecrets(System.Text.Encoding.UTF8.GetString((await stores[1].ReadAllAsync(o.Key, default))!), AzuriteServer.AccountKey, SignatureOf(sasUri));
    }

    [RequiresAzurite]
    public async Task A_wrong_key_or_sas_is_an_access_denied_security_error_without_secrets()
    {
        var good = await Server.NewStoreAsync();
        string container = good.Location[(good.Location.LastIndexOf('/') + 1)..];
        await good.WriteAsync("vault.json", "{}"u8.ToArray(), default);
        string wrongKey = Convert.ToBase64String(Enumerable.Range(0, 64).Select(i => (byte)i).ToArray());
        var badSas = Server.ContainerSasUri(container, wrongKey);
        var fast = new BlobVaultStoreOptions { MaxRetries = 1, RetryDelay = TimeSpan.FromMilliseconds(50) };
        var badStores = new[]
        {
            BlobVaultStore.FromSasUri(badSas, fast),
            BlobVaultStore.FromSharedKey(Server.ContainerUri(container), new StorageSharedKeyCredential(AzuriteServer.Account, wrongKey), fast),
        };
        foreach (var store in badStores)
        {
            var errors = new List<AsrException>
            {
                await Assert.ThrowsAsync<AsrException>(() => store.ReadAllAsync("vault.json", default)),
                await Assert.ThrowsAsync<AsrException>(() => store.WriteAsync("x", new byte[1], default)),
                await Assert.ThrowsAsync<AsrException>(() => store.ListAsync("", default)),
                Assert.Throws<AsrException>(() => store.TryAcquireLock("locks/a.lock")),
                await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenAsync(store, null, null, default)),
            };
            foreach (var ex in errors)
            {
                Assert.Equal(AsrErrorIds.VaultAccessDenied, ex.ErrorId);
                Assert.Equal(AsrErrorKind.SecurityError, ex.Kind);
                Assert.Equal(store.Location, ex.Target);
                AssertNoSecrets(ex.ToString(), wrongKey, SignatureOf(badSas), AzuriteServer.AccountKey);
            }
            output.WriteLine(errors[0].Message);
        }
    }

    /// <summary>An Entra ID access token as Azurite's --oauth basic checks it (issuer, audience, lifetime; not the signature).</summary>
    private sealed class TestEntraCredential(TimeSpan lifetime) : global::Azure.Core.TokenCredential
    {
        public int Calls;
        public string? LastToken;

        public override global::Azure.Core.AccessToken GetToken(global::Azure.Core.TokenRequestContext requestContext, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Calls);
            Assert.Contains("https://storage.azure.com/.default", requestContext.Scopes);
            var now = DateTimeOffset.UtcNow;
            static string B64(string json) => Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(json)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            string payload = $$"""{"aud":"https://storage.azure.com","iss":"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/","iat":{{now.AddMinutes(-5).ToUnixTimeSeconds()}},"nbf":{{now.AddMinutes(-5).ToUnixTimeSeconds()}},"exp":{{now.Add(lifetime).ToUnixTimeSeconds()}},"oid":"11111111-2222-3333-4444-555555555555"}""";
            LastToken = B64("""{"alg":"RS256","typ":"JWT"}""") + "." + B64(payload) + ".c2lnbmF0dXJl";
            return new global::Azure.Core.AccessToken(LastToken, now.Add(lifetime));
        }

        public override ValueTask<global::Azure.Core.AccessToken> GetTokenAsync(global::Azure.Core.TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }

    private sealed class FailingCredential : global::Azure.Core.TokenCredential
    {
        public override global::Azure.Core.AccessToken GetToken(global::Azure.Core.TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            throw new global::Azure.Identity.CredentialUnavailableException("ManagedIdentityCredential authentication unavailable. No response received from the managed identity endpoint.");

        public override ValueTask<global::Azure.Core.AccessToken> GetTokenAsync(global::Azure.Core.TokenRequestContext requestContext, CancellationToken cancellationToken) =>
            ValueTask.FromResult(GetToken(requestContext, cancellationToken));
    }

    [RequiresAzurite]
    public async Task A_token_credential_opens_the_vault_over_https_and_a_failing_one_is_access_denied()
    {
        using var server = AzuriteServer.Start(httpsWithOAuth: true);
        var options = new BlobVaultStoreOptions { Transport = server.TrustingTransport() };
        string container = AzuriteServer.NewContainerName();
        var credential = new TestEntraCredential(TimeSpan.FromHours(1));
        var store = BlobVaultStore.FromTokenCredential(server.ContainerUri(container), credential, options);
        Assert.Equal($"https://127.0.0.1:{server.Port}/{AzuriteServer.Account}/{container}", store.Location);
        Assert.True(await store.CreateContainerIfNotExistsAsync(default));
        var vault = await AsrVault.CreateAsync(store, "k", null, default);
        using (var held = store.TryAcquireLock(VaultLayout.ItemRecordLock("x"))) Assert.NotNull(held);
        Assert.Equal(vault.VaultId, (await AsrVault.OpenAsync(BlobVaultStore.FromTokenCredential(server.ContainerUri(container), credential, options), "k", null, default)).VaultId);
        Assert.True(credential.Calls > 0);
        output.WriteLine($"token requested {credential.Calls} times");

        // A credential that cannot get a token: a security error that says so, not a retry loop.
        var fast = new BlobVaultStoreOptions { Transport = server.TrustingTransport(), MaxRetries = 1, RetryDelay = TimeSpan.FromMilliseconds(50) };
        var noToken = BlobVaultStore.FromTokenCredential(server.ContainerUri(container), new FailingCredential(), fast);
        var ex = await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenAsync(noToken, "k", null, default));
        Assert.Equal(AsrErrorIds.VaultAccessDenied, ex.ErrorId);
        Assert.Equal(AsrErrorKind.SecurityError, ex.Kind);
        Assert.Contains("could not get a token", ex.Message);
        output.WriteLine(ex.Message);

        // An expired token is refused by the service: access denied, the token never in the error.
        var expired = new TestEntraCredential(TimeSpan.FromMinutes(-1));
        var refused = await Assert.ThrowsAsync<AsrException>(() => BlobVaultStore.FromTokenCredential(server.ContainerUri(container), expired, fast).ReadAllAsync(VaultHeader.Key, default));
        Assert.Equal(AsrErrorIds.VaultAccessDenied, refused.ErrorId);
        AssertNoSecrets(refused.ToString(), expired.LastToken!, expired.LastToken!.Split('.')[1]);
        output.WriteLine(refused.Message);

        // A token is only sent over https, and never together with a SAS.
        Assert.Equal(AsrErrorKind.InvalidArgument, Assert.Throws<AsrException>(() =>
            BlobVaultStore.FromTokenCredential(new Uri($"http://127.0.0.1:{server.Port}/{AzuriteServer.Account}/{container}"), credential)).Kind);
        Assert.Equal(AsrErrorKind.InvalidArgument, Assert.Throws<AsrException>(() =>
            BlobVaultStore.FromTokenCredential(new Uri($"{server.ContainerUri(container)}?sv=2024-01-01&sig=abc"), credential)).Kind);
    }

    [RequiresAzurite]
    public async Task A_missing_container_is_VaultNotFound_until_created()
    {
        var store = Server.OpenStore(AzuriteServer.NewContainerName());
        var open = await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenAsync(store, null, null, default));
        Assert.Equal(AsrErrorIds.VaultNotFound, open.ErrorId);
        Assert.Equal(AsrErrorKind.ObjectNotFound, open.Kind);
        var write = await Assert.ThrowsAsync<AsrException>(() => store.WriteAsync("a", new byte[1], default));
        Assert.Equal(AsrErrorIds.VaultNotFound, write.ErrorId);
        Assert.Equal(AsrErrorIds.VaultNotFound, Assert.Throws<AsrException>(() => store.TryAcquireLock("locks/x.lock")).ErrorId);
        Assert.False(await store.ContainerExistsAsync(default));

        Assert.True(await store.CreateContainerIfNotExistsAsync(default));
        Assert.False(await store.CreateContainerIfNotExistsAsync(default));
        var vault = await AsrVault.CreateAsync(store, null, null, default);
        var again = await Assert.ThrowsAsync<AsrException>(() => AsrVault.CreateAsync(store, null, null, default));
        Assert.Equal(AsrErrorIds.VaultAlreadyExists, again.ErrorId);
        Assert.Equal(vault.VaultId, (await AsrVault.OpenAsync(Server.OpenStore(store.Location[(store.Location.LastIndexOf('/') + 1)..]), null, null, default)).VaultId);
    }

    [RequiresAzurite]
    public async Task A_container_sas_can_use_an_existing_container_it_cannot_create()
    {
        var admin = await Server.NewStoreAsync();
        string container = admin.Location[(admin.Location.LastIndexOf('/') + 1)..];
        var sasStore = BlobVaultStore.FromSasUri(Server.ContainerSasUri(container));
        Assert.False(await sasStore.CreateContainerIfNotExistsAsync(default));
        await AsrVault.CreateAsync(sasStore, null, null, default);
        Assert.True(await admin.ExistsAsync(VaultHeader.Key, default));
    }

    [RequiresAzurite]
    public async Task An_unreachable_endpoint_is_VaultUnavailable_after_retries_with_backoff()
    {
        // A port nothing listens on (Azurite is not needed, but the test belongs with the others).
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        int port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        var options = new BlobVaultStoreOptions { MaxRetries = 3, RetryDelay = TimeSpan.FromMilliseconds(200), MaxRetryDelay = TimeSpan.FromSeconds(1) };
        string cs = $"DefaultEndpointsProtocol=http;AccountName={AzuriteServer.Account};AccountKey={AzuriteServer.AccountKey};BlobEndpoint=http://127.0.0.1:{port}/{AzuriteServer.Account};";
        var store = BlobVaultStore.FromConnectionString(cs, "vault", options);

        var watch = Stopwatch.StartNew();
        var ex = await Assert.ThrowsAsync<AsrException>(() => store.WriteAsync("items/x/item.json", new byte[10], default));
        var elapsed = watch.Elapsed;
        Assert.Equal(AsrErrorIds.VaultUnavailable, ex.ErrorId);
        Assert.Equal(AsrErrorKind.ConnectionError, ex.Kind);
        Assert.Contains("4 attempts", ex.Message);
        // Backoff: 0.2 + 0.4 + 0.8 s (±20% jitter) between the 4 attempts.
        Assert.True(elapsed > TimeSpan.FromSeconds(1), $"gave up after {elapsed}");
        AssertNoSecrets(ex.ToString(), AzuriteServer.AccountKey);
        output.WriteLine($"{elapsed.TotalSeconds:F1} s: {ex.Message}");

        Assert.Equal(AsrErrorIds.VaultUnavailable, Assert.Throws<AsrException>(() => store.TryAcquireLock("locks/a.lock")).ErrorId);
        Assert.Equal(AsrErrorIds.VaultUnavailable, (await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenAsync(store, null, null, default))).ErrorId);
        // A cancellation stays a cancellation.
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => store.ReadAllAsync("vault.json", cancelled.Token));
    }

    [RequiresAzurite]
    public async Task A_held_lock_is_renewed_past_its_lease_and_an_abandoned_one_frees_itself_when_the_lease_expires()
    {
        var options = new BlobVaultStoreOptions { LockLeaseDuration = TimeSpan.FromSeconds(15) }; // the shortest lease Azure allows
        var first = await Server.NewStoreAsync(options: options);
        var second = Server.OpenStore(first.Location[(first.Location.LastIndexOf('/') + 1)..], options);

        var held = (BlobVaultStore.BlobLock)first.TryAcquireLock("locks/agent-host1.lock")!;
        Assert.NotNull(held);
        // Renewed every 5 s: still held well after 15 s.
        await Task.Delay(TimeSpan.FromSeconds(20));
        Assert.Null(second.TryAcquireLock("locks/agent-host1.lock"));
        Assert.False(held.Lost.IsCancellationRequested);

        // The holder dies: no more renewals, no release.
        held.Abandon();
        var watch = Stopwatch.StartNew();
        IDisposable? taken;
        while ((taken = second.TryAcquireLock("locks/agent-host1.lock")) is null)
        {
            Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30), "the abandoned lock did not free itself");
            await Task.Delay(250);
        }
        output.WriteLine($"abandoned lock taken over after {watch.Elapsed.TotalSeconds:F1} s (lease 15 s, last renewal up to 5 s before)");
        Assert.True(watch.Elapsed > TimeSpan.FromSeconds(5), $"taken over after only {watch.Elapsed}");
        taken.Dispose();
    }

    [RequiresAzurite]
    public async Task A_pack_is_uploaded_as_parallel_staged_blocks_and_small_objects_in_one_request()
    {
        var store = await Server.NewStoreAsync(); // defaults: 8 MiB blocks, 4 at a time
        var pack = new byte[32 << 20];
        new Random(2).NextBytes(pack);
        await store.WriteAsync("items/i/packs/000000000001-0000.pack", pack, default);
        await store.WriteAsync("items/i/item.json", new byte[5000], default);
        var blocks = (await store.Container.GetBlockBlobClient("items/i/packs/000000000001-0000.pack").GetBlockListAsync()).Value;
        Assert.Equal(Enumerable.Repeat(8L << 20, 4), blocks.CommittedBlocks.Select(b => b.SizeLong));
        Assert.Empty(blocks.UncommittedBlocks);
        // A single Put Blob leaves no block list to speak of (one implicit block at most).
        var small = (await store.Container.GetBlockBlobClient("items/i/item.json").GetBlockListAsync()).Value;
        Assert.True(small.CommittedBlocks.Count() <= 1);
        Assert.Equal(pack, await store.ReadAllAsync("items/i/packs/000000000001-0000.pack", default));
    }

    [RequiresAzurite]
    public async Task A_lock_is_a_real_blob_lease_that_other_lease_holders_respect()
    {
        var store = await Server.NewStoreAsync();
        string container = store.Location[(store.Location.LastIndexOf('/') + 1)..];
        var raw = Server.ContainerClient(container).GetBlobClient("locks/item-9.lock");
        using (var held = store.TryAcquireLock("locks/item-9.lock"))
        {
            Assert.NotNull(held);
            var properties = (await raw.GetPropertiesAsync()).Value;
            Assert.Equal(global::Azure.Storage.Blobs.Models.LeaseState.Leased, properties.LeaseState);
            Assert.Equal(global::Azure.Storage.Blobs.Models.LeaseDurationType.Fixed, properties.LeaseDuration);
            var ex = await Assert.ThrowsAsync<global::Azure.RequestFailedException>(() => raw.GetBlobLeaseClient().AcquireAsync(TimeSpan.FromSeconds(15)));
            Assert.Equal(409, ex.Status);
        }
        Assert.Equal(global::Azure.Storage.Blobs.Models.LeaseState.Available, (await raw.GetPropertiesAsync()).Value.LeaseState);

        // Another process's lease (a raw lease client) keeps the store out until it is released.
        var other = raw.GetBlobLeaseClient();
        await other.AcquireAsync(TimeSpan.FromSeconds(60));
        Assert.Null(store.TryAcquireLock("locks/item-9.lock"));
        await other.ReleaseAsync();
        using var mine = store.TryAcquireLock("locks/item-9.lock");
        Assert.NotNull(mine);
    }

    [RequiresAzurite]
    public async Task Lock_blobs_are_small_objects_that_list_like_local_lock_files()
    {
        var store = await Server.NewStoreAsync();
        using (store.TryAcquireLock("locks/record-1.lock"))
        {
            Assert.Equal([("locks/record-1.lock", 0L)], (await store.ListAsync("locks/", default)).Select(o => (o.Key, o.Length)));
        }
        using var again = store.TryAcquireLock("locks/record-1.lock");
        Assert.NotNull(again);
    }

    [RequiresAzurite]
    public async Task Two_vault_sessions_updating_one_item_record_lose_no_change()
    {
        string container = AzuriteServer.NewContainerName();
        var a = await AsrVault.CreateAsync(await Server.NewStoreAsync(container), null, null, default);
        var b = await AsrVault.OpenAsync(Server.OpenStore(container), null, null, default);
        using var dir = new TempDir();
        TestDisks.Create(dir["d.img"], 1 << 20, 1);
        await a.CreatePolicyAsync(new Engine.Policies.AsrPolicy { Name = "default" }, default);
        var item = await new Engine.Replication.ReplicationService(a).RegisterAsync("web01", [dir["d.img"]], "default", default);
        var watch = Stopwatch.StartNew();
        // Each session appends to the same field under the record lock (a lease on the blob side).
        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => Task.Run(() =>
            (i % 2 == 0 ? a : b).UpdateItemAsync(item.Id, r => r.LastError = (r.LastError ?? "") + $"[{i}]", default))));
        output.WriteLine($"10 concurrent record updates from two sessions: {watch.Elapsed.TotalSeconds:F2} s");
        var final = await b.GetItemAsync("web01", default);
        Assert.Equal(10, final.LastError!.Count(c => c == '['));
        Assert.Equal($"http://127.0.0.1:{Server.Port}/{AzuriteServer.Account}/{container}", final.VaultLocation);
    }
}
