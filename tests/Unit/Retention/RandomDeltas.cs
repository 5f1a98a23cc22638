using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Tests.Unit.Retention;

/// <summary>Random chains of extent deltas (stored runs and trims, gaps between them) for the map tests.</summary>
internal static class RandomDeltas
{
    /// <summary><paramref name="links"/> deltas over a disk of <paramref name="blocks"/> blocks, sequences 1, 2, ...</summary>
    public static List<List<ExtentRecord>> Of(int seed, int blocks, int links)
    {
        var rng = new Random(seed);
        var deltas = new List<List<ExtentRecord>>();
        for (long seq = 1; seq <= links; seq++)
        {
            var delta = new List<ExtentRecord>();
            long b = rng.Next(0, 20);
            while (b < blocks)
            {
                int count = (int)Math.Min(rng.Next(1, 64), blocks - b);
                var flags = rng.Next(6) == 0 ? ExtentFlags.Zero : ExtentFlags.Compressed;
                delta.Add(new ExtentRecord(b, count, flags, rng.Next(3), b * 10 + seq, rng.Next(1, 1 << 18), (ulong)rng.NextInt64()));
                b += count + rng.Next(0, 150);
            }
            deltas.Add(delta);
        }
        return deltas;
    }
}
