namespace AsrModule.Engine.Exports;

/// <summary>
/// A random-access disk that can be served to clients (NBD) or written to files: a recovery point
/// read straight out of the vault, optionally under a copy-on-write overlay.
/// Implementations are thread-safe for concurrent reads and writes at different offsets.
/// </summary>
public interface IBlockDevice : IAsyncDisposable
{
    /// <summary>Size in bytes.</summary>
    long Length { get; }

    bool IsReadOnly { get; }

    /// <summary>Fills <paramref name="buffer"/> from <paramref name="offset"/> (offset + length ≤ Length).</summary>
    ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Writes at <paramref name="offset"/>; throws <see cref="NotSupportedException"/> when read-only.</summary>
    ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Makes written data durable.</summary>
    ValueTask FlushAsync(CancellationToken cancellationToken);
}
