using System.Management.Automation;
using System.Management.Automation.Language;
using System.Management.Automation.Runspaces;
using System.Security.Cryptography;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Failover.Boot;
using AsrModule.Engine.Plans;

namespace AsrModule.Plans;

/// <summary>
/// A plan file evaluated in its own runspace (with the module imported), which then runs the plan's
/// steps: their script blocks belong to that runspace. Lives as long as the plan's job runs.
/// </summary>
internal sealed class PlanSession : IPlanStepRunner, IDisposable
{
    private readonly Runspace _runspace;
    private readonly object _gate = new();

    private PlanSession(Runspace runspace, PlanDefinition definition, string path, string sha256)
    {
        _runspace = runspace;
        Definition = definition;
        Path = path;
        Sha256 = sha256;
    }

    public PlanDefinition Definition { get; }
    public string Path { get; }
    public string Sha256 { get; }

    public static string HashFile(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>Parses and evaluates a plan file; every problem is a RecoveryPlanInvalid error before anything runs.</summary>
    public static PlanSession Load(string path, string moduleManifest)
    {
        if (!File.Exists(path))
            throw Invalid(path, $"the plan file '{path}' does not exist");
        Parser.ParseFile(path, out _, out var parseErrors);
        if (parseErrors.Length > 0)
            throw Invalid(path, "syntax errors: " + string.Join("; ", parseErrors.Select(e => $"line {e.Extent.StartLineNumber}, column {e.Extent.StartColumnNumber}: {e.Message}")));
        var runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
        runspace.Open();
        try
        {
            using var ps = PowerShell.Create();
            ps.Runspace = runspace;
            ps.AddScript("param($m) $ErrorActionPreference = 'Stop'; Import-Module $m").AddArgument(moduleManifest).Invoke();
            ps.Commands.Clear();
            ps.AddCommand(path);
            var results = ps.Invoke();
            var plans = results.Select(r => r?.BaseObject).OfType<PlanDefinition>().ToList();
            if (plans.Count != 1)
                throw Invalid(path, $"the script must call AsrRecoveryPlan exactly once (it produced {plans.Count} plan(s))");
            return new PlanSession(runspace, plans[0], path, HashFile(path));
        }
        catch (RuntimeException ex)
        {
            runspace.Dispose();
            throw Invalid(path, $"the script failed: {ex.Message}");
        }
        catch
        {
            runspace.Dispose();
            throw;
        }
    }

    private static AsrException Invalid(string path, string why) =>
        new(AsrErrorIds.RecoveryPlanInvalid, AsrErrorKind.InvalidArgument, $"Recovery plan '{path}' is not valid; nothing was started: {why}.", path);

    private bool _abandoned;

    public Task<string?> RunStepAsync(int stepId, bool before, PlanContext context, CancellationToken cancellationToken) => Task.Run(() =>
    {
        var (b, a) = Definition.StepScripts[stepId];
        var script = before ? b : a;
        if (script is null) return (string?)null;
        var step = Definition.Plan.Elements.OfType<PlanStep>().Concat(Definition.Plan.Groups.SelectMany(g => g.Steps)).First(s => s.Id == stepId);
        lock (_gate) // one step at a time in the plan's runspace
        {
            if (_abandoned)
                throw new InvalidOperationException("The plan's runspace was abandoned after a step that could not be stopped; restart the run.");
            using var ps = PowerShell.Create();
            ps.Runspace = _runspace;
            ps.AddScript("param($__step, $__ctx) $ErrorActionPreference = 'Stop'; & $__step $__ctx").AddArgument(script).AddArgument(context);
            var pending = ps.BeginInvoke();
            int signalled = WaitHandle.WaitAny([pending.AsyncWaitHandle, cancellationToken.WaitHandle], TimeSpan.FromSeconds(step.TimeoutSeconds));
            if (signalled != 0)
            {
                // Timed out or cancelled: stop the step; a step stuck in a blocking call may not stop,
                // then the runspace is abandoned rather than the job hanging.
                ps.BeginStop(null, null);
                if (!pending.AsyncWaitHandle.WaitOne(TimeSpan.FromSeconds(10))) _abandoned = true;
                cancellationToken.ThrowIfCancellationRequested();
                throw new TimeoutException($"Step '{step.Name}' did not finish within {step.TimeoutSeconds} s and was stopped.");
            }
            var output = ps.EndInvoke(pending);
            if (ps.HadErrors && ps.Streams.Error.Count > 0)
                throw new InvalidOperationException(ps.Streams.Error[0].ToString());
            return string.Join(Environment.NewLine, output.Where(o => o is not null).Select(o => o.ToString()));
        }
    }, cancellationToken);

    /// <summary>Runs an AsrBootCheck -Check block in the plan's runspace (one script at a time, like steps).</summary>
    public Task<BootCheckOutcome> RunBootCheckAsync(int bootId, BootCheckInput input, CancellationToken cancellationToken) => Task.Run(() =>
    {
        var check = Definition.BootChecks[bootId];
        lock (_gate)
        {
            if (_abandoned)
                throw new InvalidOperationException("The plan's runspace was abandoned after a step that could not be stopped; restart the run.");
            using var ps = PowerShell.Create();
            ps.Runspace = _runspace;
            return Drills.BootCheckScript.Invoke(ps, check, input, cancellationToken);
        }
    }, cancellationToken);

    public void Dispose() => _runspace.Dispose();
}
