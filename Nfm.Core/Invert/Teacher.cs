using TorchSharp;
using Nfm.Descriptions;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>
/// The invert step: the teacher's bijection between data and noise and everything computed from it, as static
/// functions of a <see cref="TeacherModel"/> value. Shapes: data and noise are [N, ...InputShape]; labels are int64 [N]
/// (negative = null label, which gets the mean class embedding); per-row figures are [N] in the data's dtype.
/// Densities are in nats over all D dimensions. The prior is N(0, diag var) with var the model's
/// <see cref="TeacherModel.PriorVariance"/> (ones by default, then it is N(0, I)).
/// </summary>
public static class Teacher
{
    /// <summary>log2(128): the bits per dimension added for 8-bit data in [-1, 1] with uniform dequantisation (bin width 2/256).</summary>
    public const double EightBitOffset = 7.0;

    /// <summary>Data to noise in one parallel pass: z (same shape as x) and total log|det dz/dx| [N] in nats.</summary>
    public static (Tensor Z, Tensor LogDet) Encode(TeacherModel model, Tensor x, Tensor? labels = null)
    {
        using var scope = NewDisposeScope();
        var (z, logdet) = model.call(x, labels);
        return (z.MoveToOuterDisposeScope(), logdet.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Noise to data, token by token through the blocks in reverse: the exact inverse of <see cref="Encode"/>
    /// (z is not rescaled by the prior variance; <see cref="Sample"/> does that).
    /// <paramref name="guidance"/>: null = plain decoding; a weight w (0 included) also runs the unconditional pass and
    /// uses a + w (a - a_uncond), b + w (b - b_uncond) (needs a conditional model).
    /// <paramref name="useCache"/>: false runs a full pass per step (slow; kept to check the cache).
    /// </summary>
    public static Tensor Decode(TeacherModel model, Tensor z, Tensor? labels = null, double? guidance = null, bool useCache = true)
    {
        model.CheckData(z, nameof(z));
        model.CheckLabels(labels, z.shape[0]);
        if (guidance is double w && (!model.Spec.IsConditional || !double.IsFinite(w)))
            throw new ArgumentException($"guidance needs a conditional model and a finite weight, got {w}", nameof(guidance));
        using var scope = NewDisposeScope();
        var x = model.FromTokens(model.DecodeTokens(model.ToTokens(z), labels, guidance, useCache));
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>log N(z; 0, diag var) [N] of noise z [N, ...InputShape], in nats.</summary>
    public static Tensor PriorLogDensity(TeacherModel model, Tensor z)
    {
        using var scope = NewDisposeScope();
        var tokens = model.ToTokens(z);
        var v = model.PriorVariance;
        var quadratic = (tokens.square() / v).sum([1, 2]);
        var constant = v.log().sum() + model.Spec.Dimension * Math.Log(2 * Math.PI);
        return (-0.5 * (quadratic + constant)).MoveToOuterDisposeScope();
    }

    /// <summary>log p(x) [N] in nats: log N(encode(x); 0, diag var) + log|det|.</summary>
    public static Tensor LogLikelihood(TeacherModel model, Tensor x, Tensor? labels = null)
    {
        using var scope = NewDisposeScope();
        var (z, logdet) = model.call(x, labels);
        return (PriorLogDensity(model, z) + logdet).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Bits per dimension [N] for 8-bit data scaled to [-1, 1] with uniform dequantisation:
    /// -log p(x) / (D ln 2) + log2(128).
    /// </summary>
    public static Tensor BitsPerDim(TeacherModel model, Tensor x, Tensor? labels = null)
    {
        using var scope = NewDisposeScope();
        var nll = -LogLikelihood(model, x, labels);
        return (nll / (model.Spec.Dimension * Math.Log(2)) + EightBitOffset).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The mean negative log-likelihood of <paramref name="x"/> in nats per row, and in bits per dimension for 8-bit
    /// data (<see cref="EightBitOffset"/> added), computed in batches of <paramref name="batch"/> under no_grad.
    /// Labels are passed to a conditional model only.
    /// </summary>
    public static (double Nats, double BitsPerDim) MeanNll(TeacherModel model, Tensor x, Tensor? labels = null, int batch = 256)
    {
        using var _ = no_grad();
        long n = x.shape[0];
        if (n == 0) throw new ArgumentException("cannot compute a likelihood on data with no rows");
        var device = model.parameters().First().device;
        double total = 0;
        for (long start = 0; start < n; start += batch)
        {
            using var scope = NewDisposeScope();
            long len = Math.Min(batch, n - start);
            var xb = x.narrow(0, start, len).to(device);
            var yb = model.Spec.IsConditional && labels is not null ? labels.narrow(0, start, len).to(device) : null;
            total -= LogLikelihood(model, xb, yb).sum().item<float>();
        }
        double nll = total / n;
        return (nll, nll / (model.Spec.Dimension * Math.Log(2)) + EightBitOffset);
    }

    /// <summary>
    /// One denoising step x + sigma^2 grad_x log p(x), the score of the model's own density by autograd
    /// (removes the training noise of standard deviation sigma from samples). The result carries no graph.
    /// </summary>
    public static Tensor Denoise(TeacherModel model, Tensor x, double sigma, Tensor? labels = null)
    {
        if (!double.IsFinite(sigma) || sigma < 0)
            throw new ArgumentException($"sigma must be finite and >= 0, got {sigma}", nameof(sigma));
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        var input = x.detach().requires_grad_(true);
        var total = LogLikelihood(model, input, labels).sum();
        var score = autograd.grad([total], [input])[0];
        return (x.detach() + sigma * sigma * score).detach().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <paramref name="count"/> samples [count, ...InputShape]: z ~ N(0, diag var) drawn from <paramref name="generator"/>,
    /// decoded (with guidance as in <see cref="Decode"/>), then optionally one denoising step with the spec's NoiseSigma.
    /// </summary>
    public static Tensor Sample(TeacherModel model, long count, Generator generator, Tensor? labels = null,
                                double? guidance = null, bool denoise = false)
    {
        if (count < 1) throw new ArgumentException($"count must be >= 1, got {count}", nameof(count));
        using var scope = NewDisposeScope();
        var v = model.PriorVariance;
        var eps = randn([count, model.Spec.Tokens, model.Spec.TokenDim], dtype: v.dtype, device: v.device, generator: generator);
        var z = model.FromTokens(eps * v.sqrt());
        Tensor x;
        using (no_grad()) x = Decode(model, z, labels, guidance);
        if (denoise) x = Denoise(model, x, model.Spec.NoiseSigma, labels);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Training loss (per-dimension negative log-likelihood up to a constant, as ml-tarflow):
    /// 0.5 mean(z^2) - mean over the batch of log|det| / D. A scalar with a graph to the parameters.
    /// It ignores the prior variance (ml-tarflow's affine mode keeps var at ones). With <paramref name="precision"/>
    /// bfloat16 the transformers' matrix products run in bfloat16 (<see cref="MixedPrecision"/>); z, the
    /// log-determinant and the loss are float32 either way.
    /// </summary>
    public static Tensor Loss(TeacherModel model, Tensor x, Tensor? labels = null, Precision precision = Precision.Float32)
    {
        using var scope = NewDisposeScope();
        Tensor z, logdet;
        using (MixedPrecision.Scope(precision)) (z, logdet) = model.call(x, labels);
        return (0.5 * z.square().mean() - logdet.mean() / model.Spec.Dimension).MoveToOuterDisposeScope();
    }

    /// <summary>Label dropout for training a conditional model: each label becomes the null label -1 with probability p.</summary>
    public static Tensor DropLabels(Tensor labels, Generator generator, double p = 0.1)
    {
        if (!(p >= 0 && p <= 1)) throw new ArgumentException($"p must be in [0, 1], got {p}", nameof(p));
        if (labels.dtype != ScalarType.Int64 || labels.dim() != 1)
            throw new ArgumentException($"expected labels int64 [N], got {labels.dtype} {Shapes.Show(labels.shape)}", nameof(labels));
        using var scope = NewDisposeScope();
        var drop = rand([labels.shape[0]], dtype: ScalarType.Float64, device: labels.device, generator: generator).lt(p);
        return where(drop, full_like(labels, Labels.Null), labels).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Training noise for data x under the model's description: Uniform adds U[0, 2/256) per value (one 8-bit bin of
    /// [-1, 1]); then both kinds add Gaussian noise of standard deviation NoiseSigma (when it is above 0).
    /// </summary>
    public static Tensor Augment(TeacherSpec spec, Tensor x, Generator generator)
    {
        using var scope = NewDisposeScope();
        var y = x;
        if (spec.Dequantisation == Dequantisation.Uniform)
            y = y + rand(x.shape, dtype: x.dtype, device: x.device, generator: generator) * (2.0 / 256);
        if (spec.NoiseSigma > 0)
            y = y + spec.NoiseSigma * randn(x.shape, dtype: x.dtype, device: x.device, generator: generator);
        return y.MoveToOuterDisposeScope();
    }
}
