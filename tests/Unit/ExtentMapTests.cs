using AsrModule.Engine.RecoveryPoints;

namespace AsrModule.Tests.Unit;

public class ExtentMapTests
{
    /// <summary>Overlays random deltas and compares every block with a naive per-block model.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void RandomOverlays_MatchANaivePerBlockModel(int seed)
    {
        var rng = new Random(seed);
        const int blocks = 2000;
        var model = new (long Seq, int Extent, int Offset)?[blocks];
        var map = new ExtentMap();
        for (long seq = 1; seq <= 12; seq++)
        {
            var delta = new List<ExtentRecord>();
            long b = rng.Next(0, 20);
            while (b < blocks)
            {
                int count = (int)Math.Min(rng.Next(1, 64), blocks - b);
                bool zero = rng.Next(6) == 0;
                delta.Add(new ExtentRecord(b, count, zero ? ExtentFlags.Zero : ExtentFlags.None, 0, b * 10 + seq, 1, 0));
                b += count + rng.Next(0, 150);
            }
            map.Overlay(seq, delta, (long)blocks * 4096, 4096);
            foreach (var d in delta)
                for (int i = 0; i < d.BlockCount; i++)
                    model[d.FirstBlock + i] = (d.Flags & ExtentFlags.Zero) != 0 ? null : (seq, (int)d.PackOffset, i);
        }
        var actual = new (long Seq, int Extent, int Offset)?[blocks];
        long previousEnd = 0;
        foreach (var s in map.Segments)
        {
            Assert.True(s.FirstBlock >= previousEnd, "segments overlap or are out of order");
            previousEnd = s.EndBlock;
            var ext = map.Extents[s.ExtentRef];
            for (int i = 0; i < s.BlockCount; i++)
                actual[s.FirstBlock + i] = (ext.Sequence, (int)ext.Record.PackOffset, s.Skip + i);
        }
        Assert.Equal(model, actual);
    }
}
