using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Training;

/// <summary>Exponential moving average of a module's parameters, kept as named tensors (sampling uses them).</summary>
public sealed class Ema
{
    private readonly Dictionary<string, Tensor> shadow = new();
    // When the module's parameters live in one buffer: the average as one buffer too (shadow holds named views).
    private readonly FlatParameters? flat;
    private readonly Tensor? flatShadow;

    /// <summary>Decay per update; 0 means the average is the current weights.</summary>
    public double Decay { get; }

    /// <summary>
    /// Starts the average at the module's current parameters. Given the buffer the optimiser moved them into
    /// (<paramref name="flat"/>, when it holds every parameter of the module), each update is two operations over it.
    /// </summary>
    public Ema(nn.Module module, double decay, FlatParameters? flat = null)
    {
        Decay = decay;
        using var _ = no_grad();
        var names = module.named_parameters().Select(p => p.name).ToList();
        if (flat is not null && flat.Slots.Select(s => s.Name).SequenceEqual(names))
        {
            this.flat = flat;
            flatShadow = flat.Values.detach().clone().DetachFromDisposeScope();
            for (int i = 0; i < flat.Slots.Count; i++) shadow[flat.Slots[i].Name] = flat.View(flatShadow, i).DetachFromDisposeScope();
            return;
        }
        foreach (var (name, p) in module.named_parameters())
            shadow[name] = p.detach().clone().DetachFromDisposeScope();
    }

    /// <summary>
    /// ema = d * ema + (1 - d) * current after the <paramref name="updates"/>-th update, with the warm-up
    /// d = min(decay, (1 + updates) / (10 + updates)) so that short runs are not dominated by the initial weights.
    /// </summary>
    public void Update(nn.Module module, long updates)
    {
        double d = Math.Min(Decay, (1.0 + updates) / (10.0 + updates));
        using var _ = no_grad();
        // Held to the end, not implicit temporaries: see AdamW.Step.
        using Scalar keep = d, take = 1 - d;
        if (flat is not null)
        {
            flatShadow!.mul_(keep).add_(flat.Values, alpha: take);
            return;
        }
        foreach (var (name, p) in module.named_parameters())
        {
            using var current = p.detach();
            shadow[name].mul_(keep).add_(current, alpha: take);
        }
    }

    /// <summary>The averaged tensors by parameter name.</summary>
    public IReadOnlyDictionary<string, Tensor> Weights => shadow;

    /// <summary>
    /// Copies the averaged weights into the parameters of <paramref name="module"/> (a separate instance used for
    /// sampling). Buffers are not averaged: the caller copies them from the trained module.
    /// </summary>
    public void CopyTo(nn.Module module) => Parameters.Copy(shadow, module, includeBuffers: false);

    /// <summary>Overwrites the average from saved tensors.</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> weights)
    {
        using var _ = no_grad();
        foreach (var (name, t) in shadow)
        {
            if (!weights.TryGetValue(name, out var w)) throw new InvalidDataException($"EMA state lacks '{name}'");
            t.copy_(w);
        }
    }
}

/// <summary>Copying named tensors into a module's parameters, with shape checks.</summary>
public static class Parameters
{
    /// <summary>
    /// Copies each named tensor into the parameter (and, unless <paramref name="includeBuffers"/> is false, the buffer)
    /// of the same name; throws naming a missing or mis-shaped one.
    /// </summary>
    public static void Copy(IReadOnlyDictionary<string, Tensor> source, nn.Module module, bool includeBuffers = true)
    {
        using var _ = no_grad();
        var targets = module.named_parameters().Select(x => (x.name, (Tensor)x.parameter));
        if (includeBuffers) targets = targets.Concat(module.named_buffers());
        foreach (var (name, p) in targets)
        {
            if (!source.TryGetValue(name, out var t)) throw new InvalidDataException($"weights lack tensor '{name}'");
            if (!t.shape.SequenceEqual(p.shape))
                throw new InvalidDataException($"tensor '{name}' has shape {Shapes.Show(t)}, expected {Shapes.Show(p)}");
            p.copy_(t);
        }
    }
}
