using System.Collections.ObjectModel;
using System.Management.Automation;
using System.Management.Automation.Runspaces;
using AsrModule.Engine.Failover.Boot;

namespace AsrModule.Drills;

/// <summary>
/// A drill's check written as a script block: it gets a <see cref="BootCheckInput"/> (console log, forwarded ports,
/// screenshot) as its one argument and passes when it throws nothing and its last output is true in PowerShell's sense
/// ($true, a non-empty string, a non-zero number). Its output (at most 1,000 characters) is the check's message.
/// </summary>
internal static class BootCheckScript
{
    private const int MaximumMessage = 1000;

    /// <summary>Runs in the caller's session, on its pipeline thread (through <paramref name="onPipelineThread"/>).</summary>
    public static BootCheck InSession(ScriptBlock check, Func<Func<BootCheckOutcome>, CancellationToken, Task<BootCheckOutcome>> onPipelineThread) =>
        (input, ct) => onPipelineThread(() =>
        {
            try
            {
                return Judge(check.Invoke(input));
            }
            catch (RuntimeException ex)
            {
                return new BootCheckOutcome(false, "the check failed: " + ex.Message);
            }
        }, ct);

    /// <summary>
    /// Runs in a runspace of its own with the module imported (-AsJob: the caller's pipeline thread is not waiting): the
    /// script block's text is evaluated there, so it sees its argument and the module, not the caller's variables.
    /// Cancelling the job stops it.
    /// </summary>
    public static BootCheck InOwnRunspace(ScriptBlock check, string moduleManifest) => (input, ct) => Task.Run(() =>
    {
        using var runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
        runspace.Open();
        using var ps = PowerShell.Create();
        ps.Runspace = runspace;
        // Re-created from its text inside the new runspace: the caller's script block belongs to the caller's runspace.
        var output = ps.AddScript("param($m, $text) Import-Module $m; [scriptblock]::Create($text)").AddArgument(moduleManifest).AddArgument(check.ToString()).Invoke();
        return Invoke(ps, (ScriptBlock)output[^1].BaseObject, input, ct);
    }, ct);

    /// <summary>
    /// Runs <paramref name="check"/>, a script block of <paramref name="ps"/>'s runspace, with its input, and judges what it
    /// returned; an error or exception from it is its failure. Cancelling stops it (and throws).
    /// </summary>
    public static BootCheckOutcome Invoke(PowerShell ps, ScriptBlock check, BootCheckInput input, CancellationToken ct)
    {
        ps.Commands.Clear();
        ps.AddScript("param($__check, $__input) $ErrorActionPreference = 'Stop'; & $__check $__input").AddArgument(check).AddArgument(input);
        using var stop = ct.Register(() => ps.BeginStop(null, null));
        try
        {
            var output = ps.Invoke();
            ct.ThrowIfCancellationRequested();
            if (ps.HadErrors && ps.Streams.Error.Count > 0) return new BootCheckOutcome(false, "the check failed: " + ps.Streams.Error[0]);
            return Judge(output);
        }
        catch (RuntimeException ex) when (!ct.IsCancellationRequested)
        {
            return new BootCheckOutcome(false, "the check failed: " + ex.Message);
        }
    }

    private static BootCheckOutcome Judge(Collection<PSObject> output)
    {
        var items = output.Where(o => o is not null).ToList();
        string text = string.Join("; ", items.Select(o => o.ToString()));
        if (text.Length > MaximumMessage) text = text[..MaximumMessage] + "...";
        if (items.Count == 0) return new BootCheckOutcome(false, "the check returned nothing (return $true when the machine is right)");
        bool passed = LanguagePrimitives.IsTrue(items[^1]);
        return new BootCheckOutcome(passed, passed ? text : $"the check returned {text}");
    }
}
