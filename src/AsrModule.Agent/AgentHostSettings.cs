namespace AsrModule.Agent;

/// <summary>How the agent process opens its vault (section "Agent", beside the engine's AgentOptions).</summary>
public sealed class AgentHostSettings
{
    /// <summary>The vault directory.</summary>
    public string? VaultPath { get; set; }
    /// <summary>A file holding the vault's encryption passphrase (mode 0600). ASR_VAULT_KEY in the environment works too.</summary>
    public string? KeyFile { get; set; }
}
