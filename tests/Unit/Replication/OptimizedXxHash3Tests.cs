using System.IO.Hashing;
using AsrModule.Engine.Replication;
using Xunit;

namespace AsrModule.Tests.Unit.Replication;

/// <summary>The replication's own XXH3-64 must be System.IO.Hashing's, bit for bit: vaults hold hashes made by both.</summary>
public class OptimizedXxHash3Tests
{
    public static TheoryData<int> Lengths => new()
    {
        0, 1, 16, 17, 128, 129, 240, 241, 255, 256, 1023, 1024, 1025, 1088, 2047, 2048, 4095, 4096, 4097, 8192, 65536, 262144, 262145,
    };

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Matches_the_library_for_every_length_class(int length)
    {
        var random = new Random(length);
        var data = new byte[length];
        random.NextBytes(data);
        foreach (ulong seed in new ulong[] { 0, 1, 0x9E3779B185EBCA87, ulong.MaxValue, (ulong)random.NextInt64() })
            Assert.Equal(XxHash3.HashToUInt64(data, (long)seed), OptimizedXxHash3.ForSeed(seed).Hash(data));
        Assert.Equal(XxHash3.HashToUInt64(data), OptimizedXxHash3.Unseeded.Hash(data));
    }

    [Fact]
    public void Matches_the_library_over_random_lengths_offsets_and_seeds()
    {
        var random = new Random(20261205);
        var buffer = new byte[20000];
        random.NextBytes(buffer);
        for (int i = 0; i < 3000; i++)
        {
            int offset = random.Next(0, 64), length = random.Next(0, buffer.Length - offset);
            ulong seed = (ulong)random.NextInt64();
            var span = buffer.AsSpan(offset, length);
            Assert.Equal(XxHash3.HashToUInt64(span, (long)seed), OptimizedXxHash3.ForSeed(seed).Hash(span));
        }
    }

    [Fact]
    public void A_zero_block_and_a_block_differing_in_one_bit_hash_apart()
    {
        var block = new byte[4096];
        var hasher = OptimizedXxHash3.ForSeed(42);
        ulong zero = hasher.Hash(block);
        for (int bit = 0; bit < block.Length * 8; bit += 997)
        {
            block[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.NotEqual(zero, hasher.Hash(block));
            Assert.Equal(XxHash3.HashToUInt64(block, 42), hasher.Hash(block));
            block[bit / 8] ^= (byte)(1 << (bit % 8));
        }
    }
}
