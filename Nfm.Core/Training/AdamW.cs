using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm.Training;

/// <summary>
/// AdamW with decoupled weight decay. Written here (not TorchSharp's) so that its state is plain named tensors:
/// checkpoints store and restore it exactly, which exact resume needs. When the parameters share one dtype and device
/// they are moved into one buffer (<see cref="FlatParameters"/>) and every update is a few operations over all of them
/// (a multi-tensor AdamW); the state keeps its per-parameter names, so checkpoints written either way load either way.
/// </summary>
public sealed class AdamW
{
    private readonly (string Name, Parameter P)[] parameters;
    private readonly Dictionary<string, Tensor> m = new(), v = new();
    // With one buffer for every parameter: the moments as buffers too (m and v then hold named views of them).
    private readonly Tensor? flatM, flatV;

    /// <summary>The parameters' shared buffers, or null where they could not share one (mixed dtypes or devices).</summary>
    public FlatParameters? Flat { get; }
    private readonly double beta1, beta2, eps, weightDecay;

    /// <summary>Number of updates applied so far (bias correction uses it).</summary>
    public long Steps { get; private set; }

    /// <summary>Optimises the given named parameters.</summary>
    /// <param name="flat">Move the parameters into one buffer where they allow it (the default); false keeps one
    /// update per tensor (the benchmark's comparison).</param>
    public AdamW(IEnumerable<(string Name, Parameter P)> parameters, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weightDecay = 0.0, bool flat = true)
    {
        this.parameters = parameters.Where(p => p.P.requires_grad).ToArray();
        (this.beta1, this.beta2, this.eps, this.weightDecay) = (beta1, beta2, eps, weightDecay);
        Flat = flat ? FlatParameters.TryCreate(this.parameters) : null;
        if (Flat is not null)
        {
            flatM = zeros_like(Flat.Values).DetachFromDisposeScope();
            flatV = zeros_like(Flat.Values).DetachFromDisposeScope();
            for (int i = 0; i < Flat.Slots.Count; i++)
            {
                m[Flat.Slots[i].Name] = Flat.View(flatM, i).DetachFromDisposeScope();
                v[Flat.Slots[i].Name] = Flat.View(flatV, i).DetachFromDisposeScope();
            }
        }
        else
            foreach (var (name, p) in this.parameters)
            {
                m[name] = zeros_like(p).DetachFromDisposeScope();
                v[name] = zeros_like(p).DetachFromDisposeScope();
            }
    }

    /// <summary>Clears every parameter's gradient (with one buffer: re-attaches the gradient views, then zeroes them).</summary>
    public void ZeroGrad()
    {
        if (Flat is not null)
        {
            Flat.AttachGradients();
            using var _ = no_grad();
            Flat.Gradients.zero_();
        }
        else
            foreach (var (_, p) in parameters)
            {
                using var g = p.grad;
                g?.zero_();
            }
    }

    /// <summary>
    /// Scales the gradients so that their global L2 norm is at most <paramref name="maxNorm"/> and returns the norm
    /// before scaling (NaN or infinity when a gradient is not finite).
    /// </summary>
    public double ClipGradNorm(double maxNorm)
    {
        if (Flat is not null) return Flat.ClipGradientNorm(maxNorm);
        return nn.utils.clip_grad_norm_(parameters.Select(p => p.P), maxNorm);
    }

    /// <summary>One update with learning rate <paramref name="lr"/> from the parameters' current gradients.</summary>
    public void Step(double lr)
    {
        Steps++;
        double bc1 = 1 - Math.Pow(beta1, Steps), bc2 = 1 - Math.Pow(beta2, Steps);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        // The scalars are made once and held to the end of the step: a temporary Scalar from an implicit conversion
        // passes only its native handle, so the GC may finalise it while libtorch still reads it (seen once here as
        // a garbage c10::Scalar in addcmul_ during a long run).
        // Every overload is given all its scalars: TorchSharp 0.107's add_(Scalar) passes a temporary alpha of 1 the
        // same way (seen as a garbage c10::Scalar in add_ with two training threads).
        using Scalar decay = 1 - lr * weightDecay, b1 = beta1, a1 = 1 - beta1, b2 = beta2, a2 = 1 - beta2,
            correction2 = bc2, epsilon = eps, stepSize = -lr / bc1, one = 1;
        if (Flat is not null)
        {
            // The same arithmetic as below, element by element, over every parameter at once.
            var (p, g) = (Flat.Values, Flat.Gradients);
            if (weightDecay > 0) p.mul_(decay);
            flatM!.mul_(b1).add_(g, alpha: a1);
            flatV!.mul_(b2).addcmul_(g, g, value: a2);
            var denom = flatV.div(correction2).sqrt_().add_(epsilon, one);
            p.addcdiv_(flatM, denom, value: stepSize);
            return;
        }
        foreach (var (name, p) in parameters)
        {
            var g = p.grad;
            if (g is null) continue;
            if (weightDecay > 0) p.mul_(decay);
            m[name].mul_(b1).add_(g, alpha: a1);
            v[name].mul_(b2).addcmul_(g, g, value: a2);
            var denom = v[name].div(correction2).sqrt_().add_(epsilon, one);
            p.addcdiv_(m[name], denom, value: stepSize);
        }
    }

    /// <summary>The state as named tensors: "step", "m.NAME", "v.NAME".</summary>
    public IEnumerable<(string Name, Tensor Value)> State()
    {
        yield return ("step", tensor(Steps));
        foreach (var (name, _) in parameters)
        {
            yield return ("m." + name, m[name]);
            yield return ("v." + name, v[name]);
        }
    }

    /// <summary>Restores a state written by <see cref="State"/>; throws naming the first missing or mis-shaped tensor.</summary>
    public void LoadState(IReadOnlyDictionary<string, Tensor> state)
    {
        if (!state.TryGetValue("step", out var s)) throw new InvalidDataException("optimizer state lacks 'step'");
        Steps = s.item<long>();
        using var _ = no_grad();
        foreach (var (name, p) in parameters)
            foreach (var (prefix, dict) in new[] { ("m.", m), ("v.", v) })
            {
                if (!state.TryGetValue(prefix + name, out var t)) throw new InvalidDataException($"optimizer state lacks '{prefix + name}'");
                if (!t.shape.SequenceEqual(p.shape)) throw new InvalidDataException($"optimizer state '{prefix + name}' has shape {Shapes.Show(t)}, expected {Shapes.Show(p)}");
                dict[name].copy_(t);
            }
    }
}
