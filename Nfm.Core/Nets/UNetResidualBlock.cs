using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Nfm.Nets;

/// <summary>
/// One residual block of the velocity U-Net: norm, activation, 3x3 conv; then the time (and class) embedding
/// modulates the second norm as a FiLM scale and shift; activation, 3x3 conv; plus the input (through a 1x1 conv
/// when the channel count changes). The second conv starts at zero, so a fresh block is the identity on its skip
/// path and training grows each block from there.
/// </summary>
public sealed class UNetResidualBlock : Module<Tensor, Tensor, Tensor>
{
    private readonly GroupNorm norm1;
    private readonly Conv2d conv1;
    private readonly Linear film;
    private readonly GroupNorm norm2;
    private readonly Conv2d conv2;
    private readonly Conv2d? skip;
    private readonly Func<Tensor, Tensor> activation;

    /// <summary>Channels this block reads.</summary>
    public long InChannels { get; }

    /// <summary>Channels this block writes.</summary>
    public long OutChannels { get; }

    /// <summary>A block from <paramref name="inChannels"/> to <paramref name="outChannels"/> channels, modulated by an
    /// embedding of <paramref name="embedding"/> features (already passed through the activation).</summary>
    public UNetResidualBlock(long inChannels, long outChannels, long embedding, Func<Tensor, Tensor> activation)
        : base("UNetResidualBlock")
    {
        (InChannels, OutChannels, this.activation) = (inChannels, outChannels, activation);
        norm1 = Norm(inChannels);
        conv1 = Conv2d(inChannels, outChannels, 3, padding: 1);
        film = Linear(embedding, 2 * outChannels);
        norm2 = Norm(outChannels);
        conv2 = Conv2d(outChannels, outChannels, 3, padding: 1);
        if (inChannels != outChannels) skip = Conv2d(inChannels, outChannels, 1);
        using (no_grad())
        {
            init.zeros_(conv2.weight);
            if (conv2.bias is not null) init.zeros_(conv2.bias);
        }
        RegisterComponents();
    }

    /// <summary>A GroupNorm over <paramref name="channels"/> (<see cref="Groups"/> groups) with its affine parameters set
    /// to the identity here: TorchSharp 0.107 was seen leaving them uninitialised (NaN in a fresh network).</summary>
    public static GroupNorm Norm(long channels)
    {
        var norm = GroupNorm(Groups(channels), channels);
        using (no_grad())
        {
            if (norm.weight is not null) init.ones_(norm.weight);
            if (norm.bias is not null) init.zeros_(norm.bias);
        }
        return norm;
    }

    /// <summary>Group count for a GroupNorm over <paramref name="channels"/>: the largest divisor up to 8, so that
    /// narrow test networks (a few channels) and the usual widths (multiples of 8) both work.</summary>
    public static long Groups(long channels)
    {
        for (long g = Math.Min(8, channels); g > 1; g--)
            if (channels % g == 0) return g;
        return 1;
    }

    /// <summary>h [N, InChannels, H, W] and the activated embedding e [N, embedding] to [N, OutChannels, H, W].</summary>
    public override Tensor forward(Tensor h, Tensor e)
    {
        using var scope = NewDisposeScope();
        // In a bfloat16 training step the convolutions run in bfloat16 and return float32 (MixedPrecision): GroupNorm
        // statistics, the FiLM modulation and the residual sum stay float32. The FiLM product is tiny (one row per
        // sample) and stays float32 too.
        var a = MixedPrecision.Conv2d(conv1, activation(norm1.call(h)));
        var ss = film.call(e).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
        var modulated = norm2.call(a) * (ss[0] + 1) + ss[1];
        var b = MixedPrecision.Conv2d(conv2, activation(modulated));
        var through = skip is null ? h : MixedPrecision.Conv2d(skip, h);
        return (through + b).MoveToOuterDisposeScope();
    }
}
