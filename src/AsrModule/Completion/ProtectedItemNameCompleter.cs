using System.Management.Automation;

namespace AsrModule.Completion;

/// <summary>Completes protected item names (-Name, -Item, -ProtectedItem) from the vault.</summary>
public sealed class ProtectedItemNameCompleter : VaultCompleter
{
    protected override IEnumerable<CompletionResult> Complete(CompletionRequest request) =>
        request.Vault.GetItemsAsync(request.CancellationToken).GetAwaiter().GetResult()
            .Where(i => StartsWith(i.Name, request.Word))
            .Select(i => Result(i.Name, i.Name, $"{i.Name}: {i.State}, policy '{i.PolicyName}', {i.Disks.Count} disk(s)"));
}
