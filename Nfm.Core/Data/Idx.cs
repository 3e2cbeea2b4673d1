using System.Buffers.Binary;
using System.IO.Compression;

namespace Nfm.Data;

/// <summary>Unsigned-byte images as an IDX file holds them: <paramref name="Count"/> images of Rows x Columns, row-major.</summary>
public sealed record IdxImages(int Count, int Rows, int Columns, byte[] Pixels)
{
    /// <summary>Check that the pixel buffer holds exactly Count x Rows x Columns bytes.</summary>
    /// <exception cref="ArgumentException">negative sizes or a pixel buffer of the wrong length.</exception>
    public void Validate()
    {
        if (Count < 0 || Rows < 0 || Columns < 0)
            throw new ArgumentException($"IDX images need non-negative sizes, got {Count} x {Rows} x {Columns}");
        if (Pixels is null || Pixels.LongLength != (long)Count * Rows * Columns)
            throw new ArgumentException($"IDX images: pixels must hold {(long)Count * Rows * Columns} bytes ({Count} x {Rows} x {Columns}), got {Pixels?.LongLength ?? 0}", nameof(Pixels));
    }
}

/// <summary>
/// The IDX format of the MNIST distribution: a big-endian header (magic, then one 32-bit size per dimension) and
/// unsigned bytes. Images have magic 2051 (0x00000803: ubyte, 3 dimensions), labels 2049 (0x00000801: ubyte, 1 dimension).
/// Files may be gzipped; the reader detects gzip by its magic bytes (1f 8b), not by the file name.
/// </summary>
public static class Idx
{
    /// <summary>Magic number of an image file (ubyte, count x rows x columns).</summary>
    public const int ImagesMagic = 2051;

    /// <summary>Magic number of a label file (ubyte, count).</summary>
    public const int LabelsMagic = 2049;

    /// <summary>Read an image file (gzipped or not).</summary>
    /// <exception cref="FileNotFoundException">no such file.</exception>
    /// <exception cref="InvalidDataException">wrong magic, truncated or over-long data, corrupt gzip.</exception>
    public static IdxImages ReadImages(string path)
    {
        var bytes = ReadBytes(path);
        CheckMagic(bytes, ImagesMagic, "images", path);
        if (bytes.Length < 16) throw new InvalidDataException($"{path}: truncated IDX images header: expected 16 bytes, found {bytes.Length}");
        int count = Size(bytes, 4, "count", path), rows = Size(bytes, 8, "rows", path), columns = Size(bytes, 12, "columns", path);
        var pixels = Body(bytes, 16, (long)count * rows * columns, $"{count} images of {rows} x {columns}", path);
        return new IdxImages(count, rows, columns, pixels);
    }

    /// <summary>Read a label file (gzipped or not).</summary>
    /// <exception cref="FileNotFoundException">no such file.</exception>
    /// <exception cref="InvalidDataException">wrong magic, truncated or over-long data, corrupt gzip.</exception>
    public static byte[] ReadLabels(string path)
    {
        var bytes = ReadBytes(path);
        CheckMagic(bytes, LabelsMagic, "labels", path);
        if (bytes.Length < 8) throw new InvalidDataException($"{path}: truncated IDX labels header: expected 8 bytes, found {bytes.Length}");
        int count = Size(bytes, 4, "count", path);
        return Body(bytes, 8, count, $"{count} labels", path);
    }

    /// <summary>Write an image file, gzipped when <paramref name="gzip"/>; atomic (temp file, then rename).</summary>
    public static void WriteImages(string path, IdxImages images, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(images);
        images.Validate();
        var header = new byte[16];
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(0), ImagesMagic);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), images.Count);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), images.Rows);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(12), images.Columns);
        WriteFile(path, header, images.Pixels, gzip);
    }

    /// <summary>Write a label file, gzipped when <paramref name="gzip"/>; atomic (temp file, then rename).</summary>
    public static void WriteLabels(string path, byte[] labels, bool gzip)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var header = new byte[8];
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(0), LabelsMagic);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), labels.Length);
        WriteFile(path, header, labels, gzip);
    }

    static void WriteFile(string path, byte[] header, byte[] body, bool gzip) =>
        AtomicFile.Write(path, stream =>
        {
            if (!gzip) { stream.Write(header); stream.Write(body); return; }
            using var z = new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true);
            z.Write(header);
            z.Write(body);
        });

    static byte[] ReadBytes(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such IDX file", path);
        var raw = File.ReadAllBytes(path);
        if (raw.Length < 2 || raw[0] != 0x1f || raw[1] != 0x8b) return raw;
        try
        {
            using var z = new GZipStream(new MemoryStream(raw), CompressionMode.Decompress);
            using var plain = new MemoryStream();
            z.CopyTo(plain);
            return plain.ToArray();
        }
        catch (InvalidDataException e) { throw new InvalidDataException($"{path}: corrupt gzip data ({e.Message})", e); }
        catch (EndOfStreamException e) { throw new InvalidDataException($"{path}: truncated gzip data", e); }
    }

    static void CheckMagic(byte[] bytes, int expected, string kind, string path)
    {
        if (bytes.Length < 4)
            throw new InvalidDataException($"{path}: truncated IDX {kind} file: {bytes.Length} bytes, not even a magic number");
        int found = BinaryPrimitives.ReadInt32BigEndian(bytes);
        if (found == expected) return;
        string hint = found switch
        {
            ImagesMagic => " (an IDX images file)",
            LabelsMagic => " (an IDX labels file)",
            _ => "",
        };
        throw new InvalidDataException($"{path}: wrong magic for IDX {kind}: expected {expected} (0x{expected:x8}), found {found} (0x{found:x8}){hint}");
    }

    static int Size(byte[] bytes, int at, string what, string path)
    {
        int v = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(at));
        if (v < 0) throw new InvalidDataException($"{path}: IDX header has a negative {what} ({v})");
        return v;
    }

    static byte[] Body(byte[] bytes, int offset, long expected, string what, string path)
    {
        long actual = bytes.LongLength - offset;
        if (actual < expected)
            throw new InvalidDataException($"{path}: truncated IDX data: expected {expected} bytes for {what}, found {actual}");
        if (actual > expected)
            throw new InvalidDataException($"{path}: {actual - expected} unexpected bytes after the data ({what})");
        return bytes.AsSpan(offset).ToArray();
    }
}
