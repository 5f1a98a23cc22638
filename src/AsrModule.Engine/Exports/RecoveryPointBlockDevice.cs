using AsrModule.Engine.RecoveryPoints;
using AsrModule.Engine.Vault;

namespace AsrModule.Engine.Exports;

/// <summary>A recovery point's disk as a read-only block device, read straight out of the vault.</summary>
public sealed class RecoveryPointBlockDevice : IBlockDevice
{
    private readonly RecoveryPointDiskReader _reader;

    private RecoveryPointBlockDevice(RecoveryPointDiskReader reader) => _reader = reader;

    public static async Task<RecoveryPointBlockDevice> OpenAsync(AsrVault vault, AsrRecoveryPoint point, string disk, CancellationToken ct) =>
        new(await RecoveryPointDiskReader.OpenAsync(vault, point, disk, ct).ConfigureAwait(false));

    public long Length => _reader.Length;
    public bool IsReadOnly => true;

    public async ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        int n = await _reader.ReadAsync(offset, buffer, cancellationToken).ConfigureAwait(false);
        if (n < buffer.Length) buffer.Span[n..].Clear();
    }

    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        throw new NotSupportedException("A recovery point is read-only.");

    public ValueTask FlushAsync(CancellationToken cancellationToken) => ValueTask.CompletedTask;

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        return ValueTask.CompletedTask;
    }
}
