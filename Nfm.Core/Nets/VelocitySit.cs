using Nfm.Descriptions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Nfm.Nets;

/// <summary>
/// One transformer block with adaLN-Zero conditioning: from the conditioning vector c, a linear layer (zero at
/// initialisation) gives a shift, scale and gate for the attention and for the MLP; each branch reads
/// LayerNorm(h) (1 + scale) + shift and adds gate x its output to h. At initialisation every gate is zero, so the block
/// is the identity.
/// </summary>
public sealed class SitBlock : Module<Tensor, Tensor, Tensor>
{
    private readonly LayerNorm norm1, norm2;
    private readonly Linear qkv, proj, fc1, fc2, modulation;
    private readonly int heads;

    /// <summary>A block of width <paramref name="width"/> with <paramref name="heads"/> heads and an MLP of 4 x width.</summary>
    public SitBlock(long width, int heads) : base("SitBlock")
    {
        this.heads = heads;
        norm1 = LayerNorm(width, elementwise_affine: false, eps: 1e-6);
        norm2 = LayerNorm(width, elementwise_affine: false, eps: 1e-6);
        qkv = Linear(width, 3 * width);
        proj = Linear(width, width);
        fc1 = Linear(width, 4 * width);
        fc2 = Linear(4 * width, width);
        modulation = Linear(width, 6 * width);
        using (no_grad())
        {
            init.zeros_(modulation.weight);
            init.zeros_(modulation.bias);
        }
        RegisterComponents();
    }

    /// <summary>h [N, T, D] under conditioning c [N, D] (already through SiLU).</summary>
    public override Tensor forward(Tensor h, Tensor c)
    {
        using var scope = NewDisposeScope();
        long n = h.shape[0], t = h.shape[1], d = h.shape[2];
        var m = MixedPrecision.Linear(modulation, c).unsqueeze(1).chunk(6, 2);
        var (shift1, scale1, gate1, shift2, scale2, gate2) = (m[0], m[1], m[2], m[3], m[4], m[5]);
        var a = Modulate(norm1.call(h), shift1, scale1);
        var q3 = MixedPrecision.Linear(qkv, a, keepLow: true).reshape(n, t, 3, heads, d / heads).permute(2, 0, 3, 1, 4);
        var attended = MixedPrecision.Attention(q3[0], q3[1], q3[2]).transpose(1, 2).reshape(n, t, d);
        h = h + gate1 * MixedPrecision.Linear(proj, attended);
        var b = Modulate(norm2.call(h), shift2, scale2);
        var hidden = functional.gelu(MixedPrecision.Linear(fc1, b, keepLow: true));
        h = h + gate2 * MixedPrecision.Linear(fc2, hidden);
        return h.MoveToOuterDisposeScope();
    }

    /// <summary>x (1 + scale) + shift.</summary>
    internal static Tensor Modulate(Tensor x, Tensor shift, Tensor scale) => x * (scale + 1.0) + shift;
}

/// <summary>
/// A velocity network in the style of the diffusion transformers DiT and SiT, for images [C, H, W]: the image cut into
/// P x P patches (P = 4 where H and W allow, else 2, else 1), each patch a token through one linear layer, plus a
/// learned position embedding; <see cref="VelocityNetSpec.Depth"/> blocks of width <see cref="VelocityNetSpec.Width"/>
/// (heads of <see cref="HeadDim"/>) conditioned on the time (sinusoidal features through an MLP) and the label (an
/// embedding with a null row for classifier-free guidance) by adaLN-Zero; a final adaLN and linear layer (zero at
/// initialisation, so a fresh network predicts zero velocity) back to patches. No convolutions: every product is a
/// matrix product, in bfloat16 inside a bfloat16 training step.
/// </summary>
public sealed class VelocitySit : Module<Tensor, Tensor, Tensor?, Tensor>
{
    /// <summary>Channels per attention head.</summary>
    public const int HeadDim = 32;

    private readonly VelocityNetSpec spec;
    private readonly long patch, gridH, gridW, channels;
    private readonly Linear patchIn, timeIn, timeOut, finalModulation, patchOut;
    private readonly Embedding? classEmbed;
    private readonly Parameter position;
    private readonly ModuleList<SitBlock> blocks;
    private readonly LayerNorm finalNorm;

    /// <summary>The SiT student of a description (Architecture Sit, InputShape [C, H, W], Width a multiple of <see cref="HeadDim"/>).</summary>
    public VelocitySit(VelocityNetSpec spec) : base("VelocitySit")
    {
        this.spec = spec.Validate();
        if (spec.InputShape.Length != 3)
            throw new ArgumentException($"net.inputShape must be [C, H, W] for the SiT student, got {Shapes.Show(spec.InputShape)}", nameof(spec));
        channels = spec.InputShape[0];
        long h = spec.InputShape[1], w = spec.InputShape[2];
        patch = PatchFor(h, w);
        gridH = h / patch;
        gridW = w / patch;
        long width = spec.Width, tokens = gridH * gridW;
        patchIn = Linear(channels * patch * patch, width);
        timeIn = Linear(spec.TimeFeatures, width);
        timeOut = Linear(width, width);
        if (spec.Classes > 0) classEmbed = Embedding(spec.Classes + 1, width);
        position = Parameter(randn(1, tokens, width) * 0.02);
        blocks = new ModuleList<SitBlock>();
        for (int i = 0; i < spec.Depth; i++) blocks.Add(new SitBlock(width, (int)(width / HeadDim)));
        finalNorm = LayerNorm(width, elementwise_affine: false, eps: 1e-6);
        finalModulation = Linear(width, 2 * width);
        patchOut = Linear(width, channels * patch * patch);
        using (no_grad())
        {
            init.zeros_(finalModulation.weight);
            init.zeros_(finalModulation.bias);
            init.zeros_(patchOut.weight);
            init.zeros_(patchOut.bias);
        }
        RegisterComponents();
    }

    /// <summary>The patch size for an H x W image: 4, 2 or 1, the largest that divides both.</summary>
    public static long PatchFor(long h, long w) => h % 4 == 0 && w % 4 == 0 ? 4 : h % 2 == 0 && w % 2 == 0 ? 2 : 1;

    /// <summary>The description the network was built from.</summary>
    public VelocityNetSpec Spec => spec;

    /// <summary>Pixels per patch side.</summary>
    public long Patch => patch;

    /// <summary>Tokens per image.</summary>
    public long Tokens => gridH * gridW;

    /// <summary>The velocity at x [N, C, H, W] (the network's shape), times t [N], labels [N] or null (the null class).</summary>
    public override Tensor forward(Tensor x, Tensor t, Tensor? labels)
    {
        Check(x, t, labels);
        using var scope = NewDisposeScope();
        long n = x.shape[0], p = patch;
        // [N, C, H, W] -> [N, T, C P P], tokens in row-major order of the patch grid.
        var tokens = x.reshape(n, channels, gridH, p, gridW, p).permute(0, 2, 4, 1, 3, 5).reshape(n, gridH * gridW, channels * p * p);
        var h = MixedPrecision.Linear(patchIn, tokens) + position.to(x.dtype);
        var c = timeOut.call(functional.silu(timeIn.call(SinusoidalTimeEmbedding.Embed(t.to(x.dtype), spec.TimeFeatures))));
        if (classEmbed is not null)
            c = c + classEmbed.call(VelocityNets.EmbeddingIndex(labels, n, spec.Classes, x.device)).to(x.dtype);
        c = functional.silu(c);
        foreach (var block in blocks) h = block.call(h, c);
        var m = MixedPrecision.Linear(finalModulation, c).unsqueeze(1).chunk(2, 2);
        h = SitBlock.Modulate(finalNorm.call(h), m[0], m[1]);
        var patches = MixedPrecision.Linear(patchOut, h);
        return patches.reshape(n, gridH, gridW, channels, p, p).permute(0, 3, 1, 4, 2, 5).reshape(n, channels, gridH * p, gridW * p)
            .MoveToOuterDisposeScope();
    }

    private void Check(Tensor x, Tensor t, Tensor? labels)
    {
        string expected = $"[N, {Shapes.Show(spec.InputShape)[1..^1]}]";
        if (x.dim() != 4 || x.shape[1] != channels || x.shape[2] != gridH * patch || x.shape[3] != gridW * patch)
            throw new ArgumentException($"x must have shape {expected} (the SiT student's position embedding fixes the size), got {Shapes.Show(x)}", nameof(x));
        if (!is_floating_point(x)) throw new ArgumentException($"x must be a floating tensor (float32 or float64), got {x.dtype}", nameof(x));
        VelocityNets.CheckConditioning(t, labels, x.shape[0], classEmbed is null ? 0 : spec.Classes);
    }
}
