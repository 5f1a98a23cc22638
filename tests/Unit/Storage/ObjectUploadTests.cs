using AsrModule.Engine.Storage;
using AsrModule.Tests.Unit.Agent;
using Xunit;

namespace AsrModule.Tests.Unit.Storage;

/// <summary>
/// A create-only object written in parts (IVaultStore.BeginCreate): the local store streams it into a temporary file,
/// other stores gather it and call TryCreateAsync. Either way it appears whole at the commit, never replaces an object,
/// and leaves nothing when not committed.
/// </summary>
public sealed class ObjectUploadTests
{
    private static byte[] Bytes(int length, int seed)
    {
        var b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static TheoryData<string> Stores => new() { "local", "buffered" };

    /// <summary>The local store itself, or the same store behind a wrapper (which gets the interface's buffered upload).</summary>
    private static IVaultStore Open(string kind, string dir) =>
        kind == "local" ? new LocalDirectoryStore(dir) : new CountingStore(new LocalDirectoryStore(dir));

    private static string[] Temporaries(string dir) => !Directory.Exists(dir) ? [] :
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Where(f => f.Contains(".tmp-", StringComparison.Ordinal)).ToArray();

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task The_parts_appear_whole_at_the_commit_and_not_before(string kind)
    {
        using var dir = new TempDir();
        var store = Open(kind, dir["vault"]);
        var parts = new[] { Bytes(1000, 1), Bytes(256 << 10, 2), Bytes(1, 3), Bytes(3 << 20, 4) };
        await using (var upload = store.BeginCreate("items/i/packs/p0", 4 << 20))
        {
            foreach (var part in parts)
            {
                await upload.AppendAsync(part, default);
                Assert.False(await store.ExistsAsync("items/i/packs/p0", default));
            }
            Assert.Equal(parts.Sum(p => (long)p.Length), upload.Length);
            Assert.True(await upload.CommitAsync(default));
        }
        Assert.Equal(parts.SelectMany(p => p).ToArray(), await store.ReadAllAsync("items/i/packs/p0", default));
        Assert.Empty(Temporaries(dir["vault"]));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task An_existing_object_is_not_replaced(string kind)
    {
        using var dir = new TempDir();
        var store = Open(kind, dir["vault"]);
        var first = Bytes(5000, 1);
        Assert.True(await store.TryCreateAsync("items/i/packs/p0", first, default));
        await using (var upload = store.BeginCreate("items/i/packs/p0", 1 << 20))
        {
            await upload.AppendAsync(Bytes(7000, 2), default);
            Assert.False(await upload.CommitAsync(default));
        }
        Assert.Equal(first, await store.ReadAllAsync("items/i/packs/p0", default));
        Assert.Empty(Temporaries(dir["vault"]));
    }

    /// <summary>What a killed writer leaves is only removed when its name has the shape the sweep looks for.</summary>
    [Fact]
    public async Task The_temporary_of_an_upload_is_one_the_sweep_of_stale_temporaries_removes()
    {
        using var dir = new TempDir();
        var store = new LocalDirectoryStore(dir["vault"]);
        await using var upload = store.BeginCreate("items/i/packs/p0", 1 << 20);
        await upload.AppendAsync(Bytes(1000, 1), default);
        string temporary = Assert.Single(Temporaries(dir["vault"]));
        Assert.Equal(0, await store.SweepStaleTemporariesAsync(TimeSpan.FromMinutes(10), default)); // in use: too young
        File.SetLastWriteTimeUtc(temporary, DateTime.UtcNow.AddHours(-1));
        Assert.Equal(1, await store.SweepStaleTemporariesAsync(TimeSpan.FromMinutes(10), default));
        Assert.Empty(Temporaries(dir["vault"]));
    }

    [Theory]
    [MemberData(nameof(Stores))]
    public async Task An_upload_not_committed_leaves_nothing(string kind)
    {
        using var dir = new TempDir();
        var store = Open(kind, dir["vault"]);
        await using (var upload = store.BeginCreate("items/i/packs/p0", 1 << 20))
        {
            await upload.AppendAsync(Bytes(300_000, 1), default);
        }
        Assert.False(await store.ExistsAsync("items/i/packs/p0", default));
        Assert.Empty(await store.ListAsync("items/", default));
        Assert.Empty(Temporaries(dir["vault"]));
    }
}
