using System.Security.Cryptography;
using static TorchSharp.torch;

namespace Nfm.Checkpoints;

/// <summary>
/// Identities of artefacts: SHA-256 (hex, the first 16 characters, lower case) of what makes them what they are.
/// Pair files, results and checkpoints record them, so that a mismatch (pairs of another teacher, FD of another
/// classifier, pairs of other data) is refused or shown.
/// </summary>
public static class Identity
{
    /// <summary>The identity of named tensors (each name's UTF-8 bytes, then its raw bytes on the CPU, in order),
    /// preceded by <paramref name="description"/> when given.</summary>
    public static string Of(string? description, IEnumerable<(string Name, Tensor Tensor)> named)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        if (description is not null) sha.AppendData(System.Text.Encoding.UTF8.GetBytes(description));
        foreach (var (name, t) in named)
        {
            sha.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            using var c = t.detach().cpu().contiguous();
            sha.AppendData(c.bytes);
        }
        return Hex(sha);
    }

    /// <summary>The identity of tensors' raw bytes on the CPU, in order (no names).</summary>
    public static string OfTensors(params Tensor[] tensors)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var t in tensors)
        {
            using var c = t.detach().cpu().contiguous();
            sha.AppendData(c.bytes);
        }
        return Hex(sha);
    }

    static string Hex(IncrementalHash sha) => Convert.ToHexString(sha.GetHashAndReset())[..16].ToLowerInvariant();
}
