using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// Keys and values of the tokens already decoded, per transformer layer of one block, so that each sequential
/// decoding step runs only the new token through the block. Each layer's keys and values live in one tensor
/// [N, heads, capacity, head_dim], allocated at the first step and written in place one token at a time (no
/// concatenation per step). The cache owns its tensors (they outlive the steps that fill them, so they live outside
/// any dispose scope): dispose it when the block is decoded. Writes are in place, so decoding through a cache carries
/// no autograd graph: run it under no_grad.
/// </summary>
public sealed class KeyValueCache : IDisposable
{
    readonly Tensor?[] keys;
    readonly Tensor?[] values;

    /// <summary>An empty cache for a block of <paramref name="layers"/> layers, with room for <paramref name="capacity"/> tokens.</summary>
    public KeyValueCache(int layers, long capacity)
    {
        if (layers < 0) throw new ArgumentException($"layers must be >= 0, got {layers}", nameof(layers));
        if (capacity < 0) throw new ArgumentException($"capacity must be >= 0, got {capacity}", nameof(capacity));
        keys = new Tensor?[layers];
        values = new Tensor?[layers];
        Capacity = capacity;
    }

    /// <summary>Tokens the cache has room for.</summary>
    public long Capacity { get; }

    /// <summary>Tokens run through the block so far (counted by <see cref="Advance"/>, so also without layers).</summary>
    public int Length { get; private set; }

    /// <summary>Marks the end of one token's step through every layer.</summary>
    public void Advance()
    {
        if (Length >= Capacity) throw new InvalidOperationException($"the cache is full ({Capacity} tokens)");
        Length++;
    }

    /// <summary>
    /// Writes one token's key and value [N, heads, 1, head_dim] for <paramref name="layer"/> at position
    /// <see cref="Length"/> and returns all keys and values so far [N, heads, Length + 1, head_dim]: views of the
    /// cache that belong to the caller's dispose scope (the cache's storage stays with the cache).
    /// </summary>
    public (Tensor Keys, Tensor Values) Append(int layer, Tensor key, Tensor value)
    {
        if (Length >= Capacity) throw new InvalidOperationException($"the cache is full ({Capacity} tokens)");
        if (key.dim() != 4 || key.shape[2] != 1 || !key.shape.SequenceEqual(value.shape))
            throw new ArgumentException(
                $"expected key and value [N, heads, 1, head_dim], got {Shapes.Show(key.shape)} and {Shapes.Show(value.shape)}", nameof(key));
        var k = keys[layer] ??= Storage(key);
        var v = values[layer] ??= Storage(value);
        if (!k.shape.AsSpan(0, 2).SequenceEqual(key.shape.AsSpan(0, 2)) || k.shape[3] != key.shape[3])
            throw new ArgumentException(
                $"key {Shapes.Show(key.shape)} does not fit the cache {Shapes.Show(k.shape)}", nameof(key));
        k.narrow(2, Length, 1).copy_(key);
        v.narrow(2, Length, 1).copy_(value);
        return (k.narrow(2, 0, Length + 1), v.narrow(2, 0, Length + 1));
    }

    /// <summary>Room for Capacity tokens shaped like <paramref name="like"/> [N, heads, 1, head_dim], owned by the cache.</summary>
    Tensor Storage(Tensor like) =>
        empty([like.shape[0], like.shape[1], Capacity, like.shape[3]], dtype: like.dtype, device: like.device).DetachFromDisposeScope();

    /// <summary>Frees every cached tensor.</summary>
    public void Dispose()
    {
        for (int l = 0; l < keys.Length; l++)
        {
            keys[l]?.Dispose(); keys[l] = null;
            values[l]?.Dispose(); values[l] = null;
        }
    }
}
