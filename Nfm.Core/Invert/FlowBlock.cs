using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// One TarFlow block (ml-tarflow's MetaBlock): an affine autoregressive step over tokens read in the block's order
/// (identity, or reversed). In that order, token t is moved by (a_t, b_t) computed by a causal transformer from the
/// tokens before t: z_t = (x_t - b_t) exp(-a_t); token 0 gets (0, 0) and passes through.
/// Parameters and buffers carry ml-tarflow's names: <c>proj_in</c>, <c>pos_embed</c> [T, C], <c>class_embed</c>
/// [classes, 1, C] (conditional only), <c>attn_blocks.{l}</c>, <c>proj_out</c> (2d outputs, a first then b; d when
/// shift-only), buffer <c>attn_mask</c> [T, T] (ml-tarflow's lower-triangle mask, kept so that checkpoints map key by
/// key; the attention applies the same causal mask through libtorch's fused kernel).
/// </summary>
public sealed class FlowBlock : nn.Module<Tensor, Tensor?, (Tensor Z, Tensor LogDet)>
{
    // Field names are the state_dict names (TorchSharp registers fields by name), hence ml-tarflow's snake_case.
    readonly Linear proj_in;
    readonly Parameter pos_embed;
    readonly Parameter? class_embed;
    readonly ModuleList<TransformerLayer> attn_blocks;
    readonly Linear proj_out;
    readonly Tensor attn_mask;

    /// <summary>Tokens T.</summary>
    public long Tokens { get; }
    /// <summary>Values per token d.</summary>
    public long TokenDim { get; }
    /// <summary>True when the block reads the tokens in reverse order.</summary>
    public bool Reversed { get; }
    /// <summary>True for affine steps; false for shift-only steps (a = 0).</summary>
    public bool Affine { get; }
    /// <summary>Classes of the class embedding; 0 = unconditional.</summary>
    public int Classes { get; }
    /// <summary>Transformer layers in the block.</summary>
    public int Layers => attn_blocks.Count;

    /// <summary>A block with zero output projection (the identity map until trained).</summary>
    public FlowBlock(long tokens, long tokenDim, long width, int layerCount, long headDim, long expansion,
                     bool affine, int classes, bool reversed) : base(nameof(FlowBlock))
    {
        Tokens = tokens; TokenDim = tokenDim; Reversed = reversed; Affine = affine; Classes = classes;
        proj_in = nn.Linear(tokenDim, width);
        pos_embed = nn.Parameter(zeros(tokens, width));
        class_embed = classes > 0 ? nn.Parameter(zeros(classes, 1, width)) : null;
        attn_blocks = nn.ModuleList(Enumerable.Range(0, layerCount).Select(_ => new TransformerLayer(width, headDim, expansion)).ToArray());
        proj_out = nn.Linear(width, affine ? 2 * tokenDim : tokenDim);
        attn_mask = ones(tokens, tokens).tril();
        RegisterComponents();
        using (no_grad())
        {
            proj_out.weight!.zero_();
            proj_out.bias!.zero_();
        }
    }

    /// <summary>
    /// Position embedding [count, C] of the first <paramref name="count"/> positions in the block's reading order
    /// (the embedding is reversed along the tokens for a reversed block).
    /// </summary>
    Tensor PositionsInOrder(long count)
    {
        var pos = get_parameter("pos_embed")!; // by name: .to(...) replaces parameters
        return Reversed ? pos.narrow(0, Tokens - count, count).flip(0) : pos.narrow(0, 0, count);
    }

    /// <summary>Position embedding [1, C] of position <paramref name="position"/> in the block's reading order.</summary>
    Tensor PositionInOrder(long position) =>
        get_parameter("pos_embed")!.narrow(0, Reversed ? Tokens - 1 - position : position, 1);

    /// <summary>
    /// Class embedding to add to every token: [N, 1, C] for labels [N] (a negative label is the null label and gets the
    /// mean embedding over classes), the mean [1, C] when labels are null; null for an unconditional block.
    /// </summary>
    Tensor? ClassEmbedding(Tensor? labels)
    {
        if (Classes == 0) return null;
        var table = get_parameter("class_embed")!;
        var mean = table.mean([0]);
        if (labels is null) return mean;
        var rows = table.index_select(0, labels.clamp_min(0));
        return where(labels.lt(0).view(-1, 1, 1), mean, rows);
    }

    /// <summary>Tokens [N, T, d] from data order to the block's order; the same call maps back.</summary>
    public Tensor ToBlockOrder(Tensor tokens) => Reversed ? tokens.flip(1) : tokens;

    /// <summary>Splits the output projection into (a, b).</summary>
    (Tensor A, Tensor B) Split(Tensor projected)
    {
        if (!Affine) return (zeros_like(projected), projected);
        var parts = projected.chunk(2, -1);
        return (parts[0], parts[1]);
    }

    /// <summary>
    /// (a, b) [N, T, d] for tokens [N, T, d] in the block's order: row t from tokens &lt; t only (outputs shifted one
    /// token to the right, token 0 gets zeros). One parallel causal pass over tokens 0 .. T-2: the last token's own
    /// output would be shifted out, and under the causal mask nothing else depends on it, so it is not computed.
    /// </summary>
    public (Tensor A, Tensor B) Shifts(Tensor tokens, Tensor? labels)
    {
        // One token at least, so that a block of a single token keeps its (zero) graph to the parameters.
        long context = Math.Max(Tokens - 1, 1);
        // proj_in and proj_out stay float32 in a bfloat16 training step (MixedPrecision): they are under 1% of the
        // block's products (d to C and C to 2d), and proj_out's output is the shift (a, b) itself, whose sum is the
        // log-determinant; rounding it to bfloat16 (8 bits) would put that rounding straight into the loss.
        var h = proj_in.call(tokens.narrow(1, 0, context)) + PositionsInOrder(context);
        if (ClassEmbedding(labels) is { } c) h = h + c;
        // Causal attention is scaled_dot_product_attention's is_causal, the same lower triangle as attn_mask.
        foreach (var layer in attn_blocks) h = layer.call(h);
        // Shift right by one token: row t gets the output at t - 1, row 0 gets zeros.
        var shifted = nn.functional.pad(proj_out.call(h).narrow(1, 0, Tokens - 1), [0, 0, 1, 0]);
        return Split(shifted);
    }

    /// <summary>
    /// One cached decoding step: the already decoded token at <paramref name="position"/> [N, 1, d] (block order) goes
    /// through the block, extending <paramref name="cache"/>; returns (a, b) [N, 1, d] for the token at position + 1.
    /// </summary>
    public (Tensor A, Tensor B) StepShifts(Tensor token, long position, Tensor? labels, KeyValueCache cache) =>
        StepWithEmbedding(token, position, ClassEmbedding(labels), cache);

    /// <summary><see cref="StepShifts(Tensor, long, Tensor?, KeyValueCache)"/> with the class embedding already looked up.</summary>
    (Tensor A, Tensor B) StepWithEmbedding(Tensor token, long position, Tensor? classEmbedding, KeyValueCache cache)
    {
        if (cache.Length != position)
            throw new ArgumentException($"cache holds {cache.Length} tokens, expected {position}", nameof(cache));
        var h = proj_in.call(token) + PositionInOrder(position);
        if (classEmbedding is not null) h = h + classEmbedding;
        for (int l = 0; l < attn_blocks.Count; l++) h = attn_blocks[l].Step(h, cache, l);
        cache.Advance();
        return Split(proj_out.call(h));
    }

    /// <summary>Data to noise in the block's order: z = (x - b) exp(-a); log|det| [N] = -sum of a (nats, all dims).</summary>
    public (Tensor Z, Tensor LogDet) EncodeInOrder(Tensor tokens, Tensor? labels)
    {
        var (a, b) = Shifts(tokens, labels);
        return ((tokens - b) * (-a).exp(), -a.sum([1, 2]));
    }

    /// <summary>Data to noise for tokens [N, T, d] in data order; returns z in data order and log|det| [N].</summary>
    public override (Tensor Z, Tensor LogDet) forward(Tensor tokens, Tensor? labels)
    {
        var (z, logdet) = EncodeInOrder(ToBlockOrder(tokens), labels);
        return (ToBlockOrder(z), logdet);
    }

    /// <summary>Guided shift: c + w (c - u).</summary>
    static Tensor Guide(Tensor conditional, Tensor unconditional, double weight) =>
        conditional + weight * (conditional - unconditional);

    /// <summary>
    /// Noise to data in the block's order, one token after another: x_t = z_t exp(a_t) + b_t, with (a_t, b_t) from the
    /// already decoded tokens. With a cache each step runs one token through the block; without, a full pass per step
    /// (kept to check the cache). With <paramref name="guidance"/> w, each step also runs with the null label and uses
    /// a + w (a - a_uncond), b + w (b - b_uncond). Decoding carries no autograd graph (the cache and the output are
    /// written in place).
    /// </summary>
    public Tensor DecodeInOrder(Tensor z, Tensor? labels, double? guidance = null, bool useCache = true)
    {
        using var noGrad = no_grad();
        // Decoded tokens are written into x in place; tokens from i on still hold the noise while step i runs, which
        // the shifts at i never read.
        var x = z.clone();
        if (useCache)
        {
            using var cond = new KeyValueCache(attn_blocks.Count, Tokens);
            using var uncond = new KeyValueCache(guidance is null ? 0 : attn_blocks.Count, Tokens);
            using var embeddings = NewDisposeScope();
            var classCond = ClassEmbedding(labels);
            var classUncond = guidance is null ? null : ClassEmbedding(null);
            for (long i = 0; i < Tokens - 1; i++)
            {
                using var scope = NewDisposeScope();
                var token = x.narrow(1, i, 1);
                var (a, b) = StepWithEmbedding(token, i, classCond, cond);
                if (guidance is double w)
                {
                    var (au, bu) = StepWithEmbedding(token, i, classUncond, uncond);
                    (a, b) = (Guide(a, au, w), Guide(b, bu, w));
                }
                x.narrow(1, i + 1, 1).copy_(z.narrow(1, i + 1, 1) * a.exp() + b);
            }
        }
        else
        {
            for (long i = 1; i < Tokens; i++)
            {
                using var scope = NewDisposeScope();
                var (a, b) = Shifts(x, labels);
                if (guidance is double w)
                {
                    var (au, bu) = Shifts(x, null);
                    (a, b) = (Guide(a, au, w), Guide(b, bu, w));
                }
                x.narrow(1, i, 1).copy_(z.narrow(1, i, 1) * a.narrow(1, i, 1).exp() + b.narrow(1, i, 1));
            }
        }
        return x;
    }

    /// <summary>Noise to data for z [N, T, d] in data order (see <see cref="DecodeInOrder"/>).</summary>
    public Tensor Decode(Tensor z, Tensor? labels, double? guidance = null, bool useCache = true) =>
        ToBlockOrder(DecodeInOrder(ToBlockOrder(z), labels, guidance, useCache));
}
