using System.Diagnostics;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Exports;
using AsrModule.Engine.Items;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Vault;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Failover.Boot;

/// <summary>
/// Boots a running drill's machine (Test-AsrTestFailover -Boot): QEMU straight from the drill's NBD exports under
/// overlays of its own, waits for the readiness signal, takes a screenshot, runs the item's check, powers the machine
/// off and records the result on the drill, in the job and in the item's drill history. The drill itself (its exports
/// and overlays) is unchanged by a boot, so it can be booted again or verified byte for byte afterwards.
/// </summary>
public sealed class DrillBootVerifier(AsrVault vault)
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(250);
    private static readonly TimeSpan PortProbeInterval = TimeSpan.FromSeconds(1);

    /// <summary>Checks before any job: a drill served over NBD to boot, and valid settings.</summary>
    public static void Validate(AsrProtectedItem item, BootOptions options)
    {
        options.Validate();
        if (item.State != ProtectedItemState.TestFailedOver || item.TestFailover is null)
            throw new AsrException(AsrErrorIds.InvalidStateTransition, AsrErrorKind.InvalidOperation,
                $"'{item.Name}' has no drill to boot (state {item.State}). Start one with Start-AsrTestFailover.", item.Name);
        if (item.TestFailover.Machine is { } machine)
            throw new AsrException(AsrErrorIds.BootSettingInvalid, AsrErrorKind.InvalidOperation,
                $"The drill of '{item.Name}' runs as {machine.MachineId} in {machine.TargetKind}, which boots it there; -Boot boots drills served over NBD " +
                "(Start-AsrTestFailover -Target (New-AsrLocalTarget ...)). Verify this one without -Boot.", item.Name);
    }

    public async Task<AsrJobResult> BootAsync(AsrProtectedItem item, BootOptions options, BootCheck? check, JobContext context)
    {
        var ct = context.CancellationToken;
        Validate(item, options);
        var drill = item.TestFailover!;
        var point = await vault.GetPointAsync(item.Id, drill.RecoveryPointSequence, ct).ConfigureAwait(false);
        string drillDirectory = TestFailoverService.DrillDirectory(item, drill, "nothing was booted");
        var started = DateTimeOffset.UtcNow;
        // One directory per boot (two boots of one drill may start in the same second).
        string bootDirectory = Path.Combine(drillDirectory, $"boot-{started.UtcDateTime:yyyyMMdd'T'HHmmss'Z'}-{Guid.NewGuid().ToString("N")[..4]}");
        Directory.CreateDirectory(bootDirectory);
        var disks = new List<BootDisk>();
        foreach (var disk in point.Disks) // in the point's order: the first disk boots
        {
            if (!drill.Exports.TryGetValue(disk.Name, out var location) || !Uri.TryCreate(location, UriKind.Absolute, out var uri) || uri.Scheme != "nbd"
                || !(uri.IsLoopback || uri.Host == Environment.MachineName))
                throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                    $"The drill record of '{item.Name}' gives no loopback nbd:// export for disk '{disk.Name}'; nothing was booted. Clean up the drill and start a new one.", VaultLayout.Item(item.Id));
            await EnsureServedAsync(item, drill, uri, ct).ConfigureAwait(false);
            disks.Add(new BootDisk(disk.Name, uri.Host, uri.Port, Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/')), disk.SizeBytes,
                VaultRecordChecks.JoinInside(bootDirectory, disk.Name, ".qcow2", VaultLayout.PointManifest(point.ItemId, point.Sequence))));
        }

        var result = new BootVerificationResult { StartedUtc = started };
        var console = new BootConsole(Path.Combine(bootDirectory, "console.log"));
        string screenshot = Path.Combine(bootDirectory, "screen.png");
        var machine = await QemuBootMachine.StartAsync($"{item.Name}-drill", disks, options, console.Path, ct).ConfigureAwait(false);
        try
        {
            result.Accelerator = machine.Accelerator;
            context.Logger.LogInformation("Booting the drill of {Item} under QEMU ({Accelerator}), ports {Ports}", item.Name, machine.Accelerator,
                string.Join(", ", machine.ForwardedPorts.Select(p => $"{p.Key}->127.0.0.1:{p.Value}")));
            var watch = Stopwatch.StartNew();
            (result.Booted, result.Detail) = await WaitUntilReadyAsync(item.Name, machine, console, options, watch, context).ConfigureAwait(false);
            result.ReadyAfterSeconds = result.Booted ? Math.Round(watch.Elapsed.TotalSeconds, 1) : null;
            string? shotError = await machine.ScreenshotAsync(screenshot, ct).ConfigureAwait(false);
            if (shotError is null) result.ScreenshotPath = screenshot;
            else context.Logger.LogWarning("No screenshot of the drill of {Item}: {Error}", item.Name, shotError);
            console.Refresh();
            if (!result.Booted)
            {
                result.Outcome = BootVerificationResult.NotReady;
            }
            else
            {
                result.Outcome = BootVerificationResult.Passed;
                if (check is not null)
                {
                    context.Report(90, $"Drill of '{item.Name}' ready after {result.ReadyAfterSeconds:0.0} s; running its check");
                    var outcome = await RunCheckAsync(check, new BootCheckInput
                    {
                        ItemName = item.Name,
                        RecoveryPointSequence = point.Sequence,
                        ConsoleLog = console.Text,
                        ForwardedPorts = machine.ForwardedPorts,
                        ReadyAfterSeconds = result.ReadyAfterSeconds ?? 0,
                        ScreenshotPath = result.ScreenshotPath,
                    }, ct).ConfigureAwait(false);
                    result.CheckResult = outcome.Passed ? "Passed" : "Failed";
                    result.CheckMessage = outcome.Message;
                    if (!outcome.Passed) result.Outcome = BootVerificationResult.CheckFailed;
                }
            }
        }
        finally
        {
            await machine.DisposeAsync().ConfigureAwait(false);
        }
        console.Refresh();
        result.ConsoleTail = console.Tail();
        result.EndedUtc = DateTimeOffset.UtcNow;
        await RecordAsync(item, drill, point.RecoveryPointTimeUtc, result, context).ConfigureAwait(false);

        var jobResult = new AsrJobResult
        {
            Mode = "BootTestFailover",
            RecoveryPointSequence = point.Sequence,
            RecoveryPointId = point.PointId,
            // Verified is left unset: a boot compares no bytes, and Verified means "read back and compared". The boot's
            // outcome is Boot.Outcome (and a job that did not pass fails).
            Boot = result,
            Note = result.ToString(),
            Files = new[] { result.ScreenshotPath, console.Path }.OfType<string>().ToList(),
        };
        context.Report(100, $"Drill of '{item.Name}' (point {point.Sequence}): {result}");
        return result.Outcome switch
        {
            BootVerificationResult.Passed => jobResult,
            BootVerificationResult.CheckFailed => throw new AsrException(AsrErrorIds.DrillCheckFailed, AsrErrorKind.InvalidResult,
                $"The drill of '{item.Name}' (point {point.Sequence}) booted in {result.ReadyAfterSeconds:0.0} s but its check failed: {result.CheckMessage}. " +
                "The drill still runs: look at it (Result.Boot: console tail, screenshot), boot it again, or clean it up.", item.Name) { PartialResult = jobResult },
            _ => throw new AsrException(AsrErrorIds.DrillBootFailed, AsrErrorKind.OperationTimeout,
                $"The drill of '{item.Name}' (point {point.Sequence}) did not become ready: {result.Detail}. Console tail: {LastLine(result.ConsoleTail)}. " +
                "The drill still runs: look at the screenshot and console in Result.Boot, boot it again with a longer -BootTimeoutSeconds or other settings, " +
                "drill another point, or clean it up.", item.Name) { PartialResult = jobResult },
        };
    }

    /// <summary>Ready and what showed it, or not ready and why (timeout, QEMU ended).</summary>
    private static async Task<(bool Ready, string Detail)> WaitUntilReadyAsync(string itemName, QemuBootMachine machine, BootConsole console, BootOptions options, Stopwatch watch, JobContext context)
    {
        var ct = context.CancellationToken;
        var pattern = options.CompiledPattern();
        string? line = null;
        bool portAnswers = options.ReadyPort is null;
        TimeSpan? lastProbe = null;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            console.Refresh();
            if (pattern is not null && line is null) line = console.FindLine(pattern);
            if (!portAnswers && (lastProbe is null || watch.Elapsed - lastProbe >= PortProbeInterval))
            {
                lastProbe = watch.Elapsed;
                portAnswers = await GuestPortProbe.AnswersAsync(machine.ForwardedPorts[options.ReadyPort!.Value], ct).ConfigureAwait(false);
            }
            if ((pattern is null || line is not null) && portAnswers)
            {
                return (true, string.Join("; ", new[] { line is null ? null : $"console: {Shorten(line)}", options.ReadyPort is { } p ? $"guest port {p} answers" : null }.OfType<string>()));
            }
            if (machine.HasExited)
                return (false, $"QEMU ended (exit code {machine.ExitCode}) after {watch.Elapsed.TotalSeconds:0.0} s{(machine.Stderr.Length > 0 ? ": " + Shorten(machine.Stderr) : "")}");
            if (watch.Elapsed >= options.Timeout)
                return (false, $"no readiness signal within {options.Timeout.TotalSeconds:0} s (waited for {Waiting(options, line, portAnswers)})");
            int percent = (int)Math.Min(85, 85 * watch.Elapsed.TotalSeconds / options.Timeout.TotalSeconds);
            context.Report(percent, $"Booting the drill of '{itemName}' ({machine.Accelerator}): {watch.Elapsed.TotalSeconds:0} s, waiting for {Waiting(options, line, portAnswers)}");
            await Task.Delay(Poll, ct).ConfigureAwait(false);
        }
    }

    private static string Waiting(BootOptions options, string? line, bool portAnswers) => string.Join(" and ",
        new[] { options.ReadyPattern is { } p && line is null ? $"a console line matching '{p}'" : null, !portAnswers ? $"guest port {options.ReadyPort}" : null }.OfType<string>());

    /// <summary>Runs the check; an exception from it is its failure (cancellation excepted).</summary>
    private static async Task<BootCheckOutcome> RunCheckAsync(BootCheck check, BootCheckInput input, CancellationToken ct)
    {
        try
        {
            return await check(input, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return new BootCheckOutcome(false, ex.Message);
        }
    }

    /// <summary>On the drill (if it is still the same drill), and as a record of the item's drill history with the screenshot.</summary>
    private async Task RecordAsync(AsrProtectedItem item, TestFailoverRecord drill, DateTimeOffset pointTime, BootVerificationResult result, JobContext context)
    {
        await vault.UpdateItemAsync(item.Id, i =>
        {
            if (i.TestFailover?.Id == drill.Id) i.TestFailover.Boot = result;
        }, CancellationToken.None).ConfigureAwait(false);
        byte[]? png = null;
        if (result.ScreenshotPath is { } path && new FileInfo(path).Length is > 0 and <= DrillResultRecord.MaximumScreenshotBytes)
        {
            png = await File.ReadAllBytesAsync(path, CancellationToken.None).ConfigureAwait(false);
            if (!DrillResultRecord.IsPng(png)) png = null;
        }
        var record = new DrillResultRecord
        {
            ItemId = item.Id,
            ItemName = item.Name,
            DrillId = drill.Id,
            JobId = context.Job.Id,
            RecoveryPointSequence = drill.RecoveryPointSequence,
            RecoveryPointTimeUtc = pointTime,
            Boot = result,
            Screenshot = png,
        };
        await vault.Records.WriteAsync(VaultLayout.DrillResult(item.Id, result.StartedUtc, drill.Id), record, CancellationToken.None).ConfigureAwait(false);
    }

    private static async Task EnsureServedAsync(AsrProtectedItem item, TestFailoverRecord drill, Uri export, CancellationToken ct)
    {
        try
        {
            await using var client = await NbdClient.ConnectAsync(export, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or InvalidDataException)
        {
            throw new AsrException(AsrErrorIds.DrillNotServed, AsrErrorKind.ConnectionError,
                $"The drill of '{item.Name}' is not served any more ({export}: {ex.Message}); the process that started it ({drill.OwnerProcessId} on {drill.OwnerHost}) " +
                "has probably ended. Clean it up with Start-AsrTestFailoverCleanup and start a new drill.", item.Name, ex);
        }
    }

    private static string LastLine(string text)
    {
        string last = text.TrimEnd('\n').Split('\n')[^1];
        return last.Length == 0 ? "(empty)" : Shorten(last);
    }

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..200] + "...";
}
