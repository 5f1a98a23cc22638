namespace AsrModule.Engine.Storage;

/// <summary>
/// A new vault object written in parts as they come, visible only once committed, and then whole — the create-only
/// write of <see cref="IVaultStore.TryCreateAsync"/> for objects too large to hold in memory at once (a cycle's packs).
/// Disposing an upload that was not committed discards what it wrote.
/// </summary>
public interface IObjectUpload : IAsyncDisposable
{
    /// <summary>Bytes appended so far.</summary>
    long Length { get; }

    /// <summary>Appends the next part. The caller may reuse <paramref name="part"/> once the task completes.</summary>
    Task AppendAsync(ReadOnlyMemory<byte> part, CancellationToken cancellationToken);

    /// <summary>Publishes the object; false when an object of that name exists already (nothing is replaced).</summary>
    Task<bool> CommitAsync(CancellationToken cancellationToken);
}

/// <summary>
/// The upload of a store that writes an object in one request: the parts are gathered in memory, and the commit is
/// <see cref="IVaultStore.TryCreateAsync"/>. The buffer starts at 1 MiB (or the expected length when smaller) and,
/// when that is outgrown, moves at once to the expected length, allocated uninitialized, so only the pages written are
/// touched.
/// </summary>
public sealed class BufferedObjectUpload(IVaultStore store, string key, int expectedLength) : IObjectUpload
{
    private const int FirstBufferBytes = 1 << 20;
    private byte[] _buffer = GC.AllocateUninitializedArray<byte>(Math.Max(1, Math.Min(FirstBufferBytes, expectedLength)));
    private int _length;

    public long Length => _length;

    public Task AppendAsync(ReadOnlyMemory<byte> part, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (_length + part.Length > _buffer.Length)
        {
            var larger = GC.AllocateUninitializedArray<byte>(Math.Max(checked(_length + part.Length), Math.Max(expectedLength, 2 * _buffer.Length)));
            _buffer.AsSpan(0, _length).CopyTo(larger);
            _buffer = larger;
        }
        part.Span.CopyTo(_buffer.AsSpan(_length));
        _length += part.Length;
        return Task.CompletedTask;
    }

    public Task<bool> CommitAsync(CancellationToken cancellationToken) => store.TryCreateAsync(key, _buffer.AsMemory(0, _length), cancellationToken);

    public ValueTask DisposeAsync()
    {
        _buffer = [];
        return ValueTask.CompletedTask;
    }
}
