using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace AsrModule.Infrastructure;

/// <summary>
/// The engine logs from worker threads; cmdlets may only write from the pipeline thread. This logger
/// queues messages, and the waiting cmdlet drains them into Write-Verbose / Write-Warning.
/// </summary>
internal sealed class PipelineLogger : ILogger
{
    private readonly ConcurrentQueue<(LogLevel Level, string Message)> _queue = new();

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        string message = formatter(state, exception);
        if (exception is not null) message += ": " + exception.Message;
        _queue.Enqueue((logLevel, message));
    }

    public bool TryDequeue(out (LogLevel Level, string Message) entry) => _queue.TryDequeue(out entry);
}
