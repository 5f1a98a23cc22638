using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using AsrModule.Engine.Azure;
using AsrModule.Engine.Vault;
using AsrModule.Infrastructure;

namespace AsrModule.Completion;

/// <summary>
/// Base of the module's argument completers: finds the vault the command line will act on (the -Vault the
/// user typed, else the connected vault) and hands it to <see cref="Complete"/>. Completion never throws at
/// the user and never waits long: no vault, an unreadable vault or a slow one yields no results.
/// </summary>
public abstract class VaultCompleter : IArgumentCompleter
{
    /// <summary>How long one completion may read the vault (a blob vault behind a dead network must not hang the prompt).</summary>
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(5);

    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        try
        {
            using var timeout = new CancellationTokenSource(Budget);
            var vault = FindVault(fakeBoundParameters, timeout.Token);
            if (vault is null) return [];
            var request = new CompletionRequest(vault, parameterName, Unquote(wordToComplete), commandAst, fakeBoundParameters, timeout.Token);
            return Complete(request).ToList();
        }
        catch (Exception)
        {
            return []; // completion must never throw at the user
        }
    }

    /// <summary>The candidates for the word typed (<see cref="CompletionRequest.Word"/>, quotes removed).</summary>
    protected abstract IEnumerable<CompletionResult> Complete(CompletionRequest request);

    /// <summary>A result whose text is quoted when PowerShell would not read it as one word.</summary>
    protected static CompletionResult Result(string value, string listItemText, string toolTip) =>
        new(NeedsQuotes(value) ? "'" + value.Replace("'", "''") + "'" : value, listItemText, CompletionResultType.ParameterValue,
            string.IsNullOrWhiteSpace(toolTip) ? value : toolTip);

    protected static bool StartsWith(string candidate, string word) => candidate.StartsWith(word, StringComparison.OrdinalIgnoreCase);

    private static bool NeedsQuotes(string value) =>
        value.Length == 0 || value.Any(c => !(char.IsLetterOrDigit(c) || c is '.' or '_' or '-')) || value[0] == '-';

    private static string Unquote(string? word)
    {
        word ??= "";
        if (word.Length > 0 && word[0] is '\'' or '"') word = word[1..];
        if (word.Length > 0 && word[^1] is '\'' or '"') word = word[..^1];
        return word;
    }

    /// <summary>-Vault as typed (a vault object, a path or a container URL), else the session's connected vault.</summary>
    private static AsrVault? FindVault(IDictionary? fakeBoundParameters, CancellationToken ct)
    {
        object? given = fakeBoundParameters is not null && fakeBoundParameters.Contains("Vault") ? fakeBoundParameters["Vault"] : null;
        if (given is PSObject pso) given = pso.BaseObject;
        return given switch
        {
            null => VaultSession.Default,
            AsrVault v => v,
            VaultArgument { Vault: { } v } => v,
            VaultArgument { Path: { } p } => Open(p, ct),
            string s when s.Length > 0 => Open(s, ct),
            _ => null,
        };
    }

    /// <summary>A vault this session already opened (so an encrypted one has its key), else opened now without a key.</summary>
    private static AsrVault? Open(string location, CancellationToken ct)
    {
        if (BlobVaultConnection.IsContainerUrl(location))
            return VaultSession.Find(VaultStores.NormalizeLocation(location))
                ?? AsrVault.OpenAsync(VaultStores.Open(location), null, null, ct).GetAwaiter().GetResult();
        string? full = ProviderPath(location);
        if (full is null) return null;
        if (VaultSession.Find(full) is { } known) return known;
        return AsrVault.OpenAsync(VaultStores.Open(full), null, null, ct).GetAwaiter().GetResult();
    }

    /// <summary>
    /// An existing directory's full path, relative to the session's current location (PSDrives too), as the
    /// cmdlet will resolve it. Completion runs inside the session's pipeline, so it asks through a nested
    /// command on the current runspace (SessionStateProxy refuses calls while a pipeline runs).
    /// </summary>
    private static string? ProviderPath(string location)
    {
        using var ps = PowerShell.Create(RunspaceMode.CurrentRunspace);
        // Ignore, not SilentlyContinue: a path that does not exist must not land in the user's $Error.
        ps.AddCommand("Microsoft.PowerShell.Management\\Convert-Path").AddParameter("LiteralPath", location).AddParameter("ErrorAction", ActionPreference.Ignore);
        var paths = ps.Invoke<string>();
        return paths.Count == 1 && Directory.Exists(paths[0]) ? System.IO.Path.GetFullPath(paths[0]) : null;
    }
}

/// <summary>What a completer is asked: the vault, the parameter, the word typed (unquoted) and the rest of the command line.</summary>
public sealed record CompletionRequest(AsrVault Vault, string ParameterName, string Word, CommandAst CommandAst,
    IDictionary FakeBoundParameters, CancellationToken CancellationToken)
{
    /// <summary>The value bound to <paramref name="name"/> on the command line so far (unwrapped), or null.</summary>
    public object? Bound(string name)
    {
        object? value = FakeBoundParameters is not null && FakeBoundParameters.Contains(name) ? FakeBoundParameters[name] : null;
        return value is PSObject pso ? pso.BaseObject : value;
    }
}
