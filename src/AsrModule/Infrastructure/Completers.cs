using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;

namespace AsrModule.Infrastructure;

/// <summary>Tab completion of names from the connected vault.</summary>
public abstract class VaultNameCompleter : IArgumentCompleter
{
    protected abstract IEnumerable<string> Names(Engine.Vault.AsrVault vault);

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var vault = VaultSession.Default;
        if (vault is null) return [];
        try
        {
            var pattern = new WildcardPattern(wordToComplete + "*", WildcardOptions.IgnoreCase);
            return Names(vault).Where(pattern.IsMatch).Select(n => new CompletionResult(n)).ToList();
        }
        catch (Exception)
        {
            return []; // completion must never throw at the user
        }
    }
}

public sealed class PolicyNameCompleter : VaultNameCompleter
{
    protected override IEnumerable<string> Names(Engine.Vault.AsrVault vault) =>
        vault.GetPoliciesAsync(default).GetAwaiter().GetResult().Select(p => p.Name);
}

public sealed class ProtectedItemNameCompleter : VaultNameCompleter
{
    protected override IEnumerable<string> Names(Engine.Vault.AsrVault vault) =>
        vault.GetItemsAsync(default).GetAwaiter().GetResult().Select(i => i.Name);
}
