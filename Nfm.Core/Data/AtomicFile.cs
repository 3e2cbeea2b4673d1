namespace Nfm.Data;

/// <summary>
/// Writes a file so that readers see either the old content or the complete new content, never a part:
/// the bytes go to a temporary file in the same folder (same file system, so the rename is atomic), which is
/// then renamed over the target. A failed write leaves an existing file untouched and removes the temporary file.
/// </summary>
public static class AtomicFile
{
    /// <summary>Write a file atomically; <paramref name="write"/> fills the stream.</summary>
    /// <exception cref="DirectoryNotFoundException">the target's folder does not exist.</exception>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        var folder = Path.GetDirectoryName(full) ?? ".";
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"{path}: cannot write, folder '{folder}' does not exist");
        var temp = Path.Combine(folder, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(temp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Write bytes atomically.</summary>
    public static void WriteAllBytes(string path, ReadOnlyMemory<byte> bytes) =>
        Write(path, s => s.Write(bytes.Span));
}
