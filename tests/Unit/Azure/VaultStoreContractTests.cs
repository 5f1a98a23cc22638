using System.Text;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Storage;
using Azure.Storage.Blobs.Specialized;

namespace AsrModule.Tests.Unit.Azure;

/// <summary>
/// The IVaultStore contract, run against every backend: the local directory (the reference) and the blob
/// container on a real Azurite. A backend is correct when it passes the same tests.
/// </summary>
[Collection(AzuriteCollection.Name)]
public sealed class VaultStoreContractTests(AzuriteFixture azurite) : IDisposable
{
    /// <summary>The backends under test: the blob rows exist when Azurite can run (see <see cref="Azurite_runs_for_the_blob_rows"/>).</summary>
    public static TheoryData<string> Backends()
    {
        var data = new TheoryData<string> { "local" };
        if (AzuriteServer.ShouldRun) data.Add("blob");
        return data;
    }

    private readonly List<Action> _cleanup = new();

    /// <summary>An empty store, and a way to open a second, independent instance on the same data (another process).</summary>
    private async Task<(IVaultStore Store, Func<IVaultStore> OpenAnother)> NewStoreAsync(string backend)
    {
        switch (backend)
        {
            case "local":
            {
                var dir = new TempDir();
                _cleanup.Add(dir.Dispose);
                string root = dir["vault"];
                return (new LocalDirectoryStore(root), () => new LocalDirectoryStore(root));
            }
            case "blob":
            {
                // Small blocks, so objects of a few MiB already take the staged (multi-block) upload path.
                var options = new BlobVaultStoreOptions { UploadBlockSize = 1 << 20 };
                string container = AzuriteServer.NewContainerName();
                var server = azurite.Server;
                var store = await server.NewStoreAsync(container, options);
                _cleanup.Add(() => server.ContainerClient(container).DeleteIfExists());
                // "Another process" asks the service for every lock, not this process's registry of held locks.
                return (store, () => server.OpenStore(container, new BlobVaultStoreOptions { UploadBlockSize = 1 << 20, SkipInProcessLockCheck = true }));
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(backend));
        }
    }

    public void Dispose()
    {
        foreach (var c in _cleanup) c();
    }

    private static byte[] Bytes(int length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    [RequiresAzurite]
    public async Task Azurite_runs_for_the_blob_rows()
    {
        Assert.Contains(Backends().Cast<object[]>().Select(row => (string)row[0]), backend => backend == "blob");
        var store = await azurite.Server.NewStoreAsync();
        await store.WriteAsync("probe", new byte[] { 1 }, default);
        Assert.True(await store.ExistsAsync("probe", default));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Write_then_read_returns_the_same_bytes(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        var small = Encoding.UTF8.GetBytes("{\"hello\":\"vault\"}");
        var large = Bytes((3 << 20) + 12345, 1); // several blocks, an odd tail
        await store.WriteAsync("a.json", small, default);
        await store.WriteAsync("items/x/packs/000000000001-0000.pack", large, default);
        await store.WriteAsync("empty", ReadOnlyMemory<byte>.Empty, default);

        Assert.Equal(small, await store.ReadAllAsync("a.json", default));
        Assert.Equal(large, await store.ReadAllAsync("items/x/packs/000000000001-0000.pack", default));
        Assert.Equal(Array.Empty<byte>(), await store.ReadAllAsync("empty", default));
        Assert.True(await store.ExistsAsync("a.json", default));
        Assert.True(await store.ExistsAsync("empty", default));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task A_missing_object_reads_as_null_and_does_not_exist(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        Assert.Null(await store.ReadAllAsync("nothing/here.json", default));
        Assert.False(await store.ExistsAsync("nothing/here.json", default));
        Assert.Empty(await store.ListAsync("nothing/", default));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Write_replaces_an_object_whole(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        var first = Bytes((2 << 20) + 7, 2);
        var second = Bytes(1000, 3);
        await store.WriteAsync("k/obj", first, default);
        await store.WriteAsync("k/obj", second, default);
        Assert.Equal(second, await store.ReadAllAsync("k/obj", default));
        var listed = Assert.Single(await store.ListAsync("k/", default));
        Assert.Equal(("k/obj", 1000L), (listed.Key, listed.Length));
    }

    /// <summary>The agent re-reads what changed by the versions a listing gives (issue #15): every write changes it, a read does not.</summary>
    [Theory, MemberData(nameof(Backends))]
    public async Task A_listed_version_changes_with_every_write_and_only_then(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        await store.WriteAsync("v/a", Bytes(10, 1), default);
        await store.WriteAsync("v/b", Bytes(10, 2), default);
        var before = (await store.ListAsync("v/", default)).ToDictionary(o => o.Key, o => o.Version);
        Assert.All(before.Values, Assert.NotNull);
        await store.ReadAllAsync("v/a", default);
        await store.WriteAsync("v/b", Bytes(10, 2), default); // same size, same bytes: still a new version
        var after = (await store.ListAsync("v/", default)).ToDictionary(o => o.Key, o => o.Version);
        Assert.Equal(before["v/a"], after["v/a"]);
        Assert.NotEqual(before["v/b"], after["v/b"]);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Folders_are_listed_one_level_deep_without_what_lies_below(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        foreach (var key in new[] { "f/b/x.json", "f/a/item.json", "f/a/points/1.json", "f/a/deep/er/z", "f/loose", "g/c/y" })
            await store.WriteAsync(key, Bytes(3, 1), default);
        Assert.Equal(["a", "b"], await store.ListFoldersAsync("f/", default));
        Assert.Empty(await store.ListFoldersAsync("none/", default));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task ReadRange_reads_exactly_the_bytes_asked_for(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        var data = Bytes((3 << 20) + 999, 4);
        await store.WriteAsync("pack", data, default);
        foreach (var (offset, length) in new[] { (0L, 1), (0L, 4096), (123456L, 70000), ((1L << 20) - 10, 20), (data.Length - 5L, 5), (0L, data.Length) })
        {
            var buffer = new byte[length];
            await store.ReadRangeAsync("pack", offset, buffer, default);
            Assert.True(data.AsSpan((int)offset, length).SequenceEqual(buffer), $"range {offset}+{length}");
        }
        // Past the end and a missing object are errors, never a short read.
        await Assert.ThrowsAnyAsync<IOException>(() => store.ReadRangeAsync("pack", data.Length - 5L, new byte[6], default));
        await Assert.ThrowsAnyAsync<IOException>(() => store.ReadRangeAsync("pack", data.Length + 100L, new byte[1], default));
        await Assert.ThrowsAnyAsync<IOException>(() => store.ReadRangeAsync("missing", 0, new byte[1], default));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task TryCreate_creates_only_when_absent(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        Assert.True(await store.TryCreateAsync("names/web01", "id-1"u8.ToArray(), default));
        Assert.False(await store.TryCreateAsync("names/web01", "id-2"u8.ToArray(), default));
        Assert.Equal("id-1"u8.ToArray(), await store.ReadAllAsync("names/web01", default));
        // A large create (staged blocks) is conditional too.
        var big = Bytes((2 << 20) + 1, 5);
        Assert.True(await store.TryCreateAsync("big", big, default));
        Assert.False(await store.TryCreateAsync("big", Bytes(3 << 20, 6), default));
        Assert.Equal(big, await store.ReadAllAsync("big", default));
        // Once deleted the name is free again.
        await store.DeleteAsync("names/web01", default);
        Assert.True(await store.TryCreateAsync("names/web01", "id-3"u8.ToArray(), default));
        Assert.Equal("id-3"u8.ToArray(), await store.ReadAllAsync("names/web01", default));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task TryCreate_from_two_instances_at_once_lets_exactly_one_win(string backend)
    {
        var (store, openAnother) = await NewStoreAsync(backend);
        var stores = new[] { store, openAnother() };
        for (int round = 0; round < 5; round++)
        {
            string key = $"items/i/points/{round:D12}.json";
            var contents = Enumerable.Range(0, 16).Select(i => Encoding.UTF8.GetBytes($"writer {i} of round {round}")).ToArray();
            var results = await Task.WhenAll(contents.Select((c, i) => Task.Run(() => stores[i % 2].TryCreateAsync(key, c, default))));
            int winner = Assert.Single(Enumerable.Range(0, results.Length), i => results[i]);
            Assert.Equal(contents[winner], await stores[1 - winner % 2].ReadAllAsync(key, default));
        }
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task TryReplace_replaces_only_the_version_read(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        Assert.Null(await store.ReadVersionedAsync("names/web01", default));
        await store.WriteAsync("names/web01", "id-1"u8.ToArray(), default);
        var first = (await store.ReadVersionedAsync("names/web01", default))!;
        Assert.Equal("id-1"u8.ToArray(), first.Content);
        Assert.True(await store.TryReplaceAsync("names/web01", "id-2"u8.ToArray(), first.Version, default));
        var second = (await store.ReadVersionedAsync("names/web01", default))!;
        Assert.NotEqual(first.Version, second.Version);
        // The version read before is gone: no replace at it, nothing changes.
        Assert.False(await store.TryReplaceAsync("names/web01", "id-3"u8.ToArray(), first.Version, default));
        Assert.Equal("id-2"u8.ToArray(), await store.ReadAllAsync("names/web01", default));
        // Nor of an object deleted meanwhile (it is not recreated).
        await store.DeleteAsync("names/web01", default);
        Assert.False(await store.TryReplaceAsync("names/web01", "id-4"u8.ToArray(), second.Version, default));
        Assert.False(await store.ExistsAsync("names/web01", default));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task TryReplace_of_one_version_from_two_instances_at_once_lets_exactly_one_win(string backend)
    {
        var (store, openAnother) = await NewStoreAsync(backend);
        var stores = new[] { store, openAnother() };
        for (int round = 0; round < 5; round++)
        {
            string key = $"names/stale{round}";
            await store.WriteAsync(key, Encoding.UTF8.GetBytes($"dead item of round {round}"), default);
            string version = (await stores[1].ReadVersionedAsync(key, default))!.Version;
            var contents = Enumerable.Range(0, 8).Select(i => Encoding.UTF8.GetBytes($"taker {i} of round {round}")).ToArray();
            var results = await Task.WhenAll(contents.Select((c, i) => Task.Run(() => stores[i % 2].TryReplaceAsync(key, c, version, default))));
            int winner = Assert.Single(Enumerable.Range(0, results.Length), i => results[i]);
            Assert.Equal(contents[winner], await stores[1 - winner % 2].ReadAllAsync(key, default));
        }
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task List_is_recursive_by_key_prefix_in_ordinal_order(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        string[] keys = ["a/b/c", "a/B", "a/a.json", "a/a-1", "a/a/x", "a/Z", "a/0", "ab/z", "b", "items/1/item.json", "items/10/item.json"];
        foreach (var (k, i) in keys.Select((k, i) => (k, i)))
            await store.WriteAsync(k, new byte[i + 1], default);

        var all = await store.ListAsync("", default);
        Assert.Equal(keys.Order(StringComparer.Ordinal), all.Select(o => o.Key));
        Assert.All(all, o => Assert.Equal(Array.IndexOf(keys, o.Key) + 1, o.Length));

        Assert.Equal(["a/0", "a/B", "a/Z", "a/a-1", "a/a.json", "a/a/x", "a/b/c"], (await store.ListAsync("a/", default)).Select(o => o.Key));
        Assert.Equal(["a/a-1", "a/a.json", "a/a/x"], (await store.ListAsync("a/a", default)).Select(o => o.Key));
        Assert.Equal(["ab/z"], (await store.ListAsync("ab", default)).Select(o => o.Key));
        Assert.Equal(["items/1/item.json"], (await store.ListAsync("items/1/", default)).Select(o => o.Key));
        Assert.Empty(await store.ListAsync("c/", default));
        Assert.Empty(await store.ListAsync("a/b/c/d", default));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Delete_removes_an_object_and_tolerates_a_missing_one(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        await store.WriteAsync("jobs/1.json", "{}"u8.ToArray(), default);
        await store.DeleteAsync("jobs/1.json", default);
        Assert.False(await store.ExistsAsync("jobs/1.json", default));
        await store.DeleteAsync("jobs/1.json", default);
        await store.DeleteAsync("never/was/there.json", default);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task DeletePrefix_removes_everything_under_the_prefix_and_nothing_else(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        foreach (var k in new[] { "items/abc/item.json", "items/abc/packs/1.pack", "items/abc/index/1.idx", "items/abcd/item.json", "items/ab/item.json" })
            await store.WriteAsync(k, new byte[10], default);
        await store.DeletePrefixAsync("items/abc/", default);
        Assert.Equal(["items/ab/item.json", "items/abcd/item.json"], (await store.ListAsync("items/", default)).Select(o => o.Key));
        await store.DeletePrefixAsync("items/nothing/", default);
        Assert.Equal(2, (await store.ListAsync("", default)).Count);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task An_interrupted_write_is_never_visible_and_DeleteIncomplete_keeps_whole_objects(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        var whole = Bytes(5000, 7);
        await store.WriteAsync("items/i/packs/000000000001-0000.pack", whole, default);
        await SimulateInterruptedWriteAsync(store, "items/i/packs/000000000002-0000.pack");
        await SimulateInterruptedWriteAsync(store, "items/i/packs/000000000001-0000.pack"); // an interrupted overwrite

        Assert.False(await store.ExistsAsync("items/i/packs/000000000002-0000.pack", default));
        Assert.Null(await store.ReadAllAsync("items/i/packs/000000000002-0000.pack", default));
        Assert.Equal(whole, await store.ReadAllAsync("items/i/packs/000000000001-0000.pack", default));
        Assert.Equal(["items/i/packs/000000000001-0000.pack"], (await store.ListAsync("items/i/", default)).Select(o => o.Key));

        await store.DeleteIncompleteAsync("items/i/packs/", default);
        Assert.Equal(["items/i/packs/000000000001-0000.pack"], (await store.ListAsync("items/i/", default)).Select(o => o.Key));
        Assert.Equal(whole, await store.ReadAllAsync("items/i/packs/000000000001-0000.pack", default));
        // The name an interrupted write used can be written whole.
        await store.WriteAsync("items/i/packs/000000000002-0000.pack", whole, default);
        Assert.Equal(whole, await store.ReadAllAsync("items/i/packs/000000000002-0000.pack", default));
    }

    /// <summary>What a process killed mid-write leaves: a temp file (local), staged but uncommitted blocks (blob).</summary>
    private static async Task SimulateInterruptedWriteAsync(IVaultStore store, string key)
    {
        switch (store)
        {
            case LocalDirectoryStore local:
            {
                string path = Path.Combine(local.Location, key.Replace('/', Path.DirectorySeparatorChar)) + ".tmp-deadbeef";
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                await File.WriteAllBytesAsync(path, new byte[1234]);
                break;
            }
            case BlobVaultStore blob:
            {
                var client = blob.Container.GetBlockBlobClient(key);
                string blockId = Convert.ToBase64String(Guid.NewGuid().ToByteArray());
                await client.StageBlockAsync(blockId, new MemoryStream(new byte[1234]));
                break;
            }
            default:
                throw new NotSupportedException(store.GetType().Name);
        }
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Readers_never_see_a_torn_object_while_it_is_overwritten(string backend)
    {
        var (store, openAnother) = await NewStoreAsync(backend);
        var reader = openAnother();
        byte[] a = Enumerable.Repeat((byte)0xAA, (2 << 20) + 100).ToArray();
        byte[] b = Enumerable.Repeat((byte)0xBB, (3 << 20) + 300).ToArray();
        await store.WriteAsync("hot", a, default);
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(async () =>
        {
            for (int i = 0; i < 12; i++) await store.WriteAsync("hot", i % 2 == 0 ? b : a, default);
        });
        int reads = 0;
        while (!writer.IsCompleted || reads < 5)
        {
            var seen = await reader.ReadAllAsync("hot", default);
            Assert.NotNull(seen);
            Assert.True((seen.Length == a.Length && seen.All(x => x == 0xAA)) || (seen.Length == b.Length && seen.All(x => x == 0xBB)),
                $"read {reads} saw {seen.Length} bytes of mixed content");
            reads++;
        }
        await writer;
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task A_lock_is_exclusive_across_instances_and_released_on_dispose(string backend)
    {
        var (store, openAnother) = await NewStoreAsync(backend);
        var other = openAnother();
        var held = store.TryAcquireLock("locks/item-1.lock");
        Assert.NotNull(held);
        Assert.Null(other.TryAcquireLock("locks/item-1.lock"));
        Assert.Null(store.TryAcquireLock("locks/item-1.lock")); // not re-entrant: the record lock relies on it
        using (var unrelated = other.TryAcquireLock("locks/item-2.lock")) Assert.NotNull(unrelated);
        held.Dispose();
        var taken = other.TryAcquireLock("locks/item-1.lock");
        Assert.NotNull(taken);
        Assert.Null(store.TryAcquireLock("locks/item-1.lock"));
        taken.Dispose();
        using var again = store.TryAcquireLock("locks/item-1.lock");
        Assert.NotNull(again);
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Locked_read_modify_write_from_two_instances_loses_no_update(string backend)
    {
        var (store, openAnother) = await NewStoreAsync(backend);
        var stores = new[] { store, openAnother() };
        await store.WriteAsync("counter", BitConverter.GetBytes(0), default);
        const int workers = 6, increments = 8;
        await Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            var s = stores[w % 2];
            for (int i = 0; i < increments; i++)
            {
                IDisposable? held;
                while ((held = s.TryAcquireLock("locks/record-counter.lock")) is null) await Task.Delay(5);
                using (held)
                {
                    int value = BitConverter.ToInt32((await s.ReadAllAsync("counter", default))!);
                    await s.WriteAsync("counter", BitConverter.GetBytes(value + 1), default);
                }
            }
        })));
        Assert.Equal(workers * increments, BitConverter.ToInt32((await store.ReadAllAsync("counter", default))!));
    }

    [Theory, MemberData(nameof(Backends))]
    public async Task Invalid_keys_are_refused(string backend)
    {
        var (store, _) = await NewStoreAsync(backend);
        foreach (var key in new[] { "", "/abs", "a/../b", "a\\b" })
        {
            await Assert.ThrowsAnyAsync<ArgumentException>(() => store.WriteAsync(key, new byte[1], default));
            await Assert.ThrowsAnyAsync<ArgumentException>(() => store.ReadAllAsync(key, default));
            Assert.ThrowsAny<ArgumentException>(() => store.TryAcquireLock(key));
        }
    }
}
