using TorchSharp;
using Nfm.Descriptions;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// The TarFlow teacher as a TorchSharp module: K <see cref="FlowBlock"/>s under <c>blocks.{k}</c> (even blocks read
/// tokens in order, odd ones reversed) and the prior variance buffer <c>var</c> [T, d] (ones by default). The names
/// match ml-tarflow's state_dict, so importing a checkpoint is a key-by-key copy.
/// Its forward maps data [N, ...InputShape] to noise of the same shape and log|det| [N] (nats, summed over all dims);
/// the flow operations themselves are the static functions of <see cref="Teacher"/>.
/// </summary>
public sealed class TeacherModel : nn.Module<Tensor, Tensor?, (Tensor Z, Tensor LogDet)>
{
    // Field names are the state_dict names (TorchSharp registers fields by name).
    readonly ModuleList<FlowBlock> blocks;
    readonly Tensor @var;

    /// <summary>The description this model was built from.</summary>
    public TeacherSpec Spec { get; }

    /// <summary>The blocks in data-to-noise order.</summary>
    public IReadOnlyList<FlowBlock> Blocks => [.. blocks];

    /// <summary>Prior variance [T, d] (buffer <c>var</c>): the prior is N(0, diag var) over the tokens.</summary>
    public Tensor PriorVariance => get_buffer("var")!;

    /// <summary>
    /// A model of the given description, parameters drawn from <paramref name="generator"/> as PyTorch would initialise
    /// them (Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); embeddings: N(0, 0.01^2); LayerNorm: 1 and 0), except the
    /// output projections, which are zero so that the new model is the identity map. float32 on the CPU; move it with
    /// <c>.to(...)</c>.
    /// </summary>
    public TeacherModel(TeacherSpec spec, Generator? generator = null) : base(nameof(TeacherModel))
    {
        Spec = spec.Validate();
        blocks = nn.ModuleList(Enumerable.Range(0, spec.Blocks).Select(k => new FlowBlock(
            spec.Tokens, spec.TokenDim, spec.Width, spec.LayersPerBlock, spec.HeadDim, spec.Expansion,
            spec.Affine, spec.Classes, reversed: k % 2 == 1)).ToArray());
        @var = ones(spec.Tokens, spec.TokenDim);
        RegisterComponents();
        Initialise(generator);
    }

    /// <summary>Redraws every parameter from <paramref name="generator"/> (see the constructor); output projections become zero.</summary>
    public void Initialise(Generator? generator)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (name, p) in named_parameters())
        {
            var leaf = name[(name.LastIndexOf('.') + 1)..];
            if (name.Contains("proj_out.")) p.zero_();
            else if (leaf is "pos_embed" or "class_embed")
                p.copy_(randn(p.shape, dtype: p.dtype, device: p.device, generator: generator) * 0.01);
            else if (name.Contains(".norm.")) { if (leaf == "weight") p.fill_(1.0); else p.zero_(); }
            else
            {
                // A Linear's weight [out, in] and its bias share the bound 1/sqrt(in).
                var owner = name[..name.LastIndexOf('.')];
                var fanIn = get_parameter(owner + ".weight")!.shape[1];
                var bound = 1.0 / Math.Sqrt(fanIn);
                p.copy_((rand(p.shape, dtype: p.dtype, device: p.device, generator: generator) * 2 - 1) * bound);
            }
        }
    }

    /// <summary>Data [N, ...InputShape] to tokens [N, T, d].</summary>
    public Tensor ToTokens(Tensor x)
    {
        CheckData(x, nameof(x));
        return Spec.IsImage
            ? Patches.Patchify(x, Spec.TokenSize)
            : x.reshape(x.shape[0], Spec.Tokens, Spec.TokenDim);
    }

    /// <summary>Tokens [N, T, d] back to data [N, ...InputShape].</summary>
    public Tensor FromTokens(Tensor tokens)
    {
        if (tokens.dim() != 3 || tokens.shape[1] != Spec.Tokens || tokens.shape[2] != Spec.TokenDim)
            throw new ArgumentException(
                $"expected tokens [N, {Spec.Tokens}, {Spec.TokenDim}], got {Shapes.Show(tokens.shape)}", nameof(tokens));
        var s = Spec.InputShape;
        return Spec.IsImage
            ? Patches.Unpatchify(tokens, s[0], s[1], s[2], Spec.TokenSize)
            : tokens.reshape(tokens.shape[0], s[0]);
    }

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="x"/> is [N, ...InputShape] of the model's dtype and device.</summary>
    public void CheckData(Tensor x, string name)
    {
        var expected = Spec.InputShape;
        if (x.dim() != expected.Length + 1 || !x.shape.AsSpan(1).SequenceEqual(expected))
            throw new ArgumentException(
                $"expected {name} [N, {string.Join(", ", expected)}], got {Shapes.Show(x.shape)}", name);
        var v = PriorVariance;
        if (x.dtype != v.dtype)
            throw new ArgumentException($"{name} is {x.dtype} but the model is {v.dtype}; convert one of them", name);
        if (x.device_type != v.device_type || x.device_index != v.device_index)
            throw new ArgumentException($"{name} is on {x.device} but the model is on {v.device}", name);
    }

    /// <summary>
    /// Throws <see cref="ArgumentException"/> unless <paramref name="labels"/> is null or int64 [N] with values below
    /// Classes (negative = null label) on a conditional model.
    /// </summary>
    public void CheckLabels(Tensor? labels, long rows, string name = "labels")
    {
        if (labels is null) return;
        if (!Spec.IsConditional)
            throw new ArgumentException("labels given to an unconditional model (Classes = 0)", name);
        if (labels.dtype != ScalarType.Int64 || labels.dim() != 1 || labels.shape[0] != rows)
            throw new ArgumentException($"expected {name} int64 [{rows}], got {labels.dtype} {Shapes.Show(labels.shape)}", name);
        if (labels.device_type != PriorVariance.device_type || labels.device_index != PriorVariance.device_index)
            throw new ArgumentException($"{name} is on {labels.device} but the model is on {PriorVariance.device}", name);
        if (rows > 0 && labels.max().item<long>() >= Spec.Classes)
            throw new ArgumentException($"{name} must be < Classes = {Spec.Classes} (negative = null label)", name);
    }

    /// <summary>Data to noise over tokens [N, T, d]: every block in turn; log|det| [N] summed over the blocks.</summary>
    public (Tensor Z, Tensor LogDet) EncodeTokens(Tensor tokens, Tensor? labels)
    {
        var logdet = zeros(tokens.shape[0], dtype: tokens.dtype, device: tokens.device);
        foreach (var block in blocks)
        {
            var (z, ld) = block.call(tokens, labels);
            (tokens, logdet) = (z, logdet + ld);
        }
        return (tokens, logdet);
    }

    /// <summary>Noise to data over tokens [N, T, d]: the blocks' inverses in reverse order.</summary>
    public Tensor DecodeTokens(Tensor z, Tensor? labels, double? guidance = null, bool useCache = true)
    {
        for (int k = blocks.Count - 1; k >= 0; k--) z = blocks[k].Decode(z, labels, guidance, useCache);
        return z;
    }

    /// <summary>Data [N, ...InputShape] to noise of the same shape and log|det| [N].</summary>
    public override (Tensor Z, Tensor LogDet) forward(Tensor x, Tensor? labels)
    {
        CheckData(x, nameof(x));
        CheckLabels(labels, x.shape[0]);
        var (z, logdet) = EncodeTokens(ToTokens(x), labels);
        return (FromTokens(z), logdet);
    }
}
