using System.Security.Cryptography;
using AsrModule.Engine.Errors;

namespace AsrModule.Engine.Security;

/// <summary>
/// AES-256-GCM with a per-context subkey: layout is nonce(12) | ciphertext | tag(16). The
/// associated data binds a sealed extent to where it belongs, so blocks cannot be swapped
/// between places in the vault without failing authentication.
/// </summary>
public sealed class SealedBox : IDisposable
{
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int Overhead = NonceSize + TagSize;
    private readonly AesGcm _aes;

    public SealedBox(byte[] subkey) => _aes = new AesGcm(subkey, TagSize);

    public void Seal(ReadOnlySpan<byte> plaintext, Span<byte> output, ReadOnlySpan<byte> associatedData)
    {
        var nonce = output[..NonceSize];
        RandomNumberGenerator.Fill(nonce);
        _aes.Encrypt(nonce, plaintext, output.Slice(NonceSize, plaintext.Length), output.Slice(NonceSize + plaintext.Length, TagSize), associatedData);
    }

    public void Open(ReadOnlySpan<byte> sealedData, Span<byte> plaintext, ReadOnlySpan<byte> associatedData, string what)
    {
        try
        {
            _aes.Decrypt(sealedData[..NonceSize], sealedData.Slice(NonceSize, sealedData.Length - Overhead),
                sealedData[^TagSize..], plaintext, associatedData);
        }
        catch (AuthenticationTagMismatchException ex)
        {
            throw new AsrException(AsrErrorIds.VaultDataCorrupt, AsrErrorKind.InvalidData,
                $"Authentication failed for {what}: the vault data was altered or belongs elsewhere.", what, ex);
        }
    }

    public void Dispose() => _aes.Dispose();
}
