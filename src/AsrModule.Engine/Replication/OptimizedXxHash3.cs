using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace AsrModule.Engine.Replication;

/// <summary>
/// XXH3-64 (the same function as <see cref="XxHash3.HashToUInt64(ReadOnlySpan{byte}, long)"/>, bit for bit) for the
/// inputs the replication hot paths hash: a block (4 KiB by default) per hash, an extent's plaintext per checksum.
/// <para>
/// Why a copy of the library's long-input path: System.IO.Hashing's vectorized XXH3 cannot be precompiled
/// (ReadyToRun leaves out methods that use <c>Vector256</c>), so a fresh process starts it at tier 0, where none of
/// its small vector helpers is inlined; with both cores busy scanning, the runtime's tiering did not promote it
/// before a 2 GiB scan ended (the JIT log of a first cycle shows it at tier 0 throughout), and the first cycle of
/// every pwsh session and runbook paid for it. This method is marked <c>AggressiveOptimization</c>: compiled fully
/// optimized on its first call, whatever the tiering does. Inputs of 240 bytes or less (a disk's partial last block)
/// go to the library. The seed's 192-byte secret is derived once per seed, not once per block.
/// tests/Unit/Replication/OptimizedXxHash3Tests.cs compares it with the library over lengths, seeds and contents.
/// </para>
/// </summary>
internal sealed class OptimizedXxHash3
{
    private const ulong Prime32_1 = 0x9E3779B1, Prime32_2 = 0x85EBCA77, Prime32_3 = 0xC2B2AE3D;
    private const ulong Prime64_1 = 0x9E3779B185EBCA87, Prime64_2 = 0xC2B2AE3D27D4EB4F, Prime64_3 = 0x165667B19E3779F9,
        Prime64_4 = 0x85EBCA77C2B2AE63, Prime64_5 = 0x27D4EB2F165667C5;
    private const int SecretSize = 192, StripeLength = 64, SecretPerStripe = 8, MidSizeMax = 240;
    private const int StripesPerBlock = (SecretSize - StripeLength) / SecretPerStripe, BlockLength = StripeLength * StripesPerBlock;

    /// <summary>XXH3's default secret (xxhash.h, XXH3_kSecret).</summary>
    private static ReadOnlySpan<byte> DefaultSecret =>
    [
        0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
        0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
        0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
        0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
        0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
        0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
        0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
        0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
        0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
        0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
        0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
        0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
    ];

    private static readonly ConcurrentDictionary<ulong, OptimizedXxHash3> BySeed = new();

    /// <summary>Unseeded XXH3-64 (seed 0), as <see cref="XxHash3.HashToUInt64(ReadOnlySpan{byte}, long)"/> with no seed.</summary>
    public static OptimizedXxHash3 Unseeded { get; } = new(0);

    /// <summary>The hasher of <paramref name="seed"/> (its secret derived once per process).</summary>
    public static OptimizedXxHash3 ForSeed(ulong seed) => seed == 0 ? Unseeded : BySeed.GetOrAdd(seed, s => new OptimizedXxHash3(s));

    private readonly byte[] _secret = new byte[SecretSize];
    private readonly long _seed;

    private OptimizedXxHash3(ulong seed)
    {
        _seed = (long)seed;
        // XXH3_initCustomSecret: every 16 bytes of the default secret, the first 8 plus the seed, the next 8 minus it.
        for (int i = 0; i < SecretSize; i += 16)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(_secret.AsSpan(i), BinaryPrimitives.ReadUInt64LittleEndian(DefaultSecret[i..]) + seed);
            BinaryPrimitives.WriteUInt64LittleEndian(_secret.AsSpan(i + 8), BinaryPrimitives.ReadUInt64LittleEndian(DefaultSecret[(i + 8)..]) - seed);
        }
    }

    /// <summary>XXH3-64 of <paramref name="data"/> with this hasher's seed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public ulong Hash(ReadOnlySpan<byte> data)
    {
        if (data.Length <= MidSizeMax) return XxHash3.HashToUInt64(data, _seed);
        // XXH3_hashLong_64b: 8 accumulators over 64-byte stripes, scrambled after every 1,024-byte block.
        Span<ulong> acc = [Prime32_3, Prime64_1, Prime64_2, Prime64_3, Prime64_4, Prime32_2, Prime64_5, Prime32_1];
        ReadOnlySpan<byte> secret = _secret;
        int length = data.Length;
        int blocks = (length - 1) / BlockLength;
        for (int b = 0; b < blocks; b++)
        {
            Accumulate(acc, data[(b * BlockLength)..], secret, StripesPerBlock);
            Scramble(acc, secret[(SecretSize - StripeLength)..]);
        }
        Accumulate(acc, data[(blocks * BlockLength)..], secret, (length - 1 - blocks * BlockLength) / StripeLength);
        AccumulateStripe(acc, data[(length - StripeLength)..], secret[(SecretSize - StripeLength - 7)..]);
        // XXH3_mergeAccs, then XXH3_avalanche.
        ulong result = (ulong)length * Prime64_1;
        for (int i = 0; i < 4; i++)
            result += Mul128Fold64(acc[2 * i] ^ Read(secret, 11 + 16 * i), acc[2 * i + 1] ^ Read(secret, 19 + 16 * i));
        result ^= result >> 37;
        result *= 0x165667919E3779F9;
        return result ^ (result >> 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Read(ReadOnlySpan<byte> bytes, int at) => BinaryPrimitives.ReadUInt64LittleEndian(bytes[at..]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Mul128Fold64(ulong a, ulong b)
    {
        ulong high = Math.BigMul(a, b, out ulong low);
        return low ^ high;
    }

    /// <summary>XXH3_accumulate: <paramref name="stripes"/> stripes, the secret advancing 8 bytes per stripe.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(Span<ulong> acc, ReadOnlySpan<byte> data, ReadOnlySpan<byte> secret, int stripes)
    {
        if (!Avx2.IsSupported)
        {
            for (int n = 0; n < stripes; n++) AccumulateStripe(acc, data[(n * StripeLength)..], secret[(n * SecretPerStripe)..]);
            return;
        }
        var low = Vector256.Create<ulong>(acc[..4]);
        var high = Vector256.Create<ulong>(acc[4..]);
        ref byte d = ref MemoryMarshal.GetReference(data);
        ref byte s = ref MemoryMarshal.GetReference(secret);
        for (int n = 0; n < stripes; n++)
        {
            nuint at = (nuint)(n * StripeLength), key = (nuint)(n * SecretPerStripe);
            low = AccumulateLanes(low, Vector256.LoadUnsafe(ref d, at).AsUInt64(), Vector256.LoadUnsafe(ref s, key).AsUInt64());
            high = AccumulateLanes(high, Vector256.LoadUnsafe(ref d, at + 32).AsUInt64(), Vector256.LoadUnsafe(ref s, key + 32).AsUInt64());
        }
        low.CopyTo(acc[..4]);
        high.CopyTo(acc[4..]);
    }

    /// <summary>Four lanes of XXH3_accumulate_512 (AVX2, as xxhash.h's XXH3_accumulate_512_avx2).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> AccumulateLanes(Vector256<ulong> acc, Vector256<ulong> data, Vector256<ulong> key)
    {
        var mixed = data ^ key;
        var product = Avx2.Multiply(mixed.AsUInt32(), Avx2.ShiftRightLogical(mixed, 32).AsUInt32());
        // acc[i ^ 1] += data[i]: the two 64-bit halves of each 128-bit lane swapped.
        return acc + product + Avx2.Shuffle(data.AsUInt32(), 0b01_00_11_10).AsUInt64();
    }

    /// <summary>XXH3_accumulate_512, scalar.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AccumulateStripe(Span<ulong> acc, ReadOnlySpan<byte> data, ReadOnlySpan<byte> secret)
    {
        for (int i = 0; i < 8; i++)
        {
            ulong value = Read(data, 8 * i), key = value ^ Read(secret, 8 * i);
            acc[i ^ 1] += value;
            acc[i] += (key & 0xFFFFFFFF) * (key >> 32);
        }
    }

    /// <summary>XXH3_scrambleAcc, scalar (once per 1,024 bytes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scramble(Span<ulong> acc, ReadOnlySpan<byte> secret)
    {
        for (int i = 0; i < 8; i++)
        {
            ulong a = acc[i];
            a ^= a >> 47;
            a ^= Read(secret, 8 * i);
            acc[i] = a * Prime32_1;
        }
    }
}
