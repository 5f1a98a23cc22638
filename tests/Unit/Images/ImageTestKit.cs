using System.Diagnostics;
using System.Security.Cryptography;
using AsrModule.Engine.Replication.Sources;
using AsrModule.Engine.Replication.Sources.Images;
using AsrModule.Engine.Replication.Tracking;

namespace AsrModule.Tests.Unit.Images;

/// <summary>Disks with known content, and the QEMU commands the image tests prepare them with.</summary>
internal static class ImageTestKit
{
    public const long DiskSize = 128L << 20;

    /// <summary>Each test's own limit: every operation here takes well under a second, so a hang fails fast.</summary>
    public static CancellationToken Timeout() => new CancellationTokenSource(TimeSpan.FromSeconds(120)).Token;

    /// <summary>
    /// A raw disk of <paramref name="size"/> bytes (a sparse file), zero except for random data in scattered regions:
    /// aligned and unaligned, small and large, at the very start and end. Returns the data regions.
    /// </summary>
    public static IReadOnlyList<ByteRange> CreateScatteredRaw(string path, long size, int seed)
    {
        // Placed by fractions of the size (64 to 256 MiB disks), each region well apart from the others.
        long At(double fraction) => (long)(size * fraction) / 4096 * 4096;
        var regions = new List<ByteRange>
        {
            new(0, 64 << 10),
            new(At(0.04) + 123, 100_000),
            new(At(0.31), 1 << 20),
            new(At(0.6) + 4096, 8192),
            new(size - 4096, 4096),
        };
        var rng = new Random(seed);
        using var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        fs.SetLength(size);
        foreach (var region in regions)
        {
            var data = new byte[region.Length];
            rng.NextBytes(data);
            fs.Position = region.Offset;
            fs.Write(data);
        }
        return regions;
    }

    /// <summary>qemu-img with <paramref name="arguments"/>, its stdout returned (a failure throws with its stderr).</summary>
    public static Task<string> QemuImgAsync(params string[] arguments) => QemuTools.RunAsync(QemuTools.QemuImg, arguments, TimeSpan.FromSeconds(120), Timeout());

    /// <summary>qemu-io with <paramref name="arguments"/>.</summary>
    public static Task<string> QemuIoAsync(params string[] arguments) => QemuTools.RunAsync("qemu-io", arguments, TimeSpan.FromSeconds(120), Timeout());

    /// <summary>SHA-256 of the whole disk read through <paramref name="disk"/>.</summary>
    public static async Task<string> Sha256Async(ISourceDisk disk)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[4 << 20];
        for (long at = 0; at < disk.Size; at += buffer.Length)
        {
            var chunk = buffer.AsMemory(0, (int)Math.Min(buffer.Length, disk.Size - at));
            await disk.ReadAsync(at, chunk, Timeout());
            hash.AppendData(chunk.Span);
        }
        return Convert.ToHexString(hash.GetHashAndReset());
    }

    /// <summary>
    /// SHA-256 of the disk as a copy that reads only <paramref name="ranges"/> and takes everything else as zeros
    /// would see it: equal to the whole disk's exactly when the ranges hold all of its data.
    /// </summary>
    public static async Task<string> Sha256OfRangesAsync(ISourceDisk disk, IReadOnlyList<ByteRange> ranges)
    {
        var copy = new byte[disk.Size];
        foreach (var range in ranges)
            await disk.ReadAsync(range.Offset, copy.AsMemory(checked((int)range.Offset), checked((int)range.Length)), Timeout());
        return Convert.ToHexString(SHA256.HashData(copy));
    }

    public static void AssertSortedAndDisjoint(IReadOnlyList<ByteRange> ranges, long size)
    {
        for (int i = 0; i < ranges.Count; i++)
        {
            Assert.True(ranges[i].Length > 0, $"empty range at {ranges[i].Offset}");
            Assert.True(ranges[i].Offset >= 0 && ranges[i].End <= size, $"range {ranges[i]} outside the disk");
            if (i > 0) Assert.True(ranges[i - 1].End < ranges[i].Offset, $"ranges {ranges[i - 1]} and {ranges[i]} overlap or touch (not merged)");
        }
    }

    /// <summary>A raw file made from the image by qemu-img convert (independent of the code under test).</summary>
    public static async Task<byte[]> ToRawBytesAsync(string image, DiskImageFormat format, string scratch)
    {
        await QemuImgAsync("convert", "-f", DiskImageFormats.QemuName(format), "-O", "raw", image, scratch);
        try { return await File.ReadAllBytesAsync(scratch); }
        finally { File.Delete(scratch); }
    }
}

/// <summary>
/// A qemu-nbd the test starts itself, on a unix socket: a read-write one stands in for a running VM that holds
/// the image (QEMU's image lock), a read-only one is an NBD source to convert from.
/// </summary>
internal sealed class TestQemuNbd : IAsyncDisposable
{
    private readonly Process _process;

    private TestQemuNbd(Process process, string socketPath)
    {
        _process = process;
        SocketPath = socketPath;
    }

    public string SocketPath { get; }
    public string Uri => $"nbd+unix:///?socket={SocketPath}";

    public static async Task<TestQemuNbd> StartAsync(string socketPath, params string[] arguments)
    {
        var psi = new ProcessStartInfo(NbdServerTests.RequiresToolAttribute.PathOf("qemu-nbd")!)
        {
            UseShellExecute = false,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        foreach (var a in arguments) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add($"--socket={socketPath}");
        psi.ArgumentList.Add("--persistent");
        var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while (!File.Exists(socketPath))
        {
            if (process.HasExited) throw new InvalidOperationException($"qemu-nbd exited with {process.ExitCode}: {await stderr}");
            if (sw.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException("qemu-nbd did not create its socket.");
            await Task.Delay(10);
        }
        // The socket exists from bind(); listen() follows at once, and clients retry a refused connection anyway.
        await Task.Delay(50);
        return new TestQemuNbd(process, socketPath);
    }

    /// <summary>SIGKILL: what a crash of the QEMU holding the image does.</summary>
    public async Task CrashAsync()
    {
        _process.Kill();
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // SIGTERM lets qemu-nbd close the image cleanly (bitmaps stored, not left in use).
            _ = Kill(_process.Id, 15);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try { await _process.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { _process.Kill(); }
        }
        _process.Dispose();
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);
}
