using System.Diagnostics;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;
using Microsoft.Extensions.Logging;

namespace AsrModule.Engine.Replication.Consistency;

/// <summary>
/// An item's app-consistency script, run as "&lt;script&gt; freeze" before the capture and
/// "&lt;script&gt; thaw" after it (the contract of the reference service's Linux pre/post scripts).
/// The script sees ASR_ITEM_NAME, ASR_POINT_SEQUENCE and ASR_DISKS (source paths, ':'-separated).
/// A freeze that fails or times out is thawed at once, so an application is never left frozen.
/// A script this host does not allow (<see cref="FreezeScriptTrust"/>) is never run, for either phase.
/// </summary>
public sealed class FreezeHook
{
    public static readonly TimeSpan FreezeTimeout = TimeSpan.FromSeconds(60);
    public static readonly TimeSpan ThawTimeout = TimeSpan.FromSeconds(60);

    private readonly AsrProtectedItem _item;
    private readonly long _sequence;
    private readonly ILogger _logger;
    public bool IsFrozen { get; private set; }

    public FreezeHook(AsrProtectedItem item, long sequence, ILogger logger)
    {
        _item = item;
        _sequence = sequence;
        _logger = logger;
    }

    /// <summary>Runs the freeze. Throws <see cref="AsrException"/> (HookFailed) after thawing when the freeze fails.</summary>
    public async Task FreezeAsync(CancellationToken cancellationToken)
    {
        // Refused before anything runs: nothing to thaw.
        FreezeScriptTrust.EnsureAllowed(_item);
        IsFrozen = true; // a half-done freeze must be thawed
        try
        {
            await RunAsync("freeze", FreezeTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await ThawAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>For recovery: a freeze another process ran (and died holding) is thawed by this hook.</summary>
    public void MarkFrozen() => IsFrozen = true;

    /// <summary>Runs the thaw if a freeze ran; never throws (a failed thaw is logged: the point itself is fine).</summary>
    public async Task<string?> ThawAsync()
    {
        if (!IsFrozen) return null;
        IsFrozen = false;
        try
        {
            await RunAsync("thaw", ThawTimeout, CancellationToken.None).ConfigureAwait(false);
            return null;
        }
        catch (Exception ex)
        {
            _logger.LogError(ex, "Thaw script of {Item} failed", _item.Name);
            return ex.Message;
        }
    }

    private async Task RunAsync(string phase, TimeSpan timeout, CancellationToken cancellationToken)
    {
        string script = _item.AppConsistencyScript!;
        // Checked again for every phase: the thaw of a freeze left by a killed cycle runs only an allowed script too.
        FreezeScriptTrust.EnsureAllowed(_item);
        if (!File.Exists(script))
            throw new AsrException(AsrErrorIds.HookFailed, AsrErrorKind.ObjectNotFound,
                $"The app-consistency script '{script}' of '{_item.Name}' does not exist.", _item.Name);
        var psi = new ProcessStartInfo(script) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(phase);
        psi.Environment["ASR_ITEM_NAME"] = _item.Name;
        psi.Environment["ASR_POINT_SEQUENCE"] = _sequence.ToString(System.Globalization.CultureInfo.InvariantCulture);
        psi.Environment["ASR_DISKS"] = string.Join(':', _item.Disks.Select(d => d.SourcePath));
        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new AsrException(AsrErrorIds.HookFailed, AsrErrorKind.InvalidOperation,
                $"The app-consistency script '{script}' of '{_item.Name}' could not be started ({phase}): {ex.Message}. It must be executable.", _item.Name, ex);
        }
        var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
        var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timer.CancelAfter(timeout);
        try
        {
            await process.WaitForExitAsync(timer.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            cancellationToken.ThrowIfCancellationRequested();
            throw new AsrException(AsrErrorIds.HookFailed, AsrErrorKind.OperationTimeout,
                $"The app-consistency script '{script}' of '{_item.Name}' did not finish '{phase}' within {timeout.TotalSeconds:0} s.", _item.Name);
        }
        // A script may leave a child running (a database session holding a lock until thaw) that keeps the
        // output pipes open: once the script itself has exited, take what has arrived and go on.
        var grace = Task.Delay(TimeSpan.FromSeconds(1));
        string output = (await Task.WhenAny(stdout, grace).ConfigureAwait(false) == stdout ? stdout.Result : "").Trim();
        string errors = (await Task.WhenAny(stderr, grace).ConfigureAwait(false) == stderr ? stderr.Result : "").Trim();
        if (process.ExitCode != 0)
            throw new AsrException(AsrErrorIds.HookFailed, AsrErrorKind.InvalidOperation,
                $"The app-consistency script '{script}' of '{_item.Name}' failed on '{phase}' (exit code {process.ExitCode}){(errors.Length > 0 ? ": " + errors : "")}.", _item.Name);
        _logger.LogInformation("App-consistency script of {Item}: {Phase} done{Output}", _item.Name, phase, output.Length > 0 ? ": " + output : "");
    }
}
