using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// Pre-LayerNorm MLP: LayerNorm, expand by <c>expansion</c>, exact (erf) GELU, contract. Parameter names follow
/// ml-tarflow: <c>norm</c>, <c>main.0</c> (expand), <c>main.2</c> (contract); <c>main.1</c> is the GELU.
/// </summary>
public sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    // Field names are the state_dict names (TorchSharp registers fields by name), hence ml-tarflow's snake_case.
    readonly LayerNorm norm;
    readonly Sequential main;

    /// <summary>An MLP on <paramref name="width"/> channels with hidden width <paramref name="expansion"/> * width.</summary>
    public FeedForward(long width, long expansion) : base(nameof(FeedForward))
    {
        norm = nn.LayerNorm(width, eps: 1e-5);
        main = nn.Sequential(
            nn.Linear(width, width * expansion),
            nn.GELU(),
            nn.Linear(width * expansion, width));
        RegisterComponents();
    }

    /// <inheritdoc />
    /// <remarks>In a bfloat16 training step both products and the GELU between them run in bfloat16 (the hidden
    /// layer is the widest activation: keeping it bfloat16 halves its memory traffic); LayerNorm and the result, which
    /// goes into the float32 residual sum, are float32.</remarks>
    public override Tensor forward(Tensor x) => MixedPrecision.Sequential(main, norm.call(x));
}
