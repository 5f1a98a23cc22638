using System.Reflection;
using AsrModule.Tests.Shared;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace AsrModule.Tests.Pester.Runner;

/// <summary>
/// One xunit case per Pester `It` in tests/Pester/*.Tests.ps1 and vault backend: each It runs on a local
/// directory vault and on a blob container vault in a real Azurite (except Its tagged LocalOnly or OwnVaults). Each file
/// runs once per backend (in a fresh runspace of the hosted engine); each case reports its own It.
/// </summary>
public sealed class PesterScriptTests(ITestOutputHelper output)
{
    public static IEnumerable<object[]> LocalCases() => Cases(TestBackend.Local);

    public static IEnumerable<object[]> BlobCases() => Cases(TestBackend.Blob);

    private static IEnumerable<object[]> Cases(TestBackend backend)
    {
        foreach (var file in Directory.GetFiles(HostedPowerShell.PesterDir, "*.Tests.ps1").Select(Path.GetFileName).Order())
        {
            var discovered = HostedPowerShell.Discover(file!);
            if (discovered.Count == 0) yield return [file!, "(file)", backend.ToString()];
            foreach (var r in discovered)
            {
                if (backend == TestBackend.Blob && r.Tags.Intersect(TestBackends.NotOnBlobTags, StringComparer.OrdinalIgnoreCase).Any()) continue;
                yield return [file!, r.Name, backend.ToString()];
            }
        }
    }

    [Theory]
    [MemberData(nameof(LocalCases))]
    [BlobMemberData(nameof(BlobCases))]
    public void It(string file, string test, string backend)
    {
        var vaultBackend = Enum.Parse<TestBackend>(backend);
        if (vaultBackend == TestBackend.Blob) TestBackends.EnsureBlobEndpoint();
        var results = HostedPowerShell.RunFile(file, vaultBackend);
        var fatal = results.FirstOrDefault(r => r.Name == "(file)");
        Assert.True(fatal is null, fatal?.Message);
        var mine = results.Where(r => r.Name == test).ToList();
        Assert.True(mine.Count > 0, $"'{test}' did not run. Ran: {string.Join("; ", results.Select(r => r.Name))}");
        foreach (var r in mine)
        {
            if (r.Result == "Skipped") output.WriteLine("skipped: " + test);
            else if (r.Seconds is { } seconds) output.WriteLine($"{r.Result} on the {backend} backend in {seconds:0.0} s");
            Assert.True(r.Result is "Passed" or "Skipped", $"{test}\n{r.Message}");
        }
        // AfterAll failures of the enclosing block are reported on every case of that file.
        var teardown = results.FirstOrDefault(r => r.Name.EndsWith("> AfterAll", StringComparison.Ordinal) && test.StartsWith(r.Name[..^"> AfterAll".Length], StringComparison.Ordinal));
        Assert.True(teardown is null, teardown?.Message);
    }
}

/// <summary>
/// The Blob rows: skipped with the reason when azurite-blob is not installed, except under CI=true, where
/// CI installs it and a missing Azurite must fail them (as RequiresAzurite does for the unit tests).
/// </summary>
[DataDiscoverer("Xunit.Sdk.MemberDataDiscoverer", "xunit.core")]
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class BlobMemberDataAttribute : MemberDataAttributeBase
{
    public BlobMemberDataAttribute(string memberName) : base(memberName, [])
    {
        if (!AzuriteProcess.ShouldRun) Skip = AzuriteProcess.SkipReason;
    }

    protected override object[] ConvertDataItem(MethodInfo testMethod, object item) =>
        item as object[] ?? throw new ArgumentException($"{MemberName} must yield object[] rows for {testMethod.Name}.");
}
