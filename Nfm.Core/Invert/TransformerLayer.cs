using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// One residual transformer layer: x + attention(x), then + mlp(x). Named <c>attention</c> and <c>mlp</c>
/// as in ml-tarflow's AttentionBlock.
/// </summary>
public sealed class TransformerLayer : nn.Module<Tensor, Tensor>
{
    // Field names are the state_dict names (TorchSharp registers fields by name), hence ml-tarflow's snake_case.
    readonly CausalSelfAttention attention;
    readonly FeedForward mlp;

    /// <summary>A layer of <paramref name="width"/> channels.</summary>
    public TransformerLayer(long width, long headDim, long expansion) : base(nameof(TransformerLayer))
    {
        attention = new CausalSelfAttention(width, headDim);
        mlp = new FeedForward(width, expansion);
        RegisterComponents();
    }

    /// <summary>Full causal pass over [N, T, C].</summary>
    public override Tensor forward(Tensor x)
    {
        var h = x + attention.call(x);
        return h + mlp.call(h);
    }

    /// <summary>One decoding step for the newest token [N, 1, C], using and extending the block's cache.</summary>
    public Tensor Step(Tensor token, KeyValueCache cache, int layer)
    {
        var h = token + attention.Step(token, cache, layer);
        return h + mlp.call(h);
    }
}
