using System.Management.Automation;
using System.Security.Cryptography;

namespace AsrModule.Tests.Pester.Runner;

/// <summary>
/// Ctrl+C in a console is PowerShell.Stop() → StopProcessing on the running cmdlet. A foreground
/// cycle must then cancel its I/O, record the job as Cancelled and leave the vault as it was, on a
/// local and on a blob vault (like the Pester files, once per backend).
/// </summary>
public sealed class StopProcessingTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "asr-stop-" + Guid.NewGuid().ToString("N")[..8]);
    private string? _vault;

    public StopProcessingTests()
    {
        Directory.CreateDirectory(_dir);
        _ = HostedPowerShell.RepoRoot; // sets PSModulePath
    }

    private static string Sha256(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(fs));
    }

    private static void WriteRandom(string path, long size, int seed)
    {
        var rng = new Random(seed);
        var buf = new byte[1 << 20];
        using var fs = new FileStream(path, FileMode.Create);
        for (long off = 0; off < size; off += buf.Length) { rng.NextBytes(buf); fs.Write(buf); }
    }

    public static IEnumerable<object[]> Local() => [[nameof(TestBackend.Local)]];

    public static IEnumerable<object[]> Blob() => [[nameof(TestBackend.Blob)]];

    [Theory]
    [MemberData(nameof(Local))]
    [BlobMemberData(nameof(Blob))]
    public void CtrlC_DuringAForegroundCycle_CancelsTheJob_AndPublishesNothing(string backend)
    {
        string disk = Path.Combine(_dir, "d.img");
        string vault = _vault = TestBackends.NewVaultLocation(Enum.Parse<TestBackend>(backend), _dir);
        WriteRandom(disk, 384L << 20, 1);
        using var runspace = HostedPowerShell.OpenRunspace();
        using (var setup = PowerShell.Create(runspace))
        {
            setup.AddScript($"Import-Module AsrModule; New-AsrVault -Path '{vault}' | Connect-AsrVault; New-AsrPolicy p | Out-Null; Enable-AsrReplication -Name m -Disk '{disk}' -Policy p | Out-Null").Invoke();
            Assert.False(setup.HadErrors, string.Join("\n", setup.Streams.Error));
        }
        WriteRandom(disk, 384L << 20, 2);
        string expected = Sha256(disk);

        using var ps = PowerShell.Create(runspace);
        ps.AddScript("Get-AsrProtectedItem m | Invoke-AsrReplication");
        int progressReports = 0;
        ps.Streams.Progress.DataAdded += (_, _) => Interlocked.Increment(ref progressReports);
        var async = ps.BeginInvoke();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Volatile.Read(ref progressReports) < 3 && !async.IsCompleted && DateTime.UtcNow < deadline) Thread.Sleep(5);
        Assert.False(async.IsCompleted, "the cycle finished before it could be stopped; make the disk larger");
        ps.Stop();
        Assert.Throws<PipelineStoppedException>(() => ps.EndInvoke(async));

        using var check = PowerShell.Create(runspace);
        var results = check.AddScript(
            "(Get-AsrJob -TargetName m -Operation ReplicationCycle).State; @(Get-AsrRecoveryPoint -Item m).Count; " +
            $"(Get-AsrProtectedItem m | Invoke-AsrReplication).State; (Get-AsrRecoveryPoint -Item m -Latest | Export-AsrRecoveryPoint -Destination '{Path.Combine(_dir, "r")}').State")
            .Invoke().Select(o => o.ToString()).ToList();
        Assert.False(check.HadErrors, string.Join("\n", check.Streams.Error));
        Assert.Equal(["Cancelled", "1", "Succeeded", "Succeeded"], results);
        Assert.Equal(expected, Sha256(Path.Combine(_dir, "r", "d.img")));
    }

    public void Dispose()
    {
        if (_vault is not null) TestBackends.DeleteVault(_vault);
        Directory.Delete(_dir, recursive: true);
    }
}
