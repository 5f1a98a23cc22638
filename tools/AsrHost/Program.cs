using System.Management.Automation;
using System.Management.Automation.Runspaces;
using AsrModule.Host;

// AsrHost: runs a PowerShell script (or -Command text) in the real PowerShell 7.6 engine hosted
// in-process, with out/AsrModule on PSModulePath so `Import-Module AsrModule` works.
//   AsrHost <script.ps1> [args...]      AsrHost -Command '<text>'
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.Error.WriteLine("usage: AsrHost <script.ps1> [args...] | AsrHost -Command '<powershell>'");
    return 2;
}

string? moduleDir = FindModuleRoot();
if (moduleDir is not null)
    Environment.SetEnvironmentVariable("PSModulePath", moduleDir + Path.PathSeparator + Environment.GetEnvironmentVariable("PSModulePath"));

var host = new ConsoleHost();
var iss = InitialSessionState.CreateDefault2();
using var runspace = RunspaceFactory.CreateRunspace(host, iss);
runspace.Open();
using var ps = PowerShell.Create(runspace);
Console.CancelKeyPress += (_, e) => { e.Cancel = true; ps.BeginStop(null, null); };

if (args[0] == "-Command")
    ps.AddScript(string.Join(' ', args.Skip(1)));
else
{
    ps.AddCommand(Path.GetFullPath(args[0]));
    AddScriptArguments(ps, args.Skip(1).ToArray());
}
ps.Commands.Commands[0].MergeMyResults(PipelineResultTypes.Error, PipelineResultTypes.Output);
ps.AddCommand("Out-Default");
try
{
    ps.Invoke();
}
catch (PipelineStoppedException)
{
    Console.Error.WriteLine("Stopped.");
    return 130;
}
catch (RuntimeException ex)
{
    Console.Error.WriteLine($"{ex.ErrorRecord?.InvocationInfo?.PositionMessage}\n{ex.ErrorRecord?.FullyQualifiedErrorId}: {ex.Message}");
    return 1;
}
return host.ExitCode ?? (ps.HadErrors ? 1 : 0);

// pwsh-style script arguments: "-Name value", "-Name:value", "-Switch", or positional values.
static void AddScriptArguments(PowerShell ps, string[] rest)
{
    for (int i = 0; i < rest.Length; i++)
    {
        string a = rest[i];
        bool isName = a.Length > 1 && a[0] == '-' && char.IsLetter(a[1]);
        if (!isName) { ps.AddArgument(a); continue; }
        int colon = a.IndexOf(':');
        if (colon > 0) { ps.AddParameter(a[1..colon], a[(colon + 1)..]); continue; }
        bool nextIsValue = i + 1 < rest.Length && !(rest[i + 1].Length > 1 && rest[i + 1][0] == '-' && char.IsLetter(rest[i + 1][1]));
        if (nextIsValue) ps.AddParameter(a[1..], rest[++i]);
        else ps.AddParameter(a[1..]);
    }
}

static string? FindModuleRoot()
{
    string? env = Environment.GetEnvironmentVariable("ASRMODULE_OUT");
    if (env is not null && File.Exists(Path.Combine(env, "AsrModule", "AsrModule.psd1"))) return env;
    foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
        for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "out", "AsrModule", "AsrModule.psd1")))
                return Path.Combine(dir.FullName, "out");
    return null;
}
