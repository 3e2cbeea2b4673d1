using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// Pre-LayerNorm multi-head causal self-attention. Parameter names follow ml-tarflow (<c>norm</c>, <c>qkv</c>, <c>proj</c>);
/// the qkv output is read as 3 * heads groups of head_dim values: the first <c>heads</c> groups are the queries,
/// then the keys, then the values. Scores are scaled by 1/sqrt(head_dim). The attention itself is libtorch's fused
/// scaled_dot_product_attention (no score matrix, mask or softmax built op by op in managed code), except in a
/// bfloat16 training step (see <see cref="MixedPrecision.CausalAttention"/>).
/// </summary>
public sealed class CausalSelfAttention : nn.Module<Tensor, Tensor>
{
    // Field names are the state_dict names (TorchSharp registers fields by name), hence ml-tarflow's snake_case.
    readonly LayerNorm norm;
    readonly Linear qkv;
    readonly Linear proj;
    readonly long heads;
    readonly long headDim;

    /// <summary>Attention over <paramref name="width"/> channels in heads of <paramref name="headDim"/> channels.</summary>
    public CausalSelfAttention(long width, long headDim) : base(nameof(CausalSelfAttention))
    {
        if (headDim < 1 || width % headDim != 0)
            throw new ArgumentException($"width {width} must be divisible by headDim {headDim}", nameof(headDim));
        this.headDim = headDim;
        heads = width / headDim;
        norm = nn.LayerNorm(width, eps: 1e-5);
        qkv = nn.Linear(width, 3 * width);
        proj = nn.Linear(width, width);
        RegisterComponents();
    }

    /// <summary>Queries, keys and values [N, heads, T, head_dim] of a token sequence [N, T, C]: views of one qkv product.</summary>
    (Tensor Q, Tensor K, Tensor V) Project(Tensor x)
    {
        var (n, t) = (x.shape[0], x.shape[1]);
        // In a bfloat16 training step the queries, keys and values stay bfloat16: they only feed the attention's own
        // products (its softmax runs in float32). LayerNorm stays float32.
        var parts = MixedPrecision.Linear(qkv, norm.call(x), keepLow: true).view(n, t, 3, heads, headDim).permute(2, 0, 3, 1, 4).unbind(0);
        return (parts[0], parts[1], parts[2]);
    }

    /// <summary>
    /// The values [N, 1, C] of a single token, which is all its attention returns: it attends only to itself, with
    /// softmax weight exactly 1 (so queries and keys are not computed; the 2-D teacher's context is one token).
    /// </summary>
    Tensor Values(Tensor x)
    {
        long width = heads * headDim;
        var weight = qkv.get_parameter("weight")!.narrow(0, 2 * width, width);
        var bias = qkv.get_parameter("bias")!.narrow(0, 2 * width, width);
        return MixedPrecision.Linear(norm.call(x), weight, bias, keepLow: true);
    }

    /// <summary>Attention [N, heads, T, head_dim] back to [N, T, C] and through the output projection.</summary>
    /// In a bfloat16 step the projection reads the bfloat16 attention and returns float32 for the residual sum.
    Tensor Merge(Tensor mixed) =>
        MixedPrecision.Linear(proj, mixed.transpose(1, 2).reshape(mixed.shape[0], mixed.shape[2], heads * headDim));

    /// <summary>Full causal pass over [N, T, C]: token t attends to tokens 0..t (the lower-triangle mask of ml-tarflow).</summary>
    public override Tensor forward(Tensor x)
    {
        if (x.shape[1] == 1) return MixedPrecision.Linear(proj, Values(x));
        var (q, k, v) = Project(x);
        return Merge(MixedPrecision.CausalAttention(q, k, v));
    }

    /// <summary>One decoding step: the newest token [N, 1, C] attends to itself and to every token in <paramref name="cache"/>.</summary>
    public Tensor Step(Tensor token, KeyValueCache cache, int layer)
    {
        var (q, k, v) = Project(token);
        var (keys, values) = cache.Append(layer, k, v);
        // One query over all cached keys: nothing to mask (a causal flag would align the query with the first key).
        return Merge(nn.functional.scaled_dot_product_attention(q, keys, values));
    }
}
