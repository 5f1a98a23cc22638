using System.Security.Cryptography;
using System.Text;

namespace AsrModule.Tests.Unit;

/// <summary>Generated source disks: the PRODUCT.md mix (25% random, 25% text, 50% zeros) at any size.</summary>
internal static class TestDisks
{
    /// <summary>Random (incompressible) content, so every changed block costs its full size in packs.</summary>
    public static void CreateRandom(string path, long size, int seed)
    {
        var rng = new Random(seed);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        var buffer = new byte[1 << 20];
        for (long done = 0; done < size; done += buffer.Length)
        {
            rng.NextBytes(buffer);
            fs.Write(buffer, 0, (int)Math.Min(buffer.Length, size - done));
        }
    }

    public static void Create(string path, long size, int seed)
    {
        var rng = new Random(seed);
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write);
        fs.SetLength(size);
        const int region = 1 << 20;
        byte[] buf = new byte[region];
        var words = "replication vault recovery point failover disk block extent cycle consistent ".Split(' ');
        for (long off = 0; off < size; off += region)
        {
            int len = (int)Math.Min(region, size - off);
            int kind = (int)((off / region) % 4); // random, text, zero, zero
            if (kind >= 2) continue;
            if (kind == 0) rng.NextBytes(buf.AsSpan(0, len));
            else
            {
                var sb = new StringBuilder(len + 32);
                while (sb.Length < len) sb.Append(words[rng.Next(words.Length)]).Append(' ');
                Encoding.ASCII.GetBytes(sb.ToString(0, len), buf);
            }
            fs.Position = off;
            fs.Write(buf, 0, len);
        }
    }

    /// <summary>Overwrites <paramref name="fraction"/> of the 4 KiB blocks at random positions with random data.</summary>
    public static long ScatterWrites(string path, double fraction, int seed)
    {
        var rng = new Random(seed);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        long blocks = fs.Length / 4096;
        long count = Math.Max(1, (long)(blocks * fraction));
        byte[] block = new byte[4096];
        for (long i = 0; i < count; i++)
        {
            rng.NextBytes(block);
            fs.Position = rng.NextInt64(blocks) * 4096;
            fs.Write(block);
        }
        return count * 4096;
    }

    public static string Sha256(string path)
    {
        using var fs = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(fs));
    }
}

/// <summary>A temp folder removed after the test.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "asr-test-" + Guid.NewGuid().ToString("N")[..10]));
    public string Path { get; }
    public string this[string name] => System.IO.Path.Combine(Path, name);
    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (DirectoryNotFoundException) { }
    }
}
