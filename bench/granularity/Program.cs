using System.Diagnostics;
using AsrModule.Engine.Jobs;
using AsrModule.Engine.Policies;
using AsrModule.Engine.Replication;
using AsrModule.Engine.Vault;

// For each tracking block size: initial replication of the PRODUCT.md mix, then 1% of 4 KiB blocks
// rewritten at random, then one delta cycle. Prints delta time, bytes stored, tracker size.
//   dotnet run -c Release --project bench/granularity -- [sizeMiB=512] [workDir]
long sizeMiB = args.Length > 0 ? long.Parse(args[0]) : 512;
string work = args.Length > 1 ? args[1] : Path.Combine(Path.GetTempPath(), "asr-granularity");
Directory.CreateDirectory(work);
string v1 = Path.Combine(work, "v1.img"), v2 = Path.Combine(work, "v2.img"), disk = Path.Combine(work, "disk.img");
MakeImage(v1, sizeMiB << 20);
File.Copy(v1, v2, true);
long written = Scatter(v2);
Console.WriteLine($"image {sizeMiB} MiB; 1% of 4 KiB blocks rewritten = {written:N0} bytes; {Environment.ProcessorCount} cores");
Console.WriteLine("| block size | delta s | changed bytes found | bytes stored | stored / written | tracker bytes |");
Console.WriteLine("|---|---|---|---|---|---|");
foreach (int kib in new[] { 4, 8, 16, 32, 64 })
{
    string vaultPath = Path.Combine(work, $"vault-{kib}");
    if (Directory.Exists(vaultPath)) Directory.Delete(vaultPath, true);
    File.Copy(v1, disk, true);
    var vault = await AsrVault.CreateLocalAsync(vaultPath, null);
    await vault.CreatePolicyAsync(new AsrPolicy { Name = "p" }, default);
    var svc = new ReplicationService(vault);
    var item = await svc.RegisterAsync("m", [disk], "p", default, kib * 1024);
    using (await svc.PrepareCycleAsync(item, false, default)) await svc.RunCycleAsync(item, false, JobContext.Detached());
    File.Copy(v2, disk, true);
    item = await vault.GetItemAsync("m", default);
    var sw = Stopwatch.StartNew();
    AsrJobResult r;
    using (await svc.PrepareCycleAsync(item, false, default)) r = await svc.RunCycleAsync(item, false, JobContext.Detached());
    sw.Stop();
    long tracker = new DirectoryInfo(vaultPath).EnumerateFiles("*", SearchOption.AllDirectories).Where(f => f.FullName.Contains("/tracker/")).Sum(f => f.Length);
    Console.WriteLine($"| {kib} KiB | {sw.Elapsed.TotalSeconds:F2} | {r.ChangedBytes:N0} | {r.BytesStored:N0} | {(double)r.BytesStored! / written:F2}x | {tracker:N0} |");
    Directory.Delete(vaultPath, true);
}
Directory.Delete(work, true);

static void MakeImage(string path, long size)
{
    var rng = new Random(1);
    var buf = new byte[1 << 20];
    var text = System.Text.Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 120_000).Select(i => "vault block extent point disk "[(i % 5)..] + " ")))[..(1 << 20)];
    using var fs = new FileStream(path, FileMode.Create);
    fs.SetLength(size);
    for (long off = 0, i = 0; off < size; off += buf.Length, i++)
    {
        fs.Position = off;
        if (i % 4 == 0) { rng.NextBytes(buf); fs.Write(buf); }
        else if (i % 4 == 1) { text[rng.Next(text.Length)] ^= 1; fs.Write(text); }
    }
}

static long Scatter(string path)
{
    var rng = new Random(2);
    var block = new byte[4096];
    using var fs = new FileStream(path, FileMode.Open);
    long blocks = fs.Length / 4096, count = blocks / 100;
    var chosen = new HashSet<long>();
    while (chosen.Count < count) chosen.Add(rng.NextInt64(blocks));
    foreach (var b in chosen) { rng.NextBytes(block); fs.Position = b * 4096; fs.Write(block); }
    return count * 4096;
}
