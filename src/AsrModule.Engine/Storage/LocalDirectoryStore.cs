namespace AsrModule.Engine.Storage;

/// <summary>
/// Vault objects as files under a directory. Writes go to a temporary file in the same directory,
/// are flushed to disk, then renamed over the final name, so an object is either whole or absent
/// after a crash at any moment.
/// </summary>
public sealed class LocalDirectoryStore : IVaultStore
{
    private const string TempSuffix = ".tmp-";
    private readonly string _root;

    public LocalDirectoryStore(string root)
    {
        _root = Path.GetFullPath(root);
    }

    public string Location => _root;

    public string Backend => "LocalDirectory";

    private string PathOf(string key)
    {
        if (key.Length == 0 || key.StartsWith('/') || key.Contains("..", StringComparison.Ordinal) || key.Contains('\\'))
            throw new ArgumentException($"Invalid vault key '{key}'.", nameof(key));
        return Path.Combine(_root, key.Replace('/', Path.DirectorySeparatorChar));
    }

    public Task<bool> ExistsAsync(string key, CancellationToken cancellationToken) => Task.FromResult(File.Exists(PathOf(key)));

    public async Task<byte[]?> ReadAllAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            return await File.ReadAllBytesAsync(PathOf(key), cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException) { return null; }
        catch (DirectoryNotFoundException) { return null; }
    }

    public async Task ReadRangeAsync(string key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        using var handle = File.OpenHandle(PathOf(key), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        int done = 0;
        while (done < destination.Length)
        {
            int n = await RandomAccess.ReadAsync(handle, destination[done..], offset + done, cancellationToken).ConfigureAwait(false);
            if (n == 0) throw new EndOfStreamException($"Vault object '{key}' is shorter than expected.");
            done += n;
        }
    }

    public async Task WriteAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        string path = PathOf(key);
        string temp = await WriteTempAsync(path, content, cancellationToken).ConfigureAwait(false);
        File.Move(temp, path, overwrite: true);
    }

    public async Task<bool> TryCreateAsync(string key, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        string path = PathOf(key);
        string temp = await WriteTempAsync(path, content, cancellationToken).ConfigureAwait(false);
        try
        {
            // A hard link fails when the name exists: an atomic create-if-absent on POSIX.
            if (OperatingSystem.IsWindows())
            {
                if (File.Exists(path)) return false;
                File.Move(temp, path, overwrite: false);
                return true;
            }
            return Native.TryLink(temp, path);
        }
        catch (IOException) when (File.Exists(path))
        {
            return false;
        }
        finally
        {
            File.Delete(temp);
        }
    }

    private static async Task<string> WriteTempAsync(string path, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string temp = path + TempSuffix + Guid.NewGuid().ToString("N")[..8];
        try
        {
            await using var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
            await fs.WriteAsync(content, cancellationToken).ConfigureAwait(false);
            fs.Flush(flushToDisk: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        return temp;
    }

    public Task<IReadOnlyList<VaultObjectInfo>> ListAsync(string prefix, CancellationToken cancellationToken)
    {
        // The prefix is a key prefix; list the deepest existing directory it names and filter.
        int slash = prefix.LastIndexOf('/');
        string dirKey = slash < 0 ? "" : prefix[..slash];
        string dir = dirKey.Length == 0 ? _root : PathOf(dirKey);
        var result = new List<VaultObjectInfo>();
        if (Directory.Exists(dir))
        {
            foreach (var file in new DirectoryInfo(dir).EnumerateFiles("*", SearchOption.AllDirectories))
            {
                if (file.Name.Contains(TempSuffix, StringComparison.Ordinal)) continue;
                string key = Path.GetRelativePath(_root, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
                if (key.StartsWith(prefix, StringComparison.Ordinal))
                    result.Add(new VaultObjectInfo(key, file.Length));
            }
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Key, b.Key));
        return Task.FromResult<IReadOnlyList<VaultObjectInfo>>(result);
    }

    public Task DeleteIncompleteAsync(string prefix, CancellationToken cancellationToken)
    {
        string dir = PathOf(prefix.TrimEnd('/'));
        if (Directory.Exists(dir))
            foreach (var f in Directory.EnumerateFiles(dir, "*" + TempSuffix + "*", SearchOption.AllDirectories))
                File.Delete(f);
        return Task.CompletedTask;
    }

    public Task DeleteAsync(string key, CancellationToken cancellationToken)
    {
        // Deleting what is not there is not an error (the contract of a blob delete-if-exists).
        try { File.Delete(PathOf(key)); }
        catch (DirectoryNotFoundException) { }
        return Task.CompletedTask;
    }

    public Task DeletePrefixAsync(string prefix, CancellationToken cancellationToken)
    {
        string trimmed = prefix.TrimEnd('/');
        string path = PathOf(trimmed);
        if (prefix.EndsWith('/') && Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
            return Task.CompletedTask;
        }
        foreach (var o in ListAsync(prefix, cancellationToken).Result) File.Delete(PathOf(o.Key));
        return Task.CompletedTask;
    }

    public IDisposable? TryAcquireLock(string key)
    {
        string path = PathOf(key);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        try
        {
            // FileShare.None is an advisory flock on Unix: released by the kernel if the process dies.
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static class Native
    {
        [System.Runtime.InteropServices.DllImport("libc", SetLastError = true, EntryPoint = "link")]
        private static extern int link(string oldpath, string newpath);

        public static bool TryLink(string from, string to)
        {
            if (link(from, to) == 0) return true;
            int errno = System.Runtime.InteropServices.Marshal.GetLastPInvokeError();
            if (errno == 17 /* EEXIST */) return false;
            throw new IOException($"link('{to}') failed with errno {errno}.");
        }
    }
}
