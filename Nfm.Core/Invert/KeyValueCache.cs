using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// Keys and values of the tokens already decoded, one list per transformer layer of one block, so that each
/// sequential decoding step runs only the new token through the block. The cache owns its tensors (they live
/// outside any dispose scope, since they outlive the step that made them): dispose it when the block is decoded.
/// </summary>
public sealed class KeyValueCache : IDisposable
{
    readonly List<Tensor>[] keys;
    readonly List<Tensor>[] values;

    /// <summary>An empty cache for a block of <paramref name="layers"/> layers.</summary>
    public KeyValueCache(int layers)
    {
        keys = Enumerable.Range(0, layers).Select(_ => new List<Tensor>()).ToArray();
        values = Enumerable.Range(0, layers).Select(_ => new List<Tensor>()).ToArray();
    }

    /// <summary>Tokens run through the block so far (counted by <see cref="Advance"/>, so also without layers).</summary>
    public int Length { get; private set; }

    /// <summary>Marks the end of one token's step through every layer.</summary>
    public void Advance() => Length++;

    /// <summary>
    /// Appends one token's key and value [N, heads, 1, head_dim] for <paramref name="layer"/> and returns all keys
    /// and values so far [N, heads, t, head_dim] (those two belong to the caller's dispose scope).
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor key, Tensor value)
    {
        keys[layer].Add(key.DetachFromDisposeScope());
        values[layer].Add(value.DetachFromDisposeScope());
        return (cat(keys[layer], 2), cat(values[layer], 2));
    }

    /// <summary>Frees every cached tensor.</summary>
    public void Dispose()
    {
        foreach (var list in keys.Concat(values))
        {
            foreach (var t in list) t.Dispose();
            list.Clear();
        }
    }
}
