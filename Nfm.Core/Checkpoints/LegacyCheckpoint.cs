using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Nfm.Checkpoints;

/// <summary>
/// Reads checkpoints of the previous layout, format version 1, for this version only (nothing writes it any more):
/// the 8 bytes <c>NFMCKPT1</c>, a little-endian int32 header length, the UTF-8 JSON header (<c>format</c>,
/// <c>kind</c>, <c>description</c>, <c>meta</c>, and per tensor its name, dtype, shape and byte count), the tensors'
/// raw bytes in header order, then the SHA-256 of everything before it.
/// </summary>
public static class LegacyCheckpoint
{
    static readonly byte[] Magic = "NFMCKPT1"u8.ToArray();
    const int HashBytes = 32;

    /// <summary>
    /// True when the stream starts with <c>NFMCKPT1</c>; throws <see cref="InvalidDataException"/> for another
    /// <c>NFMCKPT</c> version. Leaves the stream at its start.
    /// </summary>
    public static bool IsLegacy(Stream stream, string path)
    {
        stream.Position = 0;
        Span<byte> head = stackalloc byte[8];
        int got = stream.ReadAtLeast(head, 8, throwOnEndOfStream: false);
        stream.Position = 0;
        if (got < 8 || !head[..7].SequenceEqual(Magic.AsSpan(0, 7))) return false;
        if (head.SequenceEqual(Magic)) return true;
        throw new InvalidDataException(
            $"{path}: checkpoint format '{Encoding.ASCII.GetString(head)}' is not supported (this build reads safetensors checkpoints and the old NFMCKPT1)");
    }

    /// <summary>Reads and verifies an <c>NFMCKPT1</c> checkpoint, with the same errors as <see cref="Checkpoint.Load"/>.</summary>
    public static Checkpoint Read(Stream stream, string path, string? expectedKind)
    {
        long length = stream.Length;
        if (length < Magic.Length + 4 + HashBytes) throw new InvalidDataException($"{path}: checkpoint is truncated or altered (too short for NFMCKPT1)");
        long body = length - HashBytes;
        if (!BodyHash(stream, body).AsSpan().SequenceEqual(Trailer(stream, body)))
            throw new InvalidDataException($"{path}: checkpoint is truncated or altered (SHA-256 mismatch)");
        stream.Position = Magic.Length;
        Span<byte> lengthBytes = stackalloc byte[4];
        stream.ReadExactly(lengthBytes);
        int headerLength = BinaryPrimitives.ReadInt32LittleEndian(lengthBytes);
        if (headerLength <= 0 || Magic.Length + 4L + headerLength > body) throw new InvalidDataException($"{path}: checkpoint header is corrupt");
        var text = new byte[headerLength];
        stream.ReadExactly(text);
        var header = JsonNode.Parse(text)!.AsObject();
        int format = header["format"]!.GetValue<int>();
        if (format != 1) throw new InvalidDataException($"{path}: checkpoint format version {format} is not supported (this build reads 1 in the NFMCKPT1 layout)");
        var kind = header["kind"]!.GetValue<string>();
        if (expectedKind is not null && kind != expectedKind)
            throw new InvalidDataException($"{path}: is a {kind} checkpoint, expected a {expectedKind}");
        var meta = header["meta"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>());
        var entries = new List<SafetensorsEntry>();
        long dataStart = Magic.Length + 4L + headerLength, at = 0;
        foreach (var e in header["tensors"]!.AsArray())
        {
            var name = e!["name"]!.GetValue<string>();
            var dtype = DType(e["dtype"]!.GetValue<string>(), path);
            var shape = e["shape"]!.AsArray().Select(s => s!.GetValue<long>()).ToArray();
            long n = e["bytes"]!.GetValue<long>();
            if (dataStart + at + n > body) throw new InvalidDataException($"{path}: tensor '{name}' runs past the end of the file");
            if (checked(shape.Aggregate(1L, (a, s) => a * s) * SafetensorsFile.ElementSize(dtype)) != n)
                throw new InvalidDataException($"{path}: tensor '{name}' byte count {n} does not match its shape");
            entries.Add(new SafetensorsEntry(name, dtype, shape, at, at + n));
            at += n;
        }
        var tensors = SafetensorsFile.ReadTensors(stream, dataStart, entries, path);
        return new Checkpoint(kind, header["description"]!.DeepClone(), meta, tensors) { SourceFormatVersion = 1 };
    }

    static byte[] BodyHash(Stream stream, long body)
    {
        stream.Position = 0;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 20];
        for (long left = body; left > 0;)
        {
            int n = stream.Read(buffer, 0, (int)Math.Min(left, buffer.Length));
            if (n == 0) throw new EndOfStreamException();
            sha.AppendData(buffer, 0, n);
            left -= n;
        }
        return sha.GetHashAndReset();
    }

    static byte[] Trailer(Stream stream, long body)
    {
        stream.Position = body;
        var trailer = new byte[HashBytes];
        stream.ReadExactly(trailer);
        return trailer;
    }

    static ScalarType DType(string s, string path) => s switch
    {
        "float32" => ScalarType.Float32, "float64" => ScalarType.Float64, "int64" => ScalarType.Int64,
        "int32" => ScalarType.Int32, "uint8" => ScalarType.Byte, "bool" => ScalarType.Bool,
        _ => throw new InvalidDataException($"{path}: unknown tensor dtype '{s}'"),
    };
}
