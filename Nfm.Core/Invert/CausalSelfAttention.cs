using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// Pre-LayerNorm multi-head causal self-attention. Parameter names follow ml-tarflow (<c>norm</c>, <c>qkv</c>, <c>proj</c>);
/// the qkv output is read as 3 * heads groups of head_dim values: the first <c>heads</c> groups are the queries,
/// then the keys, then the values. Scores are scaled by 1/sqrt(head_dim).
/// </summary>
public sealed class CausalSelfAttention : nn.Module<Tensor, Tensor, Tensor>
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

    /// <summary>Queries, keys and values [N, heads, T, head_dim] of a token sequence [N, T, C].</summary>
    (Tensor Q, Tensor K, Tensor V) Project(Tensor x)
    {
        var (n, t) = (x.shape[0], x.shape[1]);
        var parts = qkv.call(norm.call(x)).view(n, t, 3 * heads, headDim).transpose(1, 2).chunk(3, 1);
        return (parts[0], parts[1], parts[2]);
    }

    /// <summary>Attention of queries over keys and values, back to [N, T, C] and through the output projection.</summary>
    Tensor Attend(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        var scores = q.matmul(k.transpose(-2, -1)) * (1.0 / Math.Sqrt(headDim));
        if (mask is not null) scores = scores.masked_fill(mask.eq(0), double.NegativeInfinity);
        var mixed = scores.softmax(-1).matmul(v);
        var (n, t) = (q.shape[0], q.shape[2]);
        return proj.call(mixed.transpose(1, 2).reshape(n, t, heads * headDim));
    }

    /// <summary>Full pass over [N, T, C]; <paramref name="mask"/> [T, T] is 1 where a query may see a key (causal: lower triangle).</summary>
    public override Tensor forward(Tensor x, Tensor mask)
    {
        var (q, k, v) = Project(x);
        return Attend(q, k, v, mask);
    }

    /// <summary>One decoding step: the newest token [N, 1, C] attends to itself and to every token in <paramref name="cache"/>.</summary>
    public Tensor Step(Tensor token, KeyValueCache cache, int layer)
    {
        var (q, k, v) = Project(token);
        var (keys, values) = cache.Append(layer, k, v);
        return Attend(q, keys, values, null);
    }
}
