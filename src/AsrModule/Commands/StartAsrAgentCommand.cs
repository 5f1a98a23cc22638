using System.Management.Automation;
using System.Security;
using AsrModule.Engine.Agent;
using AsrModule.Infrastructure;

namespace AsrModule.Commands;

/// <summary>Starts the replication agent for a host as a background process on this machine and returns it once it reports.</summary>
[Cmdlet(VerbsLifecycle.Start, "AsrAgent", SupportsShouldProcess = true)]
[OutputType(typeof(AsrAgentRecord))]
public sealed class StartAsrAgentCommand : AsrCmdlet
{
    /// <summary>The host name items are assigned to (Enable-AsrReplication -AgentHost). Default: this machine's name.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    public string HostName { get; set; } = Environment.MachineName;

    /// <summary>The vault's passphrase, when it is encrypted (handed to the agent through its environment).</summary>
    [Parameter]
    [SecureStringTransformation]
    public SecureString? EncryptionKey { get; set; }

    /// <summary>Where the agent's log goes (appended). Default: ~/.local/state/asrmodule/agent-HOST.log.</summary>
    [Parameter]
    public string? LogPath { get; set; }

    /// <summary>How often the agent reads the catalog (default 1 second).</summary>
    [Parameter]
    public TimeSpan? TickInterval { get; set; }

    /// <summary>
    /// Freeze scripts the agent may run (files, or directories whose scripts are all allowed): the agent's
    /// allow-list on this host. An item's script outside it is not run. The agent also honours
    /// $env:ASR_ALLOWED_FREEZE_SCRIPTS, which it inherits.
    /// </summary>
    [Parameter]
    public string[]? AllowedFreezeScript { get; set; }

    protected override void ProcessRecord()
    {
        var vault = ResolveVault();
        if (!Engine.Vault.VaultLayout.IsValidName(HostName))
        {
            WriteError(ErrorMapping.ToErrorRecord(new Engine.Errors.AsrException(Engine.Errors.AsrErrorIds.AgentHostNameInvalid, Engine.Errors.AsrErrorKind.InvalidArgument,
                $"'{HostName}' is not a valid agent host name: use 1–64 letters, digits, '.', '_' or '-'.", HostName), HostName));
            return;
        }
        string log = LogPath is null
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state", "asrmodule", $"agent-{HostName}.log")
            : SessionState.Path.GetUnresolvedProviderPathFromPSPath(LogPath);
        if (!ShouldProcess(HostName, $"Start the replication agent on vault '{vault.Location}' (log {log})")) return;
        // The cmdlets live in the module's Dependencies/ folder; the agent in the module root's agent/.
        string here = Path.GetDirectoryName(typeof(StartAsrAgentCommand).Assembly.Location)!;
        string agentDll = new[] { Path.Combine(here, "..", "agent"), Path.Combine(here, "agent") }
            .Select(d => Path.GetFullPath(Path.Combine(d, "AsrModule.Agent.dll"))).FirstOrDefault(File.Exists)
            ?? Path.GetFullPath(Path.Combine(here, "..", "agent", "AsrModule.Agent.dll"));
        var allowed = AllowedFreezeScript?.Select(p => SessionState.Path.GetUnresolvedProviderPathFromPSPath(p)).ToList();
        ForItem(HostName, () =>
            WriteObject(Await(ct => AgentProcessLauncher.StartAsync(vault, agentDll, HostName, PlainText(EncryptionKey), log, TickInterval, TimeSpan.FromSeconds(60), ct, allowed))));
    }
}
