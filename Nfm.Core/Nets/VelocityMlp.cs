using Nfm.Descriptions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Nfm.Nets;

/// <summary>
/// A velocity network v(x, t [, c]): the flattened sample, its time features and (when conditional) a class embedding
/// are concatenated and passed through an MLP; the output has the sample's shape.
/// Labels equal to <c>Classes</c> mean "no label" (the null class used for label dropout and guidance).
/// </summary>
public sealed class VelocityMlp : Module<Tensor, Tensor, Tensor?, Tensor>
{
    private readonly VelocityNetSpec spec;
    private readonly Sequential body;
    private readonly Embedding? classEmbed;

    /// <summary>Builds the network described by <paramref name="spec"/>.</summary>
    public VelocityMlp(VelocityNetSpec spec) : base("VelocityMlp")
    {
        this.spec = spec.Validate();
        long inFeatures = spec.Dim + spec.TimeFeatures + (spec.Classes > 0 ? spec.Width : 0);
        var layers = new List<Module<Tensor, Tensor>>();
        long width = inFeatures;
        for (int i = 0; i < spec.Depth; i++)
        {
            layers.Add(Linear(width, spec.Width));
            layers.Add(MakeActivation(spec.Activation));
            width = spec.Width;
        }
        layers.Add(Linear(width, spec.Dim));
        body = Sequential(layers);
        if (spec.Classes > 0) classEmbed = Embedding(spec.Classes + 1, spec.Width);
        RegisterComponents();
    }

    /// <summary>The description this network was built from.</summary>
    public VelocityNetSpec Spec => spec;

    private static Module<Tensor, Tensor> MakeActivation(Activation a) => a switch
    {
        Activation.Silu => SiLU(),
        Activation.Gelu => GELU(),
        Activation.Relu => ReLU(),
        Activation.Tanh => Tanh(),
        _ => throw new ArgumentException($"unknown activation {a}"),
    };

    /// <summary>v(x, t, labels): x [N, ...InputShape], t [N], labels [N] or null.</summary>
    public override Tensor forward(Tensor x, Tensor t, Tensor? labels)
    {
        long n = x.shape[0];
        if (x.numel() != n * spec.Dim)
            throw new ArgumentException($"x must have shape [N, {string.Join(", ", spec.InputShape)}], got {Shapes.Show(x)}");
        if (t.dim() != 1 || t.shape[0] != n) throw new ArgumentException($"t must have shape [{n}], got {Shapes.Show(t)}");
        using var flat = x.reshape(n, spec.Dim);
        using var tf = SinusoidalTimeEmbedding.Embed(t.to(x.dtype), spec.TimeFeatures);
        Tensor input;
        if (classEmbed is not null)
        {
            using var lab = VelocityNets.EmbeddingIndex(labels, n, spec.Classes, x.device);
            using var ce = classEmbed.forward(lab);
            input = cat(new[] { flat, tf, ce.to(x.dtype) }, 1);
        }
        else input = cat(new[] { flat, tf }, 1);
        // In a bfloat16 training step the linear layers and the activations between them run in bfloat16 and the
        // velocity comes back float32 (MixedPrecision); the loss against it is float32.
        using (input)
        using (var scope = NewDisposeScope())
            return MixedPrecision.Sequential(body, input).reshape(x.shape).MoveToOuterDisposeScope();
    }
}
