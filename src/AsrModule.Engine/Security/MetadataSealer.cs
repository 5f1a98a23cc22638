using System.Buffers.Binary;
using System.Text;
using AsrModule.Engine.Errors;
using AsrModule.Engine.Compression;

namespace AsrModule.Engine.Security;

/// <summary>
/// Compresses (and, in an encrypted vault, seals) binary metadata objects: extent indexes and
/// change-tracker tables. Both reveal the shape of the data, so they are encrypted like the data.
/// In an encrypted vault of format version 2 the JSON records are sealed the same way (<see cref="Vault.VaultRecords"/>).
/// Layout: magic "ASM1" | flags(1) | plainLength(4) | payload; sealed, the payload is nonce | ciphertext | tag
/// under the subkey "meta:&lt;object key&gt;" with the object key as associated data, so a sealed object opens only
/// under the key it was written to.
/// <para>
/// Opening with a key requires the object to be sealed: the "encrypted" flag is the writer's statement, and whoever
/// can write to the vault without the key could clear it (a plain index and pack planted for a drill to serve).
/// With a key, a plain object is <see cref="AsrErrorIds.VaultDataCorrupt"/> naming it, like one whose tag fails.
/// </para>
/// </summary>
public static class MetadataSealer
{
    private static ReadOnlySpan<byte> Magic => "ASM1"u8;
    private const byte FlagEncrypted = 1;

    public static byte[] Seal(ReadOnlySpan<byte> plain, VaultKey? key, string objectKey)
    {
        byte[] compressed;
        using (var compressor = Zstd.CreateCompressor(3))
        {
            byte[] frame = new byte[Zstd.CompressBound(plain.Length)];
            compressed = frame.AsSpan(0, compressor.Compress(plain, frame)).ToArray();
        }
        int payloadLength = key is null ? compressed.Length : compressed.Length + SealedBox.Overhead;
        byte[] output = new byte[9 + payloadLength];
        Magic.CopyTo(output);
        output[4] = key is null ? (byte)0 : FlagEncrypted;
        BinaryPrimitives.WriteInt32LittleEndian(output.AsSpan(5), plain.Length);
        if (key is null)
        {
            compressed.CopyTo(output.AsSpan(9));
        }
        else
        {
            using var box = new SealedBox(key.DeriveSubkey("meta:" + objectKey));
            box.Seal(compressed, output.AsSpan(9), Encoding.UTF8.GetBytes(objectKey));
        }
        return output;
    }

    public static byte[] Open(byte[] sealedObject, VaultKey? key, string objectKey)
    {
        if (sealedObject.Length < 9 || !sealedObject.AsSpan(0, 4).SequenceEqual(Magic))
            throw key is null ? Corrupt(objectKey, "bad header") : NotSealed(objectKey);
        bool encrypted = (sealedObject[4] & FlagEncrypted) != 0;
        int plainLength = BinaryPrimitives.ReadInt32LittleEndian(sealedObject.AsSpan(5));
        if (plainLength < 0) throw Corrupt(objectKey, "negative length");
        ReadOnlySpan<byte> payload = sealedObject.AsSpan(9);
        byte[]? decrypted = null;
        if (encrypted)
        {
            if (key is null)
                throw new AsrException(AsrErrorIds.VaultKeyRequired, AsrErrorKind.SecurityError, $"Object '{objectKey}' is encrypted and no key was supplied.", objectKey);
            if (payload.Length < SealedBox.Overhead) throw Corrupt(objectKey, "truncated");
            decrypted = new byte[payload.Length - SealedBox.Overhead];
            using var box = new SealedBox(key.DeriveSubkey("meta:" + objectKey));
            box.Open(payload, decrypted, Encoding.UTF8.GetBytes(objectKey), objectKey);
            payload = decrypted;
        }
        else if (key is not null)
        {
            throw NotSealed(objectKey);
        }
        try
        {
            using var decompressor = Zstd.CreateDecompressor();
            // The frame bounds what it can decompress to (its declared content size when it has one): a header
            // claiming more (a truncated or planted object) is refused before the buffer it asks for is allocated.
            if (Zstd.DecompressedBound(payload) < (ulong)plainLength) throw Corrupt(objectKey, "length mismatch");
            byte[] plain = new byte[plainLength];
            int written = decompressor.Decompress(payload, plain);
            if (written != plainLength) throw Corrupt(objectKey, "length mismatch");
            return plain;
        }
        catch (Exception ex) when (ex is InvalidDataException or ZstdSharp.ZstdException)
        {
            throw Corrupt(objectKey, ex.Message);
        }
    }

    private static AsrException NotSealed(string key) =>
        new(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
            $"Vault object '{key}' is not sealed, but everything this module writes to an encrypted vault is: it was written without the vault key " +
            "(planted or replaced by someone with write access to the vault) and is refused.", key);

    private static AsrException Corrupt(string key, string why) =>
        new(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData, $"Vault object '{key}' is corrupt ({why}).", key);
}
