using System.Net.Sockets;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Replication.Consistency;
using AsrModule.Engine.Replication.Tracking.Qemu;
using AsrModule.Engine.Storage;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging.Abstractions;

namespace AsrModule.Tests.Unit.Untrusted;

/// <summary>
/// What a host runs or writes on the vault's say (issue #12, item 1): a freeze script only if this host
/// allows it and it still has its pinned hash and a safe owner; a QMP socket only if it is a socket of
/// root or this user; reprotect and failback write only to the disk that was protected (or one the caller
/// names), never to a system file or into the vault.
/// </summary>
public class HostTrustTests
{
    /// <summary>A freeze script that leaves a marker file when it runs (either phase).</summary>
    private static string MarkerScript(TempDir dir, string name)
    {
        string path = dir[name];
        File.WriteAllText(path, $"#!/bin/sh\necho \"$1\" >> '{path}.ran'\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static bool Ran(string script) => File.Exists(script + ".ran");

    private static async Task<(EngineHarness H, AsrProtectedItem Item)> ItemWithScriptAsync(string pinnedScript)
    {
        var h = await EngineHarness.CreateAsync();
        TestDisks.Create(h.Dir["d.img"], 256 * 1024, 1);
        await h.Replication.RegisterAsync("vm", [h.Dir["d.img"]], "default", default, settings: new ItemReplicationSettings { AppConsistencyScript = pinnedScript });
        await h.CycleAsync("vm");
        return (h, await h.Vault.GetItemAsync("vm", default));
    }

    private static async Task<(AsrJobResult Result, RecoveryPointConsistency Consistency)> AppConsistentCycleAsync(EngineHarness h)
    {
        var item = await h.Vault.GetItemAsync("vm", default);
        var result = await h.Replication.RunCycleAsync(item, false, JobContext.Detached(), new CycleOptions { AppConsistent = true });
        return (result, (await h.Vault.GetLatestPointAsync(item.Id, default))!.Consistency);
    }

    private static void PlantScript(EngineHarness h, AsrProtectedItem item, string path, string? sha256) =>
        VaultTamper.EditJson(h, VaultLayout.Item(item.Id), n =>
        {
            n["appConsistencyScript"] = path;
            n["appConsistencyScriptSha256"] = sha256;
        });

    [Fact]
    public async Task A_script_pinned_in_this_process_runs_and_its_hash_is_in_the_record()
    {
        using var scripts = new TempDir();
        string script = MarkerScript(scripts, "allowed.sh");
        var (h, item) = await ItemWithScriptAsync(script);
        using var _h = h;
        Assert.Equal(FreezeScriptTrust.Sha256Of(script), item.AppConsistencyScriptSha256);

        var (result, consistency) = await AppConsistentCycleAsync(h);

        Assert.Equal(RecoveryPointConsistency.AppConsistent, consistency);
        Assert.Equal(["freeze", "thaw"], File.ReadAllLines(script + ".ran"));
        Assert.True(string.IsNullOrEmpty(result.Note), result.Note);
    }

    [Fact]
    public async Task A_script_planted_in_the_item_record_with_its_true_hash_is_not_run()
    {
        using var scripts = new TempDir();
        var (h, item) = await ItemWithScriptAsync(MarkerScript(scripts, "allowed.sh"));
        using var _h = h;
        string planted = MarkerScript(scripts, "planted.sh");
        PlantScript(h, item, planted, FreezeScriptTrust.Sha256Of(planted));

        var (result, consistency) = await AppConsistentCycleAsync(h);

        Assert.Equal(RecoveryPointConsistency.CrashConsistent, consistency);
        Assert.False(Ran(planted), "the planted script ran");
        Assert.Contains(FreezeScriptTrust.NotAllowedMarker, result.Note);
        Assert.Contains("allow-list", result.Note);
        Assert.Null((await h.Vault.GetItemAsync("vm", default)).FreezeHeldByJobId);
    }

    [Fact]
    public async Task A_planted_script_is_not_run_as_the_thaw_of_a_freeze_left_held_either()
    {
        using var scripts = new TempDir();
        var (h, item) = await ItemWithScriptAsync(MarkerScript(scripts, "allowed.sh"));
        using var _h = h;
        string planted = MarkerScript(scripts, "planted.sh");
        PlantScript(h, item, planted, FreezeScriptTrust.Sha256Of(planted));
        VaultTamper.EditJson(h, VaultLayout.Item(item.Id), n => n["freezeHeldByJobId"] = Guid.NewGuid().ToString());

        await h.CycleAsync("vm");

        Assert.False(Ran(planted), "the planted script ran as a recovery thaw");
    }

    [Fact]
    public async Task A_pinned_script_whose_content_changed_is_not_run()
    {
        using var scripts = new TempDir();
        string script = MarkerScript(scripts, "changed.sh");
        var (h, _) = await ItemWithScriptAsync(script);
        using var _h = h;
        File.WriteAllText(script, $"#!/bin/sh\necho \"changed $1\" >> '{script}.ran'\n");

        var (result, consistency) = await AppConsistentCycleAsync(h);

        Assert.Equal(RecoveryPointConsistency.CrashConsistent, consistency);
        Assert.False(Ran(script), "the changed script ran");
        Assert.Contains("content changed", result.Note);
    }

    [Fact]
    public async Task A_record_that_pins_no_hash_is_not_run_even_for_a_script_pinned_here()
    {
        using var scripts = new TempDir();
        string script = MarkerScript(scripts, "nohash.sh");
        var (h, item) = await ItemWithScriptAsync(script);
        using var _h = h;
        PlantScript(h, item, script, null);

        var (result, consistency) = await AppConsistentCycleAsync(h);

        Assert.Equal(RecoveryPointConsistency.CrashConsistent, consistency);
        Assert.False(Ran(script));
        Assert.Contains("pins no SHA-256", result.Note);
    }

    [Fact]
    public async Task A_script_in_a_directory_of_the_hosts_allow_list_runs_when_its_hash_matches()
    {
        using var allowed = new TempDir();
        using var scripts = new TempDir();
        var (h, item) = await ItemWithScriptAsync(MarkerScript(scripts, "pinned.sh"));
        using var _h = h;
        // Set on another host (never pinned in this process): the host's configuration allows its directory.
        string script = MarkerScript(allowed, "hook.sh");
        PlantScript(h, item, script, FreezeScriptTrust.Sha256Of(script));
        FreezeScriptTrust.Allow([allowed.Path]);

        var (_, consistency) = await AppConsistentCycleAsync(h);

        Assert.Equal(RecoveryPointConsistency.AppConsistent, consistency);
        Assert.Equal(["freeze", "thaw"], File.ReadAllLines(script + ".ran"));
    }

    [Fact]
    public async Task A_world_writable_script_is_refused_when_set_and_not_run_when_it_becomes_so()
    {
        using var scripts = new TempDir();
        string script = MarkerScript(scripts, "open.sh");
        var (h, _) = await ItemWithScriptAsync(script);
        using var _h = h;
        File.SetUnixFileMode(script, File.GetUnixFileMode(script) | UnixFileMode.OtherWrite);

        var (result, consistency) = await AppConsistentCycleAsync(h);
        Assert.Equal(RecoveryPointConsistency.CrashConsistent, consistency);
        Assert.False(Ran(script));
        Assert.Contains("writable by every user", result.Note);

        var item = await h.Vault.GetItemAsync("vm", default);
        var ex = Assert.Throws<AsrException>(() => FreezeScriptTrust.Pin(script, item.Name));
        Assert.Equal(AsrErrorIds.AppConsistencyScriptInvalid, ex.ErrorId);
    }

    [Fact]
    public void The_allow_list_takes_files_and_directories_and_resolves_symlinks()
    {
        using var dir = new TempDir();
        string inside = MarkerScript(dir, "a.sh");
        string outside = Path.Combine(Path.GetTempPath(), "asr-outside-" + Guid.NewGuid().ToString("N")[..8] + ".sh");
        File.WriteAllText(outside, "#!/bin/sh\n");
        try
        {
            File.CreateSymbolicLink(dir["link.sh"], outside);
            FreezeScriptTrust.Allow([dir.Path]);
            AsrProtectedItem Item(string path) => new() { Name = "x", AppConsistencyScript = path, AppConsistencyScriptSha256 = FreezeScriptTrust.Sha256Of(path) };
            Assert.Null(FreezeScriptTrust.WhyNotAllowed(Item(inside)));
            // A link inside the allowed directory to a script outside it is judged by where it leads.
            Assert.Contains(FreezeScriptTrust.NotAllowedMarker, FreezeScriptTrust.WhyNotAllowed(Item(dir["link.sh"])));
            Assert.Contains("relative path", FreezeScriptTrust.WhyNotAllowed(new AsrProtectedItem { Name = "x", AppConsistencyScript = "a.sh", AppConsistencyScriptSha256 = "00" }));
            Assert.Equal(["/etc/asr/hooks", "/opt/x.sh", "/srv/y.sh"], FreezeScriptTrust.ParseList("/etc/asr/hooks: /opt/x.sh,/srv/y.sh:"));
        }
        finally { File.Delete(outside); }
    }

    // ------------------------------------------------------------------ QMP socket

    [Fact]
    public async Task A_QMP_socket_path_from_the_vault_must_be_a_unix_socket_of_root_or_this_user()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir["file.sock"], "");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(dir["real.sock"]));

        Assert.Null(HostFileTrust.Problem(dir["real.sock"], DiskFileKind.Socket));
        Assert.Contains("not a unix socket", HostFileTrust.Problem(dir["file.sock"], DiskFileKind.Socket));
        Assert.Contains("not a unix socket", HostFileTrust.Problem("/etc/passwd", DiskFileKind.Socket));

        var item = new AsrProtectedItem { Name = "q", QmpSocketPath = dir["file.sock"] };
        var ex = await Assert.ThrowsAsync<AsrException>(() => QemuDirtyBitmapTracker.OpenAsync(item, NullLogger.Instance, default));
        Assert.Equal(AsrErrorIds.QemuSourceUnavailable, ex.ErrorId);
        Assert.Equal(AsrErrorKind.SecurityError, ex.Kind);
    }

    // ------------------------------------------------------------------ reprotect / failback targets

    public static TheoryData<string> ForbiddenTargets => new()
    {
        "/etc/passwd", "/proc/self/mem", "/sys/kernel/notes", "/dev/null", "/dev/shm/asr-x.img", "/usr/bin/env", "/boot/x.img", "/bin/sh", "/lib/x.img",
    };

    [Theory]
    [MemberData(nameof(ForbiddenTargets))]
    public void A_disk_target_under_a_system_or_kernel_directory_is_refused(string path)
    {
        var ex = Assert.Throws<AsrException>(() => OutputLocation.EnsureDiskTarget(path, null, null, mayCreate: true, null, AsrErrorIds.FailoverTargetInvalid, "Disk"));
        Assert.Equal(AsrErrorIds.FailoverTargetInvalid, ex.ErrorId);
    }

    [Fact]
    public async Task A_disk_target_must_be_a_file_or_block_device_of_the_size_and_identity_recorded_outside_the_vault()
    {
        var h = await EngineHarness.CreateAsync();
        using var _h = h;
        TestDisks.Create(h.Dir["ok.img"], 64 * 1024, 1);
        Directory.CreateDirectory(h.Dir["adir"]);
        string? identity = DiskFileType.Of(h.Dir["ok.img"])!.Value.Identity;
        Assert.NotNull(identity);
        AsrException Refused(string path, long? size = null, string? id = null, bool create = false) =>
            Assert.Throws<AsrException>(() => OutputLocation.EnsureDiskTarget(path, size, id, create, h.Vault.Store, AsrErrorIds.FailoverTargetInvalid, "Disk"));

        Assert.Equal(identity, OutputLocation.EnsureDiskTarget(h.Dir["ok.img"], 64 * 1024, identity, false, h.Vault.Store, AsrErrorIds.FailoverTargetInvalid, "Disk"));
        Assert.Null(OutputLocation.EnsureDiskTarget(h.Dir["new.img"], null, null, true, h.Vault.Store, AsrErrorIds.FailoverTargetInvalid, "Disk"));
        Assert.Contains("bytes", Refused(h.Dir["ok.img"], size: 4096).Message);
        Assert.Contains("not the disk that was protected", Refused(h.Dir["ok.img"], id: "file 0:0:1").Message);
        Assert.Contains("a directory", Refused(h.Dir["adir"]).Message);
        Assert.Contains("inside the vault", Refused(Path.Combine(h.Dir["vault"], "vault.json")).Message);
        Assert.Contains("absolute", Refused("relative.img", create: true).Message);
        Assert.Equal(AsrErrorIds.DiskNotFound, Refused(h.Dir["missing.img"]).ErrorId);
        // A symlink is judged by where it leads.
        File.CreateSymbolicLink(h.Dir["to-etc.img"], "/etc/passwd");
        Assert.Contains("/etc", Refused(h.Dir["to-etc.img"]).Message);
    }

    private static async Task<(EngineHarness H, AsrProtectedItem Item, string Disk, FailoverService Failover)> CommittedAsync()
    {
        var h = await EngineHarness.CreateAsync();
        var (disk, item) = await h.NewMachineAsync("app", 1 << 20, 7);
        var failover = new FailoverService(h.Vault);
        using (h.Replication.AcquireLease(item))
            await failover.FailoverAsync(item, FailoverType.Unplanned, RecoveryPointChoice.LatestProcessed, new AsrLocalTarget(h.Dir["target"]), JobContext.Detached());
        item = await h.Vault.GetItemAsync("app", default);
        await failover.CommitAsync(item, JobContext.Detached());
        item = await h.Vault.GetItemAsync("app", default);
        TestDisks.ScatterWrites(item.Failover!.RecoveredDisks["disk0"], 0.05, 5);
        return (h, item, disk, failover);
    }

    [Fact]
    public async Task Reprotect_refuses_an_original_disk_path_planted_in_the_record_and_writes_nothing()
    {
        var (h, item, disk, failover) = await CommittedAsync();
        using var _h = h;
        // Another file of the same size, somewhere the agent's user can write: the record now names it.
        string victim = h.Dir["victim.img"];
        TestDisks.Create(victim, 1 << 20, 99);
        string victimHash = TestDisks.Sha256(victim), diskHash = TestDisks.Sha256(disk);
        foreach (var planted in new[] { victim, "/etc/passwd" })
        {
            VaultTamper.EditJson(h, VaultLayout.Item(item.Id), n => n["disks"]![0]!["sourcePath"] = planted);
            item = await h.Vault.GetItemAsync("app", default);

            var before = Assert.Throws<AsrException>(() => failover.ValidateReprotect(item, null));
            Assert.Equal(AsrErrorIds.FailoverTargetInvalid, before.ErrorId);
            using (h.Replication.AcquireLease(item))
            {
                var ex = await Assert.ThrowsAsync<AsrException>(() => failover.ReprotectAsync(item, null, null, JobContext.Detached()));
                Assert.Equal(AsrErrorIds.FailoverTargetInvalid, ex.ErrorId);
                Assert.Contains(planted, ex.Message);
            }
        }
        Assert.Equal(victimHash, TestDisks.Sha256(victim));
        Assert.Equal(diskHash, TestDisks.Sha256(disk));
        Assert.Equal(ProtectedItemState.Committed, (await h.Vault.GetItemAsync("app", default)).State);
    }

    [Fact]
    public async Task A_reverse_target_planted_after_reprotect_is_refused_by_the_reverse_cycle_and_failback()
    {
        var (h, item, disk, failover) = await CommittedAsync();
        using var _h = h;
        using (h.Replication.AcquireLease(item))
            await failover.ReprotectAsync(item, null, null, JobContext.Detached());
        item = await h.Vault.GetItemAsync("app", default);
        Assert.NotNull(item.Reverse!.TargetIdentities!["disk0"]);
        Assert.Equal(item.Disks[0].SourceIdentity, item.Reverse.TargetIdentities["disk0"]);

        string victim = h.Dir["victim.img"];
        TestDisks.Create(victim, 1 << 20, 98);
        string victimHash = TestDisks.Sha256(victim);
        VaultTamper.EditJson(h, VaultLayout.Item(item.Id), n => n["reverse"]!["targetDisks"]!["disk0"] = victim);
        item = await h.Vault.GetItemAsync("app", default);

        Assert.Equal(AsrErrorIds.FailoverTargetInvalid, Assert.Throws<AsrException>(() => failover.ValidateReverseTargets(item)).ErrorId);
        using (h.Replication.AcquireLease(item))
        {
            Assert.Equal(AsrErrorIds.FailoverTargetInvalid, (await Assert.ThrowsAsync<AsrException>(() => failover.ReverseCycleAsync(item, null, JobContext.Detached()))).ErrorId);
            Assert.Equal(AsrErrorIds.FailoverTargetInvalid, (await Assert.ThrowsAsync<AsrException>(() => failover.FailbackAsync(item, null, JobContext.Detached()))).ErrorId);
        }
        // Marked as an alternate location too, the planted target is not the file reprotect wrote.
        VaultTamper.EditJson(h, VaultLayout.Item(item.Id), n => n["reverse"]!["alternateLocation"] = true);
        item = await h.Vault.GetItemAsync("app", default);
        Assert.Contains("not the disk that was protected", Assert.Throws<AsrException>(() => failover.ValidateReverseTargets(item)).Message);
        Assert.Equal(victimHash, TestDisks.Sha256(victim));
    }

    [Fact]
    public async Task Reprotect_and_failback_to_the_original_disk_go_through_and_keep_its_identity()
    {
        var (h, item, disk, failover) = await CommittedAsync();
        using var _h = h;
        string identity = item.Disks[0].SourceIdentity!;
        using (h.Replication.AcquireLease(item))
            await failover.ReprotectAsync(item, null, null, JobContext.Detached());
        item = await h.Vault.GetItemAsync("app", default);
        using (h.Replication.AcquireLease(item))
            await failover.FailbackAsync(item, null, JobContext.Detached());
        item = await h.Vault.GetItemAsync("app", default);
        Assert.Equal(ProtectedItemState.Protected, item.State);
        Assert.Equal(identity, item.Disks[0].SourceIdentity);
        Assert.Equal(disk, item.Disks[0].SourcePath);
    }

    [Fact]
    public async Task An_alternate_disk_under_a_system_directory_or_in_the_vault_is_refused_before_anything_is_written()
    {
        var (h, item, _, failover) = await CommittedAsync();
        using var _h = h;
        foreach (var alternate in new[] { "/etc/asr-alt.img", "/dev/shm/asr-alt.img", Path.Combine(h.Dir["vault"], "alt.img") })
        {
            var ex = Assert.Throws<AsrException>(() => failover.ValidateReprotect(item, [alternate]));
            Assert.Equal(AsrErrorIds.FailoverTargetInvalid, ex.ErrorId);
            Assert.False(File.Exists(alternate));
        }
    }
}
