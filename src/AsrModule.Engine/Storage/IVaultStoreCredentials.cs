namespace AsrModule.Engine.Storage;

/// <summary>
/// A store opened with credentials that a child process (the agent started by Start-AsrAgent) can be given
/// through its environment, so the secret never appears on a command line.
/// </summary>
public interface IVaultStoreCredentials
{
    /// <summary>How the store authenticates (shown on the vault object; never a secret).</summary>
    string Authentication { get; }

    /// <summary>
    /// Puts what a child process needs to open the same store into <paramref name="environment"/> (and removes
    /// variables that would make it authenticate otherwise). Throws an AsrException when the credential cannot
    /// be handed on (a fixed access token expires and an agent cannot renew it).
    /// </summary>
    void ForwardTo(IDictionary<string, string?> environment);
}
