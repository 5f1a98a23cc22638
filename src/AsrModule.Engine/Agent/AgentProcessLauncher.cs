using System.Diagnostics;
using System.Runtime.InteropServices;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Agent;

/// <summary>
/// Starts the agent as a detached background process (its own session, so the terminal's Ctrl+C and
/// the session's exit do not stop it; output appended to a log file) and waits for its first heartbeat.
/// Under systemd the unit file starts the same program instead.
/// </summary>
public static class AgentProcessLauncher
{
    public static async Task<AsrAgentRecord> StartAsync(AsrVault vault, string agentDll, string hostName, string? passphrase, string logPath,
        TimeSpan? tickInterval, TimeSpan timeout, CancellationToken ct, IReadOnlyList<string>? allowedFreezeScripts = null)
    {
        if (!File.Exists(agentDll))
            throw new AsrException(AsrErrorIds.AgentStartFailed, AsrErrorKind.ObjectNotFound, $"The agent program '{agentDll}' is missing from the module.", agentDll);
        var previous = await AgentDirectory.FindAsync(vault, hostName, ct).ConfigureAwait(false);
        // A previous agent's blob lease can outlive it by a minute (it died, or could not release it in an outage):
        // the new agent waits for it (AgentOptions.DeadAgentLockWait).
        if (previous is { State: not AsrAgentState.Running }) timeout += new AgentOptions().DeadAgentLockWait;
        if (previous is { State: AsrAgentState.Running } running)
            throw new AsrException(AsrErrorIds.AgentAlreadyRunning, AsrErrorKind.ResourceBusy,
                $"An agent for host '{hostName}' is already running (process {running.ProcessId} on {running.MachineName}). Stop it with Stop-AsrAgent -HostName {hostName} first.", hostName);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(logPath))!);
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        // setsid: a new session without a terminal; exec keeps one process id from sh to the agent.
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec setsid \"$@\" >>\"$ASR_AGENT_LOG\" 2>&1 </dev/null");
        psi.ArgumentList.Add("asr-agent");
        psi.ArgumentList.Add(DotnetHost());
        psi.ArgumentList.Add(agentDll);
        psi.ArgumentList.Add("--vault");
        psi.ArgumentList.Add(vault.Location);
        psi.ArgumentList.Add("--host-name");
        psi.ArgumentList.Add(hostName);
        if (tickInterval is { } tick)
        {
            psi.ArgumentList.Add("--tick");
            psi.ArgumentList.Add(tick.ToString("c"));
        }
        if (allowedFreezeScripts is { Count: > 0 })
        {
            psi.ArgumentList.Add("--allowed-freeze-scripts");
            psi.ArgumentList.Add(string.Join(':', allowedFreezeScripts.Select(Path.GetFullPath)));
        }
        psi.Environment["ASR_AGENT_LOG"] = Path.GetFullPath(logPath);
        psi.Environment["DOTNET_NOLOGO"] = "1";
        // The passphrase goes through the environment, never the command line (visible to every user in ps).
        if (passphrase is not null) psi.Environment["ASR_VAULT_KEY"] = passphrase;
        else psi.Environment.Remove("ASR_VAULT_KEY");
        // So is the blob vault's credential (connection string, SAS, key, service principal secret).
        if (vault.Store is Storage.IVaultStoreCredentials credentials) credentials.ForwardTo(psi.Environment);
        var started = DateTimeOffset.UtcNow;
        using var process = Process.Start(psi)
            ?? throw new AsrException(AsrErrorIds.AgentStartFailed, AsrErrorKind.InvalidOperation, "The agent process could not be started.", hostName);
        int pid = process.Id;
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await AgentDirectory.FindAsync(vault, hostName, ct).ConfigureAwait(false) is { } record
                && record.ProcessId == pid && record.RecordedState == AsrAgentState.Running && record.StartedUtc >= started.AddSeconds(-5))
                return record;
            if (process.HasExited)
                throw new AsrException(AsrErrorIds.AgentStartFailed, AsrErrorKind.InvalidOperation,
                    $"The agent for host '{hostName}' exited at once (exit code {process.ExitCode}): {Tail(logPath)}", hostName);
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        throw new AsrException(AsrErrorIds.AgentStartFailed, AsrErrorKind.OperationTimeout,
            $"The agent for host '{hostName}' (process {pid}) did not report within {timeout.TotalSeconds:0} s; see {logPath}: {Tail(logPath)}", hostName);
    }

    /// <summary>Waits until the agent's record says Stopped (or its process is gone); kills it when <paramref name="force"/> and it is local.</summary>
    public static async Task<AsrAgentRecord> StopAsync(AsrVault vault, string hostName, TimeSpan timeout, bool force, CancellationToken ct)
    {
        var record = await AgentDirectory.GetAsync(vault, hostName, ct).ConfigureAwait(false);
        if (record.State == AsrAgentState.Stopped) return record;
        await AgentDirectory.RequestStopAsync(vault, hostName, ct).ConfigureAwait(false);
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            record = await AgentDirectory.GetAsync(vault, hostName, ct).ConfigureAwait(false);
            if (record.RecordedState == AsrAgentState.Stopped) return record;
            // A local agent whose process is gone will not write Stopped. One whose heartbeat is merely late (NotResponding
            // while busy) is still stopping: wait for its record, as for any other.
            if (record.ProcessGoneHere) break;
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        if (record.RecordedState != AsrAgentState.Stopped && record.MachineName == Environment.MachineName && force)
        {
            try { using var p = Process.GetProcessById(record.ProcessId); p.Kill(); p.WaitForExit(10_000); }
            catch (ArgumentException) { }
            return await AgentDirectory.GetAsync(vault, hostName, ct).ConfigureAwait(false);
        }
        // Gone (local), or another machine's agent that stopped reporting: nothing more to wait for here.
        if (record.RecordedState == AsrAgentState.Stopped || record.ProcessGoneHere
            || (record.MachineName != Environment.MachineName && record.State == AsrAgentState.NotResponding)) return record;
        throw new AsrException(AsrErrorIds.AgentStopTimeout, AsrErrorKind.OperationTimeout,
            $"The agent for host '{hostName}' did not stop within {timeout.TotalSeconds:0} s (it may be finishing a cycle). Wait longer, or use -Force to kill it (its next start resyncs the cycle it was in).", hostName);
    }

    /// <summary>The dotnet executable of the runtime this process runs on (pwsh bundles its own runtime, so look further).</summary>
    private static string DotnetHost()
    {
        var candidates = new List<string?>
        {
            Environment.GetEnvironmentVariable("DOTNET_HOST_PATH"),
            Path.Combine(Path.GetFullPath(Path.Combine(RuntimeEnvironment.GetRuntimeDirectory(), "..", "..", "..")), "dotnet"),
            Environment.GetEnvironmentVariable("DOTNET_ROOT") is { } root ? Path.Combine(root, "dotnet") : null,
            Environment.ProcessPath is { } self && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : null,
        };
        candidates.AddRange((Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => Path.Combine(d, "dotnet")));
        candidates.AddRange(["/usr/share/dotnet/dotnet", "/usr/lib/dotnet/dotnet", "/usr/bin/dotnet"]);
        return candidates.FirstOrDefault(c => c is not null && File.Exists(c))
            ?? throw new AsrException(AsrErrorIds.AgentStartFailed, AsrErrorKind.ObjectNotFound,
                "The .NET runtime ('dotnet') the agent runs on was not found; install .NET 10 or set DOTNET_ROOT.", null);
    }

    private static string Tail(string logPath)
    {
        try { return string.Join(" | ", File.ReadLines(logPath).TakeLast(6)); }
        catch (IOException) { return "(no log)"; }
    }
}
