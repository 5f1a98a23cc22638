using System.Management.Automation;

namespace AsrModule.Completion;

/// <summary>Completes replication policy names (-Policy, and -Name of the policy cmdlets) from the vault.</summary>
public sealed class PolicyNameCompleter : VaultCompleter
{
    protected override IEnumerable<CompletionResult> Complete(CompletionRequest request) =>
        request.Vault.GetPoliciesAsync(request.CancellationToken).GetAwaiter().GetResult()
            .Where(p => StartsWith(p.Name, request.Word))
            .Select(p => Result(p.Name, p.Name,
                $"{p.Name}: keeps points {p.RecoveryPointRetentionHours} h, crash-consistent every {p.CrashConsistentFrequencyMinutes} min"));
}
