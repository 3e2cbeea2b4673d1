using Nfm.Descriptions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Nfm.Nets;

/// <summary>
/// A small convolutional U-Net velocity network v(x, t [, c]) for images [C, H, W].
/// <see cref="VelocityNetSpec.Depth"/> is the number of resolutions: each step down halves H and W with a strided conv,
/// so both must be divisible by 2^(Depth - 1) (MNIST 28 x 28 takes Depth up to 3: 28, 14, 7).
/// <see cref="VelocityNetSpec.Width"/> is the channel count at full resolution, x2 at the next and x4 at all deeper
/// ones: a halving of H and W then costs about as much as the level above it, so capacity goes where it is cheap.
/// Layout: 3x3 stem conv; on the way down one <see cref="UNetResidualBlock"/> per resolution, whose output is kept as a
/// skip; one block at the lowest resolution; on the way up one block per resolution reading the nearest-neighbour
/// upsampled coarser features next to that resolution's skip (no separate conv at the finer resolution, which would
/// cost as much as a block); norm, activation and a zero-initialised 3x3 output conv, so a fresh network predicts zero
/// velocity. The time's sinusoidal features go through a two-layer MLP (4 x Width features); when
/// <see cref="VelocityNetSpec.Classes"/> &gt; 0 a learned class embedding (Classes + 1 rows, the last the null label)
/// is added to it; every block receives that embedding as a FiLM scale and shift.
/// Submodules run through <c>call</c>, so forward hooks (e.g. a FLOP counter) see them.
/// The network is fully convolutional: it accepts any H and W divisible by 2^(Depth - 1), not only the spec's.
/// </summary>
public sealed class VelocityUNet : Module<Tensor, Tensor, Tensor?, Tensor>
{
    private readonly VelocityNetSpec spec;
    private readonly Linear timeIn;
    private readonly Linear timeOut;
    private readonly Embedding? classEmbed;
    private readonly Conv2d stem;
    private readonly ModuleList<UNetResidualBlock> down;
    private readonly ModuleList<Conv2d> downsample;
    private readonly UNetResidualBlock middle;
    private readonly ModuleList<UNetResidualBlock> up;
    private readonly GroupNorm outNorm;
    private readonly Conv2d outConv;
    private readonly Func<Tensor, Tensor> activation;

    /// <summary>Builds the network described by <paramref name="spec"/> (Architecture UNet, InputShape [C, H, W]).</summary>
    public VelocityUNet(VelocityNetSpec spec) : base("VelocityUNet")
    {
        this.spec = spec.Validate();
        if (spec.InputShape.Length != 3)
            throw new ArgumentException($"net.inputShape must be [C, H, W] for the U-Net, got {Shapes.Show(spec.InputShape)}", nameof(spec));
        long c = spec.InputShape[0], h = spec.InputShape[1], w = spec.InputShape[2];
        if (h % Factor != 0 || w % Factor != 0)
            throw new ArgumentException(
                $"net.inputShape [{c}, {h}, {w}]: H and W must be divisible by 2^(net.depth - 1) = {Factor} for net.depth {spec.Depth}", nameof(spec));
        activation = Activate(spec.Activation);

        long emb = 4L * spec.Width;
        timeIn = Linear(spec.TimeFeatures, emb);
        timeOut = Linear(emb, emb);
        if (spec.Classes > 0) classEmbed = Embedding(spec.Classes + 1, emb);

        stem = Conv2d(c, Channels(0), 3, padding: 1);
        down = new ModuleList<UNetResidualBlock>();
        downsample = new ModuleList<Conv2d>();
        long prev = Channels(0);
        for (int l = 0; l < spec.Depth; l++)
        {
            down.Add(new UNetResidualBlock(prev, Channels(l), emb, activation));
            prev = Channels(l);
            if (l < spec.Depth - 1) downsample.Add(Conv2d(prev, prev, 3, stride: 2, padding: 1));
        }
        middle = new UNetResidualBlock(prev, prev, emb, activation);
        up = new ModuleList<UNetResidualBlock>();
        // up[i] serves resolution Depth - 1 - i: it reads the coarser features (upsampled) next to that resolution's skip.
        for (int l = spec.Depth - 1; l >= 0; l--)
        {
            up.Add(new UNetResidualBlock(prev + Channels(l), Channels(l), emb, activation));
            prev = Channels(l);
        }
        outNorm = UNetResidualBlock.Norm(prev);
        outConv = Conv2d(prev, c, 3, padding: 1);
        using (no_grad())
        {
            init.zeros_(outConv.weight);
            if (outConv.bias is not null) init.zeros_(outConv.bias);
        }
        RegisterComponents();
    }

    /// <summary>
    /// Width and depth recommended for MNIST (1 x 28 x 28) on a CPU: 0.38 M parameters, 35 M multiply-adds per image
    /// (channels 16, 32, 64 at 28, 14, 7), about 13.6 GFLOP per training step at batch 64. Width 32 (1.5 M parameters,
    /// 4 x the cost) is the choice when training time matters less than quality. See <c>Nfm.Bench.StudentNetBenchmark</c>.
    /// </summary>
    public static readonly (int Width, int Depth) MnistCpu = (16, 3);

    /// <summary>The description this network was built from.</summary>
    public VelocityNetSpec Spec => spec;

    /// <summary>How much H and W shrink at the lowest resolution: 2^(Depth - 1).</summary>
    public long Factor => 1L << (spec.Depth - 1);

    /// <summary>Channels at resolution <paramref name="level"/> (0 = full): Width, 2 x Width, then 4 x Width below.</summary>
    public long Channels(int level) => (long)spec.Width << Math.Min(level, 2);

    private static Func<Tensor, Tensor> Activate(Activation a) => a switch
    {
        Activation.Silu => x => functional.silu(x),
        Activation.Gelu => x => functional.gelu(x),
        Activation.Relu => x => functional.relu(x),
        Activation.Tanh => x => x.tanh(),
        _ => throw new ArgumentException($"unknown activation {a}"),
    };

    /// <summary>v(x, t, labels): x [N, C, H, W] (H, W divisible by 2^(Depth - 1)), t [N], labels [N] in [0, Classes]
    /// or null (= the null class). Labels are ignored by an unconditional network.</summary>
    public override Tensor forward(Tensor x, Tensor t, Tensor? labels)
    {
        Check(x, t, labels);
        using var scope = NewDisposeScope();
        long n = x.shape[0];
        var e = timeOut.call(activation(timeIn.call(SinusoidalTimeEmbedding.Embed(t.to(x.dtype), spec.TimeFeatures))));
        if (classEmbed is not null)
        {
            var lab = VelocityNets.EmbeddingIndex(labels, n, spec.Classes, x.device);
            e = e + classEmbed.call(lab).to(x.dtype);
        }
        e = activation(e);

        // Convolutions in bfloat16 inside a bfloat16 training step (MixedPrecision); the time MLP (one row per
        // sample, a fraction of a percent of the products) and every norm stay float32.
        var h = MixedPrecision.Conv2d(stem, x);
        var skips = new List<Tensor>(spec.Depth);
        for (int l = 0; l < spec.Depth; l++)
        {
            h = down[l].call(h, e);
            skips.Add(h);
            if (l < spec.Depth - 1) h = MixedPrecision.Conv2d(downsample[l], h);
        }
        h = middle.call(h, e);
        for (int i = 0; i < spec.Depth; i++)
        {
            int l = spec.Depth - 1 - i;
            h = up[i].call(cat(new[] { h, skips[l] }, 1), e);
            if (l > 0) h = functional.interpolate(h, scale_factor: new[] { 2.0, 2.0 }, mode: InterpolationMode.Nearest);
        }
        return MixedPrecision.Conv2d(outConv, activation(outNorm.call(h))).MoveToOuterDisposeScope();
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the argument and the expected shape, before libtorch sees it.</summary>
    private void Check(Tensor x, Tensor t, Tensor? labels)
    {
        long c = spec.InputShape[0];
        string expected = $"[N, {c}, H, W] with H and W divisible by {Factor} (net.depth {spec.Depth}; built for {Shapes.Show(spec.InputShape)})";
        if (x.dim() != 4) throw new ArgumentException($"x must have shape {expected}, got {Shapes.Show(x)}", nameof(x));
        if (x.shape[1] != c)
            throw new ArgumentException(
                $"x has {x.shape[1]} channels, the network expects {c}: x must have shape {expected}, got {Shapes.Show(x)}", nameof(x));
        if (x.shape[2] % Factor != 0 || x.shape[3] % Factor != 0 || x.shape[2] == 0 || x.shape[3] == 0)
            throw new ArgumentException($"x must have shape {expected}, got {Shapes.Show(x)}", nameof(x));
        if (!is_floating_point(x)) throw new ArgumentException($"x must be a floating tensor (float32 or float64), got {x.dtype}", nameof(x));
        VelocityNets.CheckConditioning(t, labels, x.shape[0], classEmbed is null ? 0 : spec.Classes);
    }
}
