using AsrModule.Engine.Agent;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Events;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Replication.Groups;
using AsrModule.Engine.Security;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// One encrypted vault with two of every record kind, shared by the cases of <see cref="RecordAuthenticationTests"/>:
/// each case tampers with one object and puts its bytes back afterwards.
/// </summary>
public sealed class SealedVaultFixture : IAsyncLifetime
{
    internal EngineHarness H { get; private set; } = null!;
    internal AsrProtectedItem M { get; private set; } = null!;
    internal AsrProtectedItem N { get; private set; } = null!;
    internal Guid JobM { get; } = Guid.NewGuid();
    internal Guid JobN { get; } = Guid.NewGuid();
    internal string EventM { get; private set; } = "";
    internal string EventN { get; private set; } = "";
    internal string PinM { get; private set; } = "";
    internal string PinN { get; private set; } = "";
    private readonly List<PointPin> _pins = new();

    public async Task InitializeAsync()
    {
        H = await EngineHarness.CreateAsync("record key");
        var v = H.Vault;
        await v.CreatePolicyAsync(new AsrPolicy { Name = "other" }, default);
        (_, M) = await H.NewMachineAsync("m", 256 << 10, 81, "m.img");
        (_, N) = await H.NewMachineAsync("n", 256 << 10, 82, "n.img");
        await v.Jobs.SaveAsync(new AsrJob { Id = JobM, Operation = "Test", TargetName = "m", State = AsrJobState.Succeeded }, default);
        await v.Jobs.SaveAsync(new AsrJob { Id = JobN, Operation = "Test", TargetName = "n", State = AsrJobState.Succeeded }, default);
        await v.Events.WriteAsync(AsrEventSeverity.Information, "Test", "event of m", "m");
        await v.Events.WriteAsync(AsrEventSeverity.Information, "Test", "event of n", "n");
        var events = (await v.Store.ListAsync(EventLog.Prefix, default)).Select(o => o.Key).ToList();
        (EventM, EventN) = (events[0], events[1]);
        await v.Records.WriteAsync(VaultLayout.Agent("h1"), new AsrAgentRecord { HostName = "h1", MachineName = "h1" }, default);
        await v.Records.WriteAsync(VaultLayout.Agent("h2"), new AsrAgentRecord { HostName = "h2", MachineName = "h2" }, default);
        foreach (long s in new long[] { 1, 2 })
            await v.Records.TryCreateAsync(VaultLayout.GroupPoint("g", s), new AsrGroupRecoveryPoint
            {
                GroupPointId = Guid.NewGuid(), ReplicationGroup = "g", Sequence = s,
                Members = [new GroupMemberPoint { ItemId = M.Id, ItemName = "m", PointSequence = 1 }],
            }, default);
        _pins.Add(await PointPin.AcquireAsync(v, await v.GetPointAsync(M.Id, 1, default), "test", default));
        _pins.Add(await PointPin.AcquireAsync(v, await v.GetPointAsync(N.Id, 1, default), "test", default));
        PinM = (await v.Store.ListAsync(VaultLayout.PinsPrefix(M.Id), default)).Single().Key;
        PinN = (await v.Store.ListAsync(VaultLayout.PinsPrefix(N.Id), default)).Single().Key;
    }

    public async Task DisposeAsync()
    {
        foreach (var p in _pins) await p.DisposeAsync();
        H.Dispose();
    }
}

/// <summary>
/// In an encrypted vault every record authenticates itself and where it belongs (issue #12, item 2): for each kind, a
/// plain version planted by someone without the key, the sealed record with a flipped tag byte, and a sealed record of
/// the same kind copied from another key all end in VaultDataCorrupt naming the object (or, in listings, in the record
/// shown as damaged), never in the record being obeyed.
/// </summary>
public class RecordAuthenticationTests(SealedVaultFixture f) : IClassFixture<SealedVaultFixture>
{
    /// <summary>How a record kind is stored, for planting a plain version of it.</summary>
    private enum Form { Json, Binary, Raw }

    /// <summary>A record kind: the object tampered with, another of its kind, and what reads it (returns the refusal).</summary>
    private sealed record Kind(string Key, string Donor, Form Form, Func<Task<AsrException>> Read);

    private AsrVault V => f.H.Vault;

    /// <summary>Point 1 of an item (its manifest names the attempt in its objects' names), read before anything is tampered with.</summary>
    private AsrRecoveryPoint PointOf(string itemId) => V.GetPointAsync(itemId, 1, default).GetAwaiter().GetResult();

    private static async Task<AsrException> Throws(Func<Task> read) => await Assert.ThrowsAsync<AsrException>(read);

    /// <summary>The damaged entry a listing shows in place of <paramref name="key"/>.</summary>
    private static AsrException DamagedEntry<T>(IEnumerable<VaultListEntry<T>> listing, string key) where T : class
    {
        var entry = Assert.Single(listing, e => e.Key == key);
        Assert.True(entry.IsDamaged);
        return entry.Error!;
    }

    private Kind KindOf(string name) => name switch
    {
        "policy" => new(VaultLayout.Policy("default"), VaultLayout.Policy("other"), Form.Json, () => Throws(() => V.GetPolicyAsync("default", default))),
        "policy in listing" => new(VaultLayout.Policy("default"), VaultLayout.Policy("other"), Form.Json,
            async () => DamagedEntry(await V.Catalog.ListPoliciesAsync(default), VaultLayout.Policy("default"))),
        "item" => new(VaultLayout.Item(f.M.Id), VaultLayout.Item(f.N.Id), Form.Json, () => Throws(() => V.GetItemAsync("m", default))),
        "item in listing" => new(VaultLayout.Item(f.M.Id), VaultLayout.Item(f.N.Id), Form.Json,
            async () => DamagedEntry(await V.Catalog.ListItemsAsync(default), VaultLayout.Item(f.M.Id))),
        "manifest" => new(VaultLayout.PointManifest(f.M.Id, 1), VaultLayout.PointManifest(f.N.Id, 1), Form.Json,
            () => Throws(() => V.GetPointAsync(f.M.Id, 1, default))),
        "manifest in listing" => new(VaultLayout.PointManifest(f.M.Id, 1), VaultLayout.PointManifest(f.N.Id, 1), Form.Json,
            async () => DamagedEntry(await V.Catalog.ListPointsAsync(f.M.Id, default), VaultLayout.PointManifest(f.M.Id, 1))),
        "index" => new(VaultLayout.PointIndex(PointOf(f.M.Id), "disk0"), VaultLayout.PointIndex(PointOf(f.N.Id), "disk0"), Form.Binary, async () =>
        {
            var point = await V.GetPointAsync(f.M.Id, 1, default);
            return await Throws(() => RecoveryPointDiskReader.OpenAsync(V, point, "disk0", default));
        }),
        // Every reader of a tracker (a cycle, a planned failover's final check) opens it so; a cycle then treats it as missing (TrackerTests below).
        "tracker" => new(VaultLayout.TrackerMap(PointOf(f.M.Id), "disk0"), VaultLayout.TrackerMap(PointOf(f.N.Id), "disk0"), Form.Binary, async () =>
        {
            string key = VaultLayout.TrackerMap(PointOf(f.M.Id), "disk0");
            var stored = (await V.Store.ReadAllAsync(key, default))!;
            return Assert.Throws<AsrException>(() => MetadataSealer.Open(stored, V.Key, key));
        }),
        "job" => new(VaultLayout.Job(f.JobM), VaultLayout.Job(f.JobN), Form.Json, () => Throws(() => V.Jobs.GetAsync(f.JobM, default))),
        "job in listing" => new(VaultLayout.Job(f.JobM), VaultLayout.Job(f.JobN), Form.Json,
            async () => DamagedEntry(await V.Catalog.ListJobsAsync(default), VaultLayout.Job(f.JobM))),
        "event" => new(f.EventM, f.EventN, Form.Json, async () =>
        {
            Assert.DoesNotContain(await V.Events.ListAsync(DateTimeOffset.MinValue, default), e => e.Message == "event of m");
            return DamagedEntry(await V.Events.ListEntriesAsync(DateTimeOffset.MinValue, default), f.EventM);
        }),
        "agent" => new(VaultLayout.Agent("h1"), VaultLayout.Agent("h2"), Form.Json, () => Throws(() => AgentDirectory.FindAsync(V, "h1", default))),
        "group point" => new(VaultLayout.GroupPoint("g", 1), VaultLayout.GroupPoint("g", 2), Form.Json,
            () => Throws(() => GroupReplicationCycle.ListAsync(V, "g", default))),
        "name claim" => new(VaultLayout.ItemNameClaim("m"), VaultLayout.ItemNameClaim("n"), Form.Raw, () => Throws(() => V.GetItemAsync("m", default))),
        "pin" => new(f.PinM, f.PinN, Form.Json, () => Throws(() => PointPin.ActiveSequencesAsync(V, f.M.Id, default))),
        _ => throw new ArgumentException(name),
    };

    public static TheoryData<string, string> Cases()
    {
        var data = new TheoryData<string, string>();
        foreach (var kind in new[] { "policy", "policy in listing", "item", "item in listing", "manifest", "manifest in listing", "index", "tracker",
                     "job", "job in listing", "event", "agent", "group point", "name claim", "pin" })
            foreach (var tamper in new[] { "plain", "flipped tag", "moved" })
                data.Add(kind, tamper);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task A_record_that_does_not_authenticate_is_VaultDataCorrupt_naming_it(string kindName, string tamper)
    {
        var kind = KindOf(kindName);
        string path = VaultTamper.PathOf(f.H, kind.Key);
        byte[] original = File.ReadAllBytes(path);
        try
        {
            switch (tamper)
            {
                case "plain":
                    // What someone without the key can write: the record's content as an unencrypted vault stores it.
                    byte[] content = V.Records.OpenBytes(kind.Key, original);
                    File.WriteAllBytes(path, kind.Form == Form.Binary ? MetadataSealer.Seal(content, null, kind.Key) : content);
                    break;
                case "flipped tag":
                    VaultTamper.FlipByte(path, original.Length - 1); // the last byte of the AES-GCM tag
                    break;
                case "moved":
                    File.Copy(VaultTamper.PathOf(f.H, kind.Donor), path, overwrite: true); // sealed, but for another key
                    break;
            }

            var ex = await kind.Read();

            Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
            Assert.Equal(AsrErrorKind.InvalidData, ex.Kind);
            Assert.Contains(kind.Key, ex.Message);
        }
        finally
        {
            File.WriteAllBytes(path, original);
        }
        // Put back, it reads again: what failed was the tampering, nothing else.
        await V.GetItemAsync("m", default);
    }

    [Fact]
    public async Task Every_record_of_an_encrypted_vault_is_sealed_and_the_header_says_version_2()
    {
        Assert.Equal(VaultHeader.SealedFormatVersion, V.FormatVersion);
        Assert.True(V.Records.Sealed);
        foreach (var o in await V.Store.ListAsync("", default))
        {
            if (o.Key == VaultHeader.Key || o.Key.EndsWith(".pack", StringComparison.Ordinal) || o.Key.StartsWith("locks/", StringComparison.Ordinal)) continue;
            byte[] stored = (await V.Store.ReadAllAsync(o.Key, default))!;
            Assert.True(stored.AsSpan(0, 4).SequenceEqual("ASM1"u8) && stored[4] == 1, $"'{o.Key}' is not sealed");
        }
    }
}

/// <summary>The attacks on the data path and the header of an encrypted vault, each in a vault of its own.</summary>
public class SealedDataPathTests
{
    /// <summary>
    /// The attack of issue #12: someone with write access but no key protects a disk of their own in an unencrypted vault
    /// and copies its (plain) index and packs over a point of the encrypted vault. Before, the index's "not sealed" flag and
    /// its extents' "not encrypted" flags were obeyed and a drill served the planted data.
    /// </summary>
    private static async Task<(EngineHarness Victim, EngineHarness Attacker, AsrProtectedItem Item, AsrRecoveryPoint Point, string Index)> PlantAsync()
    {
        var victim = await EngineHarness.CreateAsync("victim key");
        var attacker = await EngineHarness.CreateAsync();
        var (_, item) = await victim.NewMachineAsync("m", 512 << 10, 91);
        var (_, evil) = await attacker.NewMachineAsync("m", 512 << 10, 92);
        var point = await victim.Vault.GetPointAsync(item.Id, 1, default);
        foreach (var pack in point.Packs) File.Delete(VaultTamper.PathOf(victim, pack));
        var evilPoint = await attacker.Vault.GetPointAsync(evil.Id, 1, default);
        // Under the victim point's names (item and attempt), where its reader looks.
        foreach (var pack in evilPoint.Packs)
            File.Copy(VaultTamper.PathOf(attacker, pack), VaultTamper.PathOf(victim, pack.Replace(evil.Id, item.Id).Replace(evilPoint.AttemptId!, point.AttemptId!)), overwrite: true);
        string index = VaultLayout.PointIndex(point, "disk0");
        File.Copy(VaultTamper.PathOf(attacker, VaultLayout.PointIndex(evilPoint, "disk0")), VaultTamper.PathOf(victim, index), overwrite: true);
        return (victim, attacker, item, point, index);
    }

    [Fact]
    public async Task A_planted_plain_index_and_pack_is_refused_by_export_verification_and_drill()
    {
        var (victim, attacker, item, point, index) = await PlantAsync();
        using var _v = victim;
        using var _a = attacker;

        var export = await Assert.ThrowsAsync<AsrException>(() =>
            RecoveryPointExporter.ExportAsync(victim.Vault, point, victim.Dir["dest"], false, null, JobContext.Detached()));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, export.ErrorId);
        Assert.Contains(index, export.Message);
        Assert.Contains("not sealed", export.Message);
        Assert.Empty(Directory.Exists(victim.Dir["dest"]) ? Directory.EnumerateFileSystemEntries(victim.Dir["dest"]) : []);

        var verified = await RecoveryPointVerifier.VerifyAsync(victim.Vault, point, default);
        Assert.False(verified.Verified);
        Assert.Contains(index, Assert.Single(verified.Disks).Error);

        var drill = await Assert.ThrowsAsync<AsrException>(() => new TestFailoverService(victim.Vault)
            .StartAsync(item, RecoveryPointChoice.LatestProcessed, new AsrLocalTarget(victim.Dir["drills"]), null, JobContext.Detached()));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, drill.ErrorId);
        Assert.Contains(index, drill.Message);
        Assert.Null((await victim.Vault.GetItemAsync("m", default)).TestFailover); // no drill recorded, nothing served
    }

    [Fact]
    public async Task An_extent_stored_unencrypted_is_refused_in_an_encrypted_vault_whatever_its_index_says()
    {
        using var h = await EngineHarness.CreateAsync("extent key");
        using var codec = new ExtentCodec(h.Vault.Key, 0);
        byte[] plain = new byte[4096];
        Random.Shared.NextBytes(plain);
        var record = new ExtentRecord(0, 1, ExtentFlags.None, 1, 0, plain.Length, BlockHashTable.Checksum(plain));
        var ex = Assert.Throws<AsrException>(() => codec.Decode(plain, record, new byte[4096], "i", "disk0", 1, "disk 'd' blocks 0+1 of point m@1"));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains("m@1", ex.Message);
    }

    [Fact]
    public async Task A_plain_tracker_is_not_used_by_the_next_cycle_which_still_publishes_a_whole_point()
    {
        using var h = await EngineHarness.CreateAsync("tracker key");
        var (disk, item) = await h.NewMachineAsync("m", 512 << 10, 93);
        string key = VaultLayout.TrackerMap(await h.Vault.GetPointAsync(item.Id, 1, default), "disk0");
        string path = VaultTamper.PathOf(h, key);
        // A planted tracker saying every block is unchanged would make the cycle skip real changes.
        File.WriteAllBytes(path, MetadataSealer.Seal(MetadataSealer.Open(File.ReadAllBytes(path), h.Vault.Key, key), null, key));
        TestDisks.ScatterWrites(disk, 0.05, 94);
        var logger = new ListLogger();
        var current = await h.Vault.GetItemAsync("m", default);
        using (var lease = await h.Replication.PrepareCycleAsync(current, false, default))
            await h.Replication.RunCycleAsync(current, false, new JobContext(new AsrJob { Id = Guid.NewGuid() }, default, null, logger));
        Assert.Contains(logger.Entries, e => e.Message.Contains(key));
        var latest = (await h.Vault.GetLatestPointAsync(item.Id, default))!;
        Assert.Equal(TestDisks.Sha256(disk), (await h.ExportHashesAsync(latest)).Single().Value);
    }

    [Fact]
    public async Task A_version_2_header_rewritten_to_say_version_1_does_not_open_with_the_key()
    {
        using var h = await EngineHarness.CreateAsync("header key");
        Assert.Equal(2, h.Vault.FormatVersion);
        VaultTamper.EditJson(h, VaultHeader.Key, n => n["formatVersion"] = 1);
        var ex = await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenLocalAsync(h.Dir["vault"], "header key"));
        Assert.Equal(AsrErrorIds.VaultKeyInvalid, ex.ErrorId);

        VaultTamper.EditJson(h, VaultHeader.Key, n => { n["formatVersion"] = 2; n.AsObject().Remove("encryption"); });
        ex = await Assert.ThrowsAsync<AsrException>(() => AsrVault.OpenLocalAsync(h.Dir["vault"], null));
        Assert.Equal(AsrErrorIds.VaultFormatUnsupported, ex.ErrorId);
    }

    [Fact]
    public async Task An_unencrypted_vault_stays_version_1_with_plain_records()
    {
        using var h = await EngineHarness.CreateAsync();
        Assert.Equal(1, h.Vault.FormatVersion);
        Assert.False(h.Vault.Records.Sealed);
        Assert.Equal((byte)'{', File.ReadAllBytes(VaultTamper.PathOf(h, VaultLayout.Policy("default")))[0]);
    }

    [Fact]
    public async Task An_encrypted_vault_of_version_1_still_opens_with_plain_records_but_refuses_a_plain_index()
    {
        // As an earlier version of this module wrote it: records plain JSON; indexes, trackers and extents sealed.
        using var dir = new TempDir();
        string vaultDir = dir["old"];
        Directory.CreateDirectory(vaultDir);
        string vaultId = Guid.NewGuid().ToString("D");
        var settings = VaultKey.CreateSettings("old key", vaultId, 1, out var key);
        File.WriteAllBytes(Path.Combine(vaultDir, VaultHeader.Key),
            VaultJson.Serialize(new VaultHeader { VaultId = vaultId, FormatVersion = 1, Encryption = settings, CreatedUtc = DateTimeOffset.UtcNow }));
        var old = await AsrVault.OpenLocalAsync(vaultDir, "old key");
        Assert.Equal(1, old.FormatVersion);
        Assert.True(old.IsEncrypted);
        Assert.False(old.Records.Sealed);
        await old.CreatePolicyAsync(new AsrPolicy { Name = "p" }, default);
        Assert.Equal((byte)'{', File.ReadAllBytes(Path.Combine(vaultDir, "policies", "p.json"))[0]);
        Assert.Equal("p", (await old.GetPolicyAsync("p", default)).Name);
        // A plain metadata object is refused in any encrypted vault: every version wrote them sealed.
        string objectKey = "items/x/index/000000000001-disk0.idx";
        var ex = Assert.Throws<AsrException>(() => MetadataSealer.Open(MetadataSealer.Seal(new byte[8], null, objectKey), key, objectKey));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains(objectKey, ex.Message);
    }

    [Fact]
    public async Task In_any_vault_a_name_claim_leading_to_another_items_record_is_not_followed()
    {
        using var h = await EngineHarness.CreateAsync();
        var (_, a) = await h.NewMachineAsync("a", 64 << 10, 96, "a.img");
        var (_, b) = await h.NewMachineAsync("b", 64 << 10, 97, "b.img");
        File.WriteAllText(VaultTamper.PathOf(h, VaultLayout.ItemNameClaim("a")), b.Id);
        var ex = await Assert.ThrowsAsync<AsrException>(() => h.Vault.GetItemAsync("a", default));
        Assert.Equal(AsrErrorIds.VaultDataCorrupt, ex.ErrorId);
        Assert.Contains(VaultLayout.ItemNameClaim("a"), ex.Message);
        Assert.Equal("b", (await h.Vault.GetItemAsync("b", default)).Name);
        _ = a;
    }
}
