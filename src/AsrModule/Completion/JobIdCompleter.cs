using System.Globalization;
using System.Management.Automation;

namespace AsrModule.Completion;

/// <summary>Completes job ids (-Id of the job cmdlets) from the vault's job records, newest first; the list shows what each job is.</summary>
public sealed class JobIdCompleter : VaultCompleter
{
    protected override IEnumerable<CompletionResult> Complete(CompletionRequest request) =>
        request.Vault.Jobs.ListAsync(request.CancellationToken).GetAwaiter().GetResult()
            .OrderByDescending(j => j.StartTimeUtc)
            .Select(j => (Job: j, Id: j.Id.ToString("D", CultureInfo.InvariantCulture)))
            .Where(j => StartsWith(j.Id, request.Word))
            .Select(j => Result(j.Id, $"{j.Id[..8]} {j.Job.Operation} {j.Job.TargetName} ({j.Job.State})",
                $"{j.Job.Operation} of '{j.Job.TargetName}': {j.Job.State}, started {j.Job.StartTimeUtc.ToLocalTime():yyyy-MM-dd HH:mm:ss}"));
}
