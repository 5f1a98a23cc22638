// TEMPORARY: replaced by the real image classes before commit.
using AsrModule.Engine.Replication.Tracking;
namespace AsrModule.Engine.Replication.Sources.Images;
public enum DiskImageFormat { Raw, Qcow2, Vmdk, Vhdx, Vdi, Vpc }
internal static class DiskImageFormats
{
    public static DiskImageFormat Detect(string path) => DiskImageFormat.Raw;
    public static string QemuName(DiskImageFormat f) => f.ToString().ToLowerInvariant();
    public static DiskImageFormat Parse(string s) => Enum.Parse<DiskImageFormat>(s, true);
}
internal sealed class QemuImageSource : ISourceDisk
{
    public static Task<QemuImageSource> OpenAsync(string path, DiskImageFormat format, string? bitmap, CancellationToken ct) => throw new NotImplementedException();
    public string Path => "";
    public long Size => 0;
    public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken) => throw new NotImplementedException();
    public ValueTask<IReadOnlyList<ByteRange>?> GetDataRangesAsync(CancellationToken cancellationToken) => throw new NotImplementedException();
    public void Dispose() { }
}
