using System.Runtime.ExceptionServices;

namespace AsrModule.Engine.Azure.Failover;

/// <summary>The target's bounded fan-out: the disks of a point uploaded, or the snapshots of a VM's disks taken, a few at once.</summary>
internal static class BoundedParallel
{
    /// <summary>
    /// Runs <paramref name="body"/> for 0..count-1, at most <paramref name="parallel"/> at once. The first failure cancels
    /// the others; once all have stopped, it is thrown (rather than a cancellation it caused).
    /// </summary>
    public static async Task<T[]> RunAsync<T>(int count, int parallel, Func<int, CancellationToken, Task<T>> body, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        using var gate = new SemaphoreSlim(parallel);
        async Task<T> RunOne(int i)
        {
            await gate.WaitAsync(cts.Token).ConfigureAwait(false);
            try
            {
                return await body(i, cts.Token).ConfigureAwait(false);
            }
            catch
            {
                await cts.CancelAsync().ConfigureAwait(false);
                throw;
            }
            finally
            {
                gate.Release();
            }
        }

        var tasks = Enumerable.Range(0, count).Select(RunOne).ToArray();
        try
        {
            return await Task.WhenAll(tasks).ConfigureAwait(false);
        }
        catch (Exception)
        {
            var failure = tasks.Where(t => t.IsFaulted).SelectMany(t => t.Exception!.InnerExceptions)
                .FirstOrDefault(e => e is not OperationCanceledException);
            if (failure is not null) ExceptionDispatchInfo.Throw(failure);
            throw;
        }
    }
}
