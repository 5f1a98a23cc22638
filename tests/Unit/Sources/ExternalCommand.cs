using System.Diagnostics;

namespace AsrModule.Tests.Unit.Sources;

/// <summary>Runs the system programs the loop file system tests need (mkfs.*, mount, losetup) and checks they succeeded.</summary>
internal static class ExternalCommand
{
    /// <summary>Runs <paramref name="program"/> and returns its standard output; throws with its output when it fails.</summary>
    public static string Run(string program, params string[] arguments)
    {
        var (exitCode, output) = TryRun(program, arguments);
        if (exitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} failed with exit code {exitCode}: {output}");
        return output;
    }

    /// <summary>Runs <paramref name="program"/>; its exit code and its standard output and error together.</summary>
    public static (int ExitCode, string Output) TryRun(string program, params string[] arguments)
    {
        string path = PathOf(program) ?? throw new InvalidOperationException($"{program} is not installed.");
        var start = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var error = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, (output + error.Result).Trim());
    }

    /// <summary>The full path of an installed program (sbin included: mkfs and losetup live there), or null.</summary>
    public static string? PathOf(string program)
    {
        foreach (string directory in new[] { "/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin" }
                     .Concat((Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)))
        {
            string candidate = Path.Combine(directory, program);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}
