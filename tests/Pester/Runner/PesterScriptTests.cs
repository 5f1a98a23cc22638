using Xunit.Abstractions;

namespace AsrModule.Tests.Pester.Runner;

/// <summary>
/// One xunit case per Pester `It` in tests/Pester/*.Tests.ps1. Each file runs once (in a fresh
/// runspace of the hosted engine); each case reports its own It.
/// </summary>
public sealed class PesterScriptTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> Cases()
    {
        foreach (var file in Directory.GetFiles(HostedPowerShell.PesterDir, "*.Tests.ps1").Select(Path.GetFileName).Order())
        {
            var discovered = HostedPowerShell.Discover(file!);
            if (discovered.Count == 0) yield return [file!, "(file)"];
            foreach (var r in discovered) yield return [file!, r.Name];
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void It(string file, string test)
    {
        var results = HostedPowerShell.RunFile(file);
        var fatal = results.FirstOrDefault(r => r.Name == "(file)");
        Assert.True(fatal is null, fatal?.Message);
        var mine = results.Where(r => r.Name == test).ToList();
        Assert.True(mine.Count > 0, $"'{test}' did not run. Ran: {string.Join("; ", results.Select(r => r.Name))}");
        foreach (var r in mine)
        {
            if (r.Result == "Skipped") output.WriteLine("skipped: " + test);
            Assert.True(r.Result is "Passed" or "Skipped", $"{test}\n{r.Message}");
        }
        // AfterAll failures of the enclosing block are reported on every case of that file.
        var teardown = results.FirstOrDefault(r => r.Name.EndsWith("> AfterAll", StringComparison.Ordinal) && test.StartsWith(r.Name[..^"> AfterAll".Length], StringComparison.Ordinal));
        Assert.True(teardown is null, teardown?.Message);
    }
}
