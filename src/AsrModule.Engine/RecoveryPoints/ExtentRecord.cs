namespace AsrModule.Engine.RecoveryPoints;

[Flags]
public enum ExtentFlags : byte
{
    None = 0,
    Compressed = 1,
    Encrypted = 2,
    /// <summary>The blocks became zero (trimmed); nothing is stored.</summary>
    Zero = 4,
}

/// <summary>
/// A run of consecutive blocks stored as one unit in a pack. <see cref="PlainHash"/> is XxHash3 of the
/// plaintext, checked on every read of an unencrypted vault (AES-GCM authenticates encrypted ones).
/// </summary>
public readonly record struct ExtentRecord(
    long FirstBlock, int BlockCount, ExtentFlags Flags, int PackNumber, long PackOffset, int StoredLength, ulong PlainHash)
{
    public const int EncodedSize = 8 + 4 + 1 + 4 + 8 + 4 + 8;
    public long EndBlock => FirstBlock + BlockCount;
}
