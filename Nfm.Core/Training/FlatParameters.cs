using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm.Training;

/// <summary>
/// A module's trainable parameters as views into one contiguous buffer, and their gradients as views into a second:
/// the optimiser, the gradient clipping and the EMA then update every parameter with a handful of operations on the
/// two buffers instead of a few operations per parameter tensor (232 tensors in the 2-D teacher, where those small
/// operations cost about a quarter of a step). The parameters keep their names, shapes and module fields: each
/// parameter's storage is moved into the buffer (libtorch's <c>set_</c>), so the module, its state dict and every
/// checkpoint see the same tensors as before. Gradients are re-attached as views before every backward pass
/// (<see cref="AttachGradients"/>), so code that sets a gradient to none (<c>zero_grad()</c>) cannot detach them.
/// </summary>
public sealed class FlatParameters
{
    /// <summary>One parameter's place in the buffers.</summary>
    public readonly record struct Slot(string Name, Parameter Parameter, long Offset, long Count);

    readonly Tensor[] gradViews;

    /// <summary>The parameters in buffer order.</summary>
    public IReadOnlyList<Slot> Slots { get; }

    /// <summary>Every parameter's values, one after another: [N].</summary>
    public Tensor Values { get; }

    /// <summary>Every parameter's gradient, in the same order: [N].</summary>
    public Tensor Gradients { get; }

    /// <summary>Total number of values.</summary>
    public long Count { get; }

    FlatParameters(IReadOnlyList<Slot> slots, Tensor values, Tensor gradients, Tensor[] gradViews)
    {
        (Slots, Values, Gradients, this.gradViews) = (slots, values, gradients, gradViews);
        Count = values.shape[0];
    }

    /// <summary>
    /// Moves <paramref name="parameters"/> into one buffer; null when there are none, or when they differ in dtype or
    /// device (a buffer holds one kind), in which case the caller keeps them as they are.
    /// </summary>
    public static FlatParameters? TryCreate(IReadOnlyList<(string Name, Parameter P)> parameters)
    {
        if (parameters.Count == 0) return null;
        var first = parameters[0].P;
        if (parameters.Any(p => p.P.dtype != first.dtype || p.P.device.ToString() != first.device.ToString() || !p.P.is_contiguous()))
            return null;
        var slots = new List<Slot>();
        long n = 0;
        foreach (var (name, p) in parameters)
        {
            slots.Add(new Slot(name, p, n, p.numel()));
            n += p.numel();
        }
        using var _ = no_grad();
        var values = zeros(n, dtype: first.dtype, device: first.device).DetachFromDisposeScope();
        var gradients = zeros(n, dtype: first.dtype, device: first.device).DetachFromDisposeScope();
        var gradViews = new Tensor[slots.Count];
        for (int i = 0; i < slots.Count; i++)
        {
            var s = slots[i];
            var shape = s.Parameter.shape;
            using var target = values.narrow(0, s.Offset, s.Count);
            target.copy_(s.Parameter.detach().reshape(-1));
            using var view = target.view(shape);
            s.Parameter.set_(view);
            gradViews[i] = gradients.narrow(0, s.Offset, s.Count).view(shape).DetachFromDisposeScope();
        }
        var flat = new FlatParameters(slots, values, gradients, gradViews);
        flat.AttachGradients();
        return flat;
    }

    /// <summary>Points every parameter's gradient at its view of <see cref="Gradients"/> (cheap: no data moves).</summary>
    public void AttachGradients()
    {
        for (int i = 0; i < gradViews.Length; i++) Slots[i].Parameter.grad = gradViews[i];
    }

    /// <summary>Slot <paramref name="i"/>'s part of a buffer laid out like <see cref="Values"/>, in the parameter's shape.</summary>
    public Tensor View(Tensor buffer, int i) =>
        buffer.narrow(0, Slots[i].Offset, Slots[i].Count).view(Slots[i].Parameter.shape);

    /// <summary>
    /// Scales the gradients so that their global L2 norm is at most <paramref name="maxNorm"/> (by
    /// maxNorm / (norm + 1e-6), as torch's clip_grad_norm_) and returns the norm before scaling.
    /// </summary>
    public double ClipGradientNorm(double maxNorm)
    {
        using var _ = no_grad();
        using var normTensor = Gradients.norm();
        double norm = normTensor.to(ScalarType.Float64).item<double>();
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1)
        {
            using Scalar c = coefficient;
            Gradients.mul_(c);
        }
        return norm;
    }
}
