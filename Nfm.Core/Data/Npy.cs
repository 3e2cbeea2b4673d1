using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Data;

/// <summary>What a .npy header says: the element type, the shape, the format version and where the data starts.</summary>
/// <param name="Descr">NumPy's type string as found, e.g. "&lt;f4".</param>
/// <param name="DType">The matching tensor element type.</param>
/// <param name="Shape">The array's shape (empty for a scalar).</param>
/// <param name="Version">Format version, e.g. "1.0".</param>
/// <param name="DataOffset">Byte offset of the first element.</param>
public sealed record NpyHeader(string Descr, ScalarType DType, long[] Shape, string Version, long DataOffset)
{
    /// <summary>Number of elements (product of the shape).</summary>
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Bytes one element takes.</summary>
    public int ItemSize => Npy.ItemSize(DType);
}

/// <summary>
/// NumPy's .npy array files: little-endian, C order, format versions 1.0, 2.0 and 3.0, any rank.
/// Element types: float32, float64, float16, int64, int32, int16, int8, uint8, bool.
/// Every problem with a file is an exception whose one-line message names the file and the problem.
/// </summary>
public static class Npy
{
    static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    // NumPy type code (without the byte-order character) <-> tensor element type.
    static readonly (string Code, ScalarType Type, int Size)[] Types =
    [
        ("f4", ScalarType.Float32, 4), ("f8", ScalarType.Float64, 8), ("f2", ScalarType.Float16, 2),
        ("i8", ScalarType.Int64, 8), ("i4", ScalarType.Int32, 4), ("i2", ScalarType.Int16, 2),
        ("i1", ScalarType.Int8, 1), ("u1", ScalarType.Byte, 1), ("b1", ScalarType.Bool, 1),
    ];

    /// <summary>Bytes one element of <paramref name="dtype"/> takes in a .npy file.</summary>
    /// <exception cref="ArgumentException">the type has no .npy equivalent here.</exception>
    public static int ItemSize(ScalarType dtype)
    {
        foreach (var t in Types) if (t.Type == dtype) return t.Size;
        throw new ArgumentException($"element type {dtype} cannot be stored in .npy here (supported: {SupportedNames})", nameof(dtype));
    }

    static string SupportedNames => string.Join(", ", Types.Select(t => t.Type.ToString().ToLowerInvariant()));

    /// <summary>Read a .npy file into a CPU tensor of the file's element type and shape.</summary>
    /// <exception cref="FileNotFoundException">no such file.</exception>
    /// <exception cref="InvalidDataException">bad magic, unsupported type, Fortran order, big-endian, malformed header, truncated or over-long data.</exception>
    public static Tensor Read(string path)
    {
        using var stream = OpenRead(path);
        var header = ReadHeader(stream, path);
        long expected = header.Count * header.ItemSize;
        long actual = stream.Length - header.DataOffset;
        if (actual < expected)
            throw new InvalidDataException($"{path}: truncated data: expected {expected} bytes for shape {ShapeText(header.Shape)} of {header.Descr}, found {actual}");
        if (actual > expected)
            throw new InvalidDataException($"{path}: {actual - expected} unexpected bytes after the data (expected {expected} bytes for shape {ShapeText(header.Shape)} of {header.Descr})");
        if (expected > Array.MaxLength)
            throw new InvalidDataException($"{path}: data of {expected} bytes is larger than the 2 GiB this reader supports");
        var result = torch.empty(header.Shape, header.DType);
        var bytes = new byte[expected];
        stream.Position = header.DataOffset;
        stream.ReadExactly(bytes);
        bytes.AsSpan().CopyTo(result.bytes);
        return result;
    }

    /// <summary>Read a .npy file of any supported numeric type and convert it to float32.</summary>
    /// <exception cref="InvalidDataException">also for a bool array: truth values are not coordinates.</exception>
    public static Tensor ReadFloat32(string path)
    {
        var t = Read(path);
        if (t.dtype == ScalarType.Float32) return t;
        if (t.dtype == ScalarType.Bool)
        {
            t.Dispose();
            throw new InvalidDataException($"{path}: holds bool values, expected numbers (float32 or float64)");
        }
        using (t) return t.to_type(ScalarType.Float32);
    }

    /// <summary>Read only the header of a .npy file (type, shape, version).</summary>
    public static NpyHeader ReadHeader(string path)
    {
        using var stream = OpenRead(path);
        return ReadHeader(stream, path);
    }

    /// <summary>
    /// Write a tensor as a .npy file (version 1.0, or 2.0 when the header needs it), little-endian, C order.
    /// The write is atomic: an existing file is replaced only once the new one is complete.
    /// </summary>
    /// <exception cref="ArgumentException">the element type has no .npy equivalent.</exception>
    /// <exception cref="DirectoryNotFoundException">the folder of <paramref name="path"/> does not exist.</exception>
    public static void Write(string path, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var code = Types.FirstOrDefault(t => t.Type == tensor.dtype).Code
            ?? throw new ArgumentException($"{path}: element type {tensor.dtype} cannot be stored in .npy here (supported: {SupportedNames})", nameof(tensor));
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("writing .npy needs a little-endian machine");
        var order = code is "u1" or "i1" or "b1" ? '|' : '<';
        var header = HeaderBytes($"{order}{code}", tensor.shape);
        using var cpu = tensor.detach().cpu().contiguous();
        AtomicFile.Write(path, s =>
        {
            s.Write(header);
            s.Write(cpu.bytes);
        });
    }

    static FileStream OpenRead(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: no such .npy file", path);
        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
    }

    static string ShapeText(long[] shape) => "(" + string.Join(", ", shape) + (shape.Length == 1 ? ",)" : ")");

    // Header layout: magic (6), major (1), minor (1), header length (2 bytes for 1.0, 4 for 2.0/3.0), then a
    // Python dict literal padded with spaces and ending in '\n', so that the data starts at a multiple of 64.
    static byte[] HeaderBytes(string descr, long[] shape)
    {
        var dict = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {ShapeText(shape)}, }}";
        foreach (var (major, prefix) in new[] { (1, 10), (2, 12) })
        {
            int total = prefix + dict.Length + 1;
            int padded = (total + 63) / 64 * 64;
            int length = padded - prefix;
            if (major == 1 && length > ushort.MaxValue) continue;
            var bytes = new byte[padded];
            Magic.CopyTo(bytes, 0);
            bytes[6] = (byte)major;
            bytes[7] = 0;
            if (major == 1) BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(8), (ushort)length);
            else BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(8), (uint)length);
            var text = dict.PadRight(length - 1) + "\n";
            Encoding.ASCII.GetBytes(text, bytes.AsSpan(prefix));
            return bytes;
        }
        throw new InvalidOperationException("unreachable: version 2.0 headers hold 4 GiB");
    }

    static NpyHeader ReadHeader(FileStream stream, string path)
    {
        Span<byte> start = stackalloc byte[8];
        if (stream.ReadAtLeast(start, 8, throwOnEndOfStream: false) < 8 || !start[..6].SequenceEqual(Magic))
            throw new InvalidDataException($"{path}: not a .npy file (bad magic: expected \\x93NUMPY, found {Printable(start[..(int)Math.Min(6, stream.Length)])})");
        int major = start[6], minor = start[7];
        if (major is not (1 or 2 or 3))
            throw new InvalidDataException($"{path}: unsupported .npy format version {major}.{minor} (supported: 1.0, 2.0, 3.0)");
        int lengthSize = major == 1 ? 2 : 4;
        Span<byte> lengthBytes = stackalloc byte[4];
        if (stream.ReadAtLeast(lengthBytes[..lengthSize], lengthSize, throwOnEndOfStream: false) < lengthSize)
            throw new InvalidDataException($"{path}: truncated .npy header");
        long headerLength = major == 1 ? BinaryPrimitives.ReadUInt16LittleEndian(lengthBytes) : BinaryPrimitives.ReadUInt32LittleEndian(lengthBytes);
        long offset = 8 + lengthSize + headerLength;
        if (offset > stream.Length)
            throw new InvalidDataException($"{path}: truncated .npy header: expected {headerLength} header bytes, found {stream.Length - 8 - lengthSize}");
        if (headerLength > 1 << 20)
            throw new InvalidDataException($"{path}: malformed .npy header: header length {headerLength} is implausibly large");
        var raw = new byte[headerLength];
        stream.ReadExactly(raw);
        string text;
        try { text = (major == 3 ? new UTF8Encoding(false, true) : Encoding.Latin1).GetString(raw); }
        catch (DecoderFallbackException) { throw new InvalidDataException($"{path}: malformed .npy header: not valid UTF-8"); }

        var dict = HeaderDict.Parse(text, path);
        if (!dict.TryGetValue("descr", out var descrValue) || descrValue is not string descr)
            throw new InvalidDataException($"{path}: unsupported dtype: the header's 'descr' is not a plain type string ({Snippet(text)})");
        if (!dict.TryGetValue("fortran_order", out var fortranValue) || fortranValue is not bool fortran)
            throw new InvalidDataException($"{path}: malformed .npy header: no boolean 'fortran_order' ({Snippet(text)})");
        if (!dict.TryGetValue("shape", out var shapeValue) || shapeValue is not long[] shape)
            throw new InvalidDataException($"{path}: malformed .npy header: no tuple 'shape' ({Snippet(text)})");
        if (fortran)
            throw new InvalidDataException($"{path}: Fortran-order arrays are not supported; save with C order (np.ascontiguousarray)");
        if (shape.Any(d => d < 0))
            throw new InvalidDataException($"{path}: malformed .npy header: negative dimension in shape {ShapeText(shape)}");

        var (type, size) = ParseDescr(descr, path);
        // Guard the element count against overflow before anyone multiplies.
        long count = 1;
        foreach (var d in shape)
            if (d != 0 && count > long.MaxValue / d / size)
                throw new InvalidDataException($"{path}: malformed .npy header: shape {ShapeText(shape)} is too large");
            else count *= d;
        return new NpyHeader(descr, type, shape, $"{major}.{minor}", offset);
    }

    static (ScalarType, int) ParseDescr(string descr, string path)
    {
        if (descr.Length >= 2)
        {
            char order = descr[0];
            var code = descr[1..];
            foreach (var t in Types)
            {
                if (t.Code != code) continue;
                bool bigEndian = order == '>' || order == '!' || (order == '=' && !BitConverter.IsLittleEndian);
                if (bigEndian && t.Size > 1)
                    throw new InvalidDataException($"{path}: big-endian data ('{descr}') is not supported; save little-endian (arr.astype('<{code}'))");
                if (order is '<' or '>' or '|' or '=' or '!') return (t.Type, t.Size);
            }
        }
        throw new InvalidDataException($"{path}: unsupported dtype '{descr}' (supported: {string.Join(", ", Types.Select(t => "<" + t.Code))})");
    }

    static string Printable(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder();
        foreach (var b in bytes) sb.Append(b is >= 0x20 and < 0x7f && b != '\\' ? ((char)b).ToString() : $"\\x{b:x2}");
        return sb.Length == 0 ? "nothing" : sb.ToString();
    }

    static string Snippet(string text)
    {
        var s = text.Trim().ReplaceLineEndings(" ");
        return s.Length <= 80 ? s : s[..77] + "...";
    }

    /// <summary>The small Python dict literal of a .npy header: string keys; string, bool or int-tuple values.</summary>
    static class HeaderDict
    {
        public static Dictionary<string, object> Parse(string text, string path)
        {
            int i = 0;
            var result = new Dictionary<string, object>();
            InvalidDataException Bad(string what) =>
                new($"{path}: malformed .npy header: {what} at character {i} ({Snippet(text)})");
            void Skip() { while (i < text.Length && char.IsWhiteSpace(text[i])) i++; }
            bool Take(char c) { Skip(); if (i < text.Length && text[i] == c) { i++; return true; } return false; }
            string Str()
            {
                Skip();
                if (i >= text.Length || (text[i] != '\'' && text[i] != '"')) throw Bad("expected a quoted string");
                char q = text[i++];
                int end = text.IndexOf(q, i);
                if (end < 0) throw Bad("unterminated string");
                var s = text[i..end];
                i = end + 1;
                return s;
            }
            long Int()
            {
                Skip();
                int s = i;
                while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
                if (s == i || !long.TryParse(text.AsSpan(s, i - s), NumberStyles.None, CultureInfo.InvariantCulture, out var v))
                    throw Bad("expected a dimension");
                if (i < text.Length && text[i] == 'L') i++; // Python 2 long literal
                return v;
            }
            object Value()
            {
                Skip();
                if (i >= text.Length) throw Bad("missing value");
                if (text[i] is '\'' or '"') return Str();
                if (text.AsSpan(i).StartsWith("True")) { i += 4; return true; }
                if (text.AsSpan(i).StartsWith("False")) { i += 5; return false; }
                if (text[i] == '(')
                {
                    i++;
                    var dims = new List<long>();
                    while (!Take(')'))
                    {
                        dims.Add(Int());
                        if (!Take(',')) { if (!Take(')')) throw Bad("expected ',' or ')' in the shape"); break; }
                    }
                    return dims.ToArray();
                }
                if (text[i] == '[') throw new InvalidDataException($"{path}: unsupported dtype: structured (record) arrays are not supported ({Snippet(text)})");
                throw Bad("unexpected value");
            }

            if (!Take('{')) throw Bad("expected '{'");
            while (!Take('}'))
            {
                var key = Str();
                if (!Take(':')) throw Bad("expected ':'");
                result[key] = Value();
                if (!Take(',')) { if (!Take('}')) throw Bad("expected ',' or '}'"); break; }
            }
            Skip();
            if (i != text.Length) throw Bad("unexpected text after the dict");
            return result;
        }
    }
}
