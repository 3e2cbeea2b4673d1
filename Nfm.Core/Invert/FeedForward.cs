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
    public override Tensor forward(Tensor x) => main.call(norm.call(x));
}
