using System.Security.Cryptography;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Items;

namespace AsrModule.Engine.Replication.Consistency;

/// <summary>
/// Which app-consistency (freeze/thaw) scripts this process may run. The item record names a script and
/// the SHA-256 it had when it was set (<see cref="AsrProtectedItem.AppConsistencyScriptSha256"/>), but the
/// record comes from the vault, which anyone who can write to the container can change: a path and hash in
/// it are a request, never a permission. A script runs only when all of these hold, checked each time,
/// right before it runs:
/// <list type="number">
/// <item>this host allows it: the script (symlinks resolved) was pinned in this process by
/// Enable-AsrReplication / Set-AsrProtectedItem -AppConsistencyScript with the same hash, or it is named
/// by — or lies under a directory named by — the host's allow-list: the agent's <c>AllowedFreezeScripts</c>
/// setting (its command line, environment or appsettings.json, never the vault) or the
/// <c>ASR_ALLOWED_FREEZE_SCRIPTS</c> environment variable (':'-separated, like PATH);</item>
/// <item>the file's SHA-256 now equals the hash pinned in the record;</item>
/// <item>the file and its directory are owned by root or by the user this process runs as and are not
/// writable by every user (<see cref="HostFileTrust"/>).</item>
/// </list>
/// Otherwise the script is not run and the point is taken crash-consistent, with a note that says why
/// (the agent writes an <c>AppConsistencyScriptNotAllowed</c> event).
/// </summary>
public static class FreezeScriptTrust
{
    /// <summary>The host's allow-list in the environment of the PowerShell session or the agent.</summary>
    public const string EnvironmentVariable = "ASR_ALLOWED_FREEZE_SCRIPTS";
    /// <summary>Part of every refusal's message (the agent's event type is chosen by it).</summary>
    public const string NotAllowedMarker = "is not allowed on this host";

    private static readonly object Gate = new();
    // real path → SHA-256 (lower-case hex) pinned in this process
    private static readonly Dictionary<string, string> Pinned = new(StringComparer.Ordinal);
    private static readonly List<string> Configured = [];

    /// <summary>
    /// Checks a script that is being set on an item on this host and pins it in this process: returns its
    /// SHA-256 (lower-case hex), to be stored in the item record. Throws AppConsistencyScriptInvalid when
    /// the file fails the ownership rule.
    /// </summary>
    public static string Pin(string path, string itemName)
    {
        if (HostFileTrust.Problem(path, Replication.DiskFileKind.RegularFile) is { } problem)
            throw new AsrException(AsrErrorIds.AppConsistencyScriptInvalid, AsrErrorKind.InvalidArgument,
                $"App-consistency script '{path}' for '{itemName}' cannot be trusted: {problem}. " +
                "Give a script owned by root or by you, not writable by other users, in a directory only root or you can write to.", path);
        string hash = Sha256Of(path);
        lock (Gate) Pinned[Storage.OutputLocation.RealPath(path)] = hash;
        return hash;
    }

    /// <summary>Adds the host's own allow-list (files, or directories whose scripts are all allowed); for the agent's settings.</summary>
    public static void Allow(IEnumerable<string> entries)
    {
        lock (Gate)
            foreach (var entry in entries)
                if (!string.IsNullOrWhiteSpace(entry)) Configured.Add(entry.Trim());
    }

    /// <summary>Splits a ':'-separated list (a ',' separates too), as in PATH.</summary>
    public static IReadOnlyList<string> ParseList(string? value) =>
        string.IsNullOrWhiteSpace(value) ? [] : value.Split([':', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    /// <summary>Null when this process may run the item's script now, else why not (a sentence).</summary>
    public static string? WhyNotAllowed(AsrProtectedItem item)
    {
        string? script = item.AppConsistencyScript;
        if (string.IsNullOrEmpty(script)) return null;
        string NotAllowed(string why) => $"The app-consistency script '{script}' of '{item.Name}' {NotAllowedMarker}: {why}. It was not run.";
        if (!Path.IsPathFullyQualified(script))
            return NotAllowed("the item record names a relative path");
        if (string.IsNullOrEmpty(item.AppConsistencyScriptSha256))
            return NotAllowed("the item record pins no SHA-256 for it; pin it with Set-AsrProtectedItem -AppConsistencyScript on the host that runs it");
        string real = Storage.OutputLocation.RealPath(script);
        string pinnedHash = item.AppConsistencyScriptSha256.ToLowerInvariant();
        bool allowed;
        lock (Gate)
            allowed = (Pinned.TryGetValue(real, out var mine) && mine == pinnedHash)
                      || Configured.Concat(ParseList(Environment.GetEnvironmentVariable(EnvironmentVariable))).Any(e => Covers(e, real));
        if (!allowed)
            return NotAllowed($"it is not in this host's allow-list (the agent's AllowedFreezeScripts setting, Start-AsrAgent -AllowedFreezeScript, " +
                              $"${EnvironmentVariable}) and was not set with this hash in this process");
        if (HostFileTrust.Problem(script, Replication.DiskFileKind.RegularFile) is { } problem)
            return NotAllowed(problem);
        string now;
        try { now = Sha256Of(script); }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { return NotAllowed("it cannot be read: " + ex.Message); }
        if (now != pinnedHash)
            return NotAllowed($"its content changed since it was pinned (SHA-256 {now[..12]}…, pinned {pinnedHash[..Math.Min(12, pinnedHash.Length)]}…); " +
                              "if the change is yours, pin it again with Set-AsrProtectedItem -AppConsistencyScript");
        return null;
    }

    /// <summary>Throws HookFailed (so the cycle goes on crash-consistent) when <see cref="WhyNotAllowed"/> refuses.</summary>
    internal static void EnsureAllowed(AsrProtectedItem item)
    {
        if (WhyNotAllowed(item) is { } why)
            throw new AsrException(AsrErrorIds.HookFailed, AsrErrorKind.SecurityError, why, item.Name);
    }

    public static string Sha256Of(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    /// <summary>An allow-list entry covers a script when it is the script, or a directory the script lies in (both with symlinks resolved).</summary>
    private static bool Covers(string entry, string realScript)
    {
        if (!Path.IsPathFullyQualified(entry)) return false;
        string real = Storage.OutputLocation.RealPath(entry);
        if (real == realScript) return true;
        if (!Directory.Exists(real)) return false;
        string root = real.TrimEnd('/') + "/";
        return realScript.StartsWith(root, StringComparison.Ordinal);
    }
}
