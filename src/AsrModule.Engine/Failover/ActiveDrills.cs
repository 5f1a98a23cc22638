using System.Collections.Concurrent;
using AsrModule.Engine.Exports;

namespace AsrModule.Engine.Failover;

/// <summary>Drills served by this process: their NBD server and devices, by item id.</summary>
internal static class ActiveDrills
{
    private static readonly ConcurrentDictionary<string, ActiveDrill> ByItem = new();

    public static void Add(string itemId, ActiveDrill drill) => ByItem[itemId] = drill;

    public static ActiveDrill? Remove(string itemId) => ByItem.TryRemove(itemId, out var d) ? d : null;

    public static bool IsServedHere(string itemId) => ByItem.ContainsKey(itemId);
}

internal sealed class ActiveDrill(NbdServer server, IReadOnlyList<OverlayBlockDevice> devices) : IAsyncDisposable
{
    public NbdServer Server { get; } = server;
    public IReadOnlyList<OverlayBlockDevice> Devices { get; } = devices;

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync().ConfigureAwait(false);
        foreach (var d in Devices) await d.DisposeAsync().ConfigureAwait(false);
    }
}
