using System.Buffers;
using System.Buffers.Binary;
using AsrModule.Engine.Errors;
using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Security;
using AsrModule.Engine.Compression;

namespace AsrModule.Engine.Replication;

/// <summary>
/// Turns an extent's plaintext into its stored form and back: zstd (kept only when it saves space),
/// then AES-256-GCM under the cycle's subkey with the extent's place as associated data.
/// One codec per worker thread (zstd contexts are not thread-safe).
/// </summary>
internal sealed class ExtentCodec : IDisposable
{
    private readonly IZstdCompressor? _compressor;
    private readonly IZstdDecompressor _decompressor = Zstd.CreateDecompressor();
    private readonly VaultKey? _key;
    private readonly Dictionary<string, SealedBox> _boxes = new();

    public ExtentCodec(VaultKey? key, int compressionLevel)
    {
        _key = key;
        _compressor = compressionLevel > 0 ? Zstd.CreateExtentCompressor(compressionLevel) : null;
    }

    public static string SubkeyContext(string itemId, long sequence) => $"data:{itemId}:{sequence}";

    private SealedBox Box(string itemId, long sequence)
    {
        string ctx = SubkeyContext(itemId, sequence);
        if (!_boxes.TryGetValue(ctx, out var box))
            _boxes[ctx] = box = new SealedBox(_key!.DeriveSubkey(ctx));
        return box;
    }

    private static byte[] Aad(string diskId, long firstBlock, int blockCount, long sequence)
    {
        var id = System.Text.Encoding.UTF8.GetBytes(diskId);
        var aad = new byte[20 + id.Length];
        BinaryPrimitives.WriteInt64LittleEndian(aad, firstBlock);
        BinaryPrimitives.WriteInt32LittleEndian(aad.AsSpan(8), blockCount);
        BinaryPrimitives.WriteInt64LittleEndian(aad.AsSpan(12), sequence);
        id.CopyTo(aad, 20);
        return aad;
    }

    /// <summary>Encodes plaintext into a pooled buffer; the caller returns it to the pool.</summary>
    public (byte[] Buffer, int Length, ExtentFlags Flags) Encode(ReadOnlySpan<byte> plain, string itemId, string diskId, long sequence, long firstBlock, int blockCount)
    {
        var flags = ExtentFlags.None;
        byte[] stage = ArrayPool<byte>.Shared.Rent(Zstd.CompressBound(plain.Length) + SealedBox.Overhead);
        ReadOnlySpan<byte> payload = plain;
        byte[]? compressed = null;
        if (_compressor is not null)
        {
            compressed = ArrayPool<byte>.Shared.Rent(Zstd.CompressBound(plain.Length));
            int n = _compressor.Compress(plain, compressed);
            if (n < plain.Length - plain.Length / 64) // keep compression only when it saves > ~1.5%
            {
                payload = compressed.AsSpan(0, n);
                flags |= ExtentFlags.Compressed;
            }
        }
        int length;
        if (_key is not null)
        {
            Box(itemId, sequence).Seal(payload, stage.AsSpan(0, payload.Length + SealedBox.Overhead), Aad(diskId, firstBlock, blockCount, sequence));
            length = payload.Length + SealedBox.Overhead;
            flags |= ExtentFlags.Encrypted;
        }
        else
        {
            payload.CopyTo(stage);
            length = payload.Length;
        }
        if (compressed is not null) ArrayPool<byte>.Shared.Return(compressed);
        return (stage, length, flags);
    }

    /// <summary>Decodes a stored extent into <paramref name="plain"/> (exactly its plaintext length).</summary>
    public void Decode(ReadOnlySpan<byte> stored, in ExtentRecord record, Span<byte> plain, string itemId, string diskId, long sequence, string what)
    {
        byte[]? decrypted = null;
        ReadOnlySpan<byte> payload = stored;
        try
        {
            // In an encrypted vault every extent is sealed (Encode): the index's flag is not trusted to say otherwise.
            if (_key is not null && (record.Flags & ExtentFlags.Encrypted) == 0)
                throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                    $"{what} is stored unencrypted in an encrypted vault: it was not written with the vault key and is refused.", what);
            if ((record.Flags & ExtentFlags.Encrypted) != 0)
            {
                if (_key is null)
                    throw new AsrException(AsrErrorIds.VaultKeyRequired, AsrErrorKind.SecurityError, $"{what} is encrypted and no key was supplied.", what);
                if (stored.Length < SealedBox.Overhead) throw Corrupt(what, "shorter than its nonce and tag");
                decrypted = ArrayPool<byte>.Shared.Rent(stored.Length - SealedBox.Overhead);
                var dst = decrypted.AsSpan(0, stored.Length - SealedBox.Overhead);
                Box(itemId, sequence).Open(stored, dst, Aad(diskId, record.FirstBlock, record.BlockCount, sequence), what);
                payload = dst;
            }
            if ((record.Flags & ExtentFlags.Compressed) != 0)
            {
                int n = _decompressor.Decompress(payload, plain);
                if (n != plain.Length) throw Corrupt(what, "decompressed length mismatch");
            }
            else
            {
                if (payload.Length != plain.Length) throw Corrupt(what, "stored length mismatch");
                payload.CopyTo(plain);
            }
        }
        catch (InvalidDataException ex)
        {
            throw Corrupt(what, ex.Message);
        }
        finally
        {
            if (decrypted is not null) ArrayPool<byte>.Shared.Return(decrypted);
        }
        if (BlockHashTable.Checksum(plain) != record.PlainHash)
            throw Corrupt(what, $"checksum mismatch; stored {record.StoredLength:N0} bytes at offset {record.PackOffset:N0} of pack {record.PackNumber}, {record.Flags}");
    }

    private static AsrException Corrupt(string what, string why) =>
        new(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"{what} is corrupt in the vault ({why}).", what);

    public void Dispose()
    {
        _compressor?.Dispose();
        _decompressor.Dispose();
        foreach (var b in _boxes.Values) b.Dispose();
    }
}
