using System.Collections.Concurrent;
using System.Management.Automation;
using System.Management.Automation.Runspaces;

namespace AsrModule.Tests.Pester.Runner;

/// <summary>
/// Locates the repository pieces the PowerShell-level tests need and runs scripts in fresh
/// runspaces of the PowerShell 7.6 engine hosted in this process.
/// </summary>
public static class HostedPowerShell
{
    public static string RepoRoot { get; } = FindRepoRoot();
    public static string PesterDir => Path.Combine(RepoRoot, "tests", "Pester");
    public static string ModuleOut => Path.Combine(RepoRoot, "out");
    public static string AsrHostDll => Path.Combine(RepoRoot, "tools", "AsrHost", "bin", Configuration, "net10.0", "AsrHost.dll");
    private static string Configuration => AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}") ? "Release" : "Debug";

    static HostedPowerShell()
    {
        // Test scripts use `Import-Module AsrModule`, exactly as under pwsh with the module installed.
        Environment.SetEnvironmentVariable("PSModulePath", ModuleOut + Path.PathSeparator + Environment.GetEnvironmentVariable("PSModulePath"));
        Environment.SetEnvironmentVariable("ASRMODULE_OUT", ModuleOut);
        Environment.SetEnvironmentVariable("ASRHOST_DLL", AsrHostDll);
        Environment.SetEnvironmentVariable("ASR_REPO_ROOT", RepoRoot);
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "AsrModule.sln"))) return dir.FullName;
        throw new InvalidOperationException("AsrModule.sln not found above " + AppContext.BaseDirectory);
    }

    public static Runspace OpenRunspace()
    {
        var runspace = RunspaceFactory.CreateRunspace(InitialSessionState.CreateDefault2());
        runspace.Open();
        return runspace;
    }

    private static readonly ConcurrentDictionary<(string File, TestBackend Backend), Lazy<IReadOnlyList<PesterResult>>> RunCache = new();
    private static readonly ConcurrentDictionary<string, Lazy<IReadOnlyList<PesterResult>>> DiscoverCache = new();

    /// <summary>
    /// Runs a .Tests.ps1 file once per test process and backend (its Its are reported as separate cases).
    /// On <see cref="TestBackend.Blob"/>, Its tagged with one of <see cref="TestBackends.NotOnBlobTags"/> are excluded.
    /// </summary>
    public static IReadOnlyList<PesterResult> RunFile(string file, TestBackend backend) =>
        RunCache.GetOrAdd((file, backend), key => new Lazy<IReadOnlyList<PesterResult>>(() => Invoke(key.File, "Run", key.Backend))).Value;

    /// <summary>The Its of a file with their tags, without running them (once per test process: both backends' cases come from it).</summary>
    public static IReadOnlyList<PesterResult> Discover(string file) =>
        DiscoverCache.GetOrAdd(file, f => new Lazy<IReadOnlyList<PesterResult>>(() => Invoke(f, "Discover", TestBackend.Local))).Value;

    private static IReadOnlyList<PesterResult> Invoke(string file, string mode, TestBackend backend)
    {
        using var runspace = OpenRunspace();
        using var ps = PowerShell.Create(runspace);
        // The backend is a global of this runspace, not an environment variable: test classes run in parallel
        // in this process, each on its own backend.
        string excluded = backend == TestBackend.Blob ? string.Join(", ", TestBackends.NotOnBlobTags.Select(t => $"'{t}'")) : "";
        ps.AddScript($". '{Path.Combine(PesterDir, "Runner", "PesterShim.ps1")}'; $global:AsrPester.Mode = '{mode}'; " +
                     $"$global:AsrPester.ExcludeTag = @({excluded}); $global:AsrTestBackend = '{backend}'").Invoke();
        ps.Commands.Clear();
        ps.AddCommand(Path.Combine(PesterDir, file));
        string? fatal = null;
        try
        {
            ps.Invoke();
        }
        catch (RuntimeException ex)
        {
            fatal = $"{file} failed outside any It: {ex.Message} [{ex.ErrorRecord?.FullyQualifiedErrorId}]\n{ex.ErrorRecord?.InvocationInfo?.PositionMessage}";
        }
        ps.Commands.Clear();
        var results = ps.AddScript("$global:AsrPester.Results").Invoke()
            .Select(o => new PesterResult((string)o.Properties["Name"].Value, (string)o.Properties["Result"].Value, o.Properties["Message"].Value as string,
                TagsOf(o.Properties["Tags"]?.Value), o.Properties["Seconds"]?.Value is double seconds ? seconds : null))
            .ToList();
        if (fatal is not null) results.Add(new PesterResult("(file)", "Failed", fatal, [], null));
        return results;
    }

    private static IReadOnlyList<string> TagsOf(object? value) => (value is PSObject wrapped ? wrapped.BaseObject : value) switch
    {
        null => [],
        string one => [one],
        System.Collections.IEnumerable many => many.Cast<object>().Select(t => t.ToString()!).ToList(),
        var other => [other.ToString()!],
    };
}

/// <param name="Seconds">How long the It took with its BeforeEach/AfterEach (not the block's BeforeAll); null when it did not run.</param>
public sealed record PesterResult(string Name, string Result, string? Message, IReadOnlyList<string> Tags, double? Seconds);
