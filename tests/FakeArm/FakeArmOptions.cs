namespace AsrModule.Tests.FakeArm;

/// <summary>How LROs are answered: at once (200/201 with the final body), or accepted (201/202 with
/// Azure-AsyncOperation and/or Location) and completed after <see cref="FakeArmOptions.AsyncPolls"/> polls.</summary>
public enum LroMode
{
    Sync,
    Async,
}

/// <summary>The command line of the fake (see README.md).</summary>
public sealed record FakeArmOptions
{
    public int Port { get; init; }
    public string CertDir { get; init; } = "";
    public string? AzuriteConnectionString { get; init; }
    public string Container { get; init; } = "disks";
    public LroMode Mode { get; init; } = LroMode.Sync;
    /// <summary>Polls of an operation's status URL until it completes (the first poll of 1 answers the final state).</summary>
    public int AsyncPolls { get; init; } = 1;
    /// <summary>Resources per page of the list by tag (a nextLink follows when more are left).</summary>
    public int ListPageSize { get; init; } = 100;

    public static FakeArmOptions Parse(string[] args)
    {
        var o = new FakeArmOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            o = args[i] switch
            {
                "--port" => o with { Port = int.Parse(Value()) },
                "--cert-dir" => o with { CertDir = Value() },
                "--azurite-connection-string" => o with { AzuriteConnectionString = Value() },
                "--container" => o with { Container = Value() },
                "--mode" => o with { Mode = Enum.Parse<LroMode>(Value(), ignoreCase: true) },
                "--async-polls" => o with { AsyncPolls = Math.Max(1, int.Parse(Value())) },
                "--list-page-size" => o with { ListPageSize = Math.Max(1, int.Parse(Value())) },
                _ => throw new ArgumentException($"Unknown argument '{args[i]}'."),
            };
        }
        if (string.IsNullOrEmpty(o.CertDir)) throw new ArgumentException("--cert-dir is required (cert.pem is written there).");
        return o;
    }
}
