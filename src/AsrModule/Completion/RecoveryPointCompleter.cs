using System.Management.Automation;
using System.Management.Automation.Language;
using AsrModule.Engine.Items;
using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Completion;

/// <summary>
/// Completes a recovery point of the item on the command line: Latest, LatestProcessed and LatestAppConsistent
/// (for -RecoveryPoint) and the item's point sequence numbers, newest first. The item is the one named by
/// -Item/-Name, a bound -InputObject, or a `Get-AsrProtectedItem name |` before the command in the pipeline.
/// </summary>
public sealed class RecoveryPointCompleter : VaultCompleter
{
    private static readonly (RecoveryPointKind Kind, string ToolTip)[] Keywords =
    [
        (RecoveryPointKind.Latest, "Latest: replicate now, then use the point that cycle publishes (least data loss)"),
        (RecoveryPointKind.LatestProcessed, "LatestProcessed: the newest point already in the vault (no cycle first)"),
        (RecoveryPointKind.LatestAppConsistent, "LatestAppConsistent: the newest app-consistent point"),
    ];

    protected override IEnumerable<CompletionResult> Complete(CompletionRequest request)
    {
        var results = new List<CompletionResult>();
        // -Sequence (Get-AsrRecoveryPoint) takes a number only; -RecoveryPoint also takes the keywords.
        if (!string.Equals(request.ParameterName, "Sequence", StringComparison.OrdinalIgnoreCase))
            foreach (var (kind, toolTip) in Keywords)
                if (StartsWith(kind.ToString(), request.Word)) results.Add(Result(kind.ToString(), kind.ToString(), toolTip));
        string? itemName = ItemName(request);
        if (itemName is null) return results;
        var vault = request.Vault;
        List<AsrRecoveryPoint> points;
        try
        {
            var item = vault.GetItemAsync(itemName, request.CancellationToken).GetAwaiter().GetResult();
            points = vault.GetPointsAsync(item, request.CancellationToken).GetAwaiter().GetResult();
        }
        catch (Exception)
        {
            return results; // an unknown item (still being typed) has no points; the keywords still complete
        }
        foreach (var p in points.OrderByDescending(p => p.Sequence))
        {
            string sequence = p.Sequence.ToString(System.Globalization.CultureInfo.InvariantCulture);
            if (!StartsWith(sequence, request.Word)) continue;
            results.Add(Result(sequence, $"{sequence} ({p.RecoveryPointTimeUtc.ToLocalTime():yyyy-MM-dd HH:mm:ss}, {p.Consistency})",
                $"Point {sequence} of '{p.ItemName}': {p.RecoveryPointTimeUtc:yyyy-MM-dd HH:mm:ss} UTC, {p.Consistency}"));
        }
        return results;
    }

    private static string? ItemName(CompletionRequest request)
    {
        foreach (var name in new[] { "Item", "Name" })
            if (request.Bound(name) is string s && s.Length > 0) return s;
        if (request.Bound("InputObject") is AsrProtectedItem bound) return bound.Name;
        // `Get-AsrProtectedItem web01 | Start-AsrTestFailover -RecoveryPoint <tab>`: the item comes from the pipeline.
        if (request.CommandAst.Parent is PipelineAst pipeline)
        {
            int at = pipeline.PipelineElements.IndexOf(request.CommandAst);
            if (at > 0 && pipeline.PipelineElements[at - 1] is CommandAst previous &&
                string.Equals(previous.GetCommandName(), "Get-AsrProtectedItem", StringComparison.OrdinalIgnoreCase))
            {
                var binding = StaticParameterBinder.BindCommand(previous, resolve: true);
                if (binding.BoundParameters.TryGetValue("Name", out var name) && name.ConstantValue is string n && !WildcardPattern.ContainsWildcardCharacters(n))
                    return n;
            }
        }
        return null;
    }
}
