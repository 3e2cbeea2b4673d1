using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Nets;

/// <summary>Building the velocity network a description names.</summary>
public static class VelocityNets
{
    /// <summary>A fresh network for <paramref name="spec"/>: forward(x [N, ...InputShape], t [N], labels [N] or null).</summary>
    public static nn.Module<Tensor, Tensor, Tensor?, Tensor> Create(VelocityNetSpec spec)
    {
        // Module constructors draw from libtorch's global generator: one thread at a time (see GlobalRng).
        lock (GlobalRng.Lock) return Build(spec);
    }

    private static nn.Module<Tensor, Tensor, Tensor?, Tensor> Build(VelocityNetSpec spec) => spec.Validate().Architecture switch
    {
        Architecture.Mlp => new VelocityMlp(spec),
        Architecture.UNet => new VelocityUNet(spec),
        Architecture.Sit => new VelocitySit(spec),
        var a => throw new ArgumentException($"unknown architecture {a}"),
    };

    /// <summary>
    /// Checks the times t [N] and, for a conditional network (<paramref name="classes"/> &gt; 0), the labels [N]
    /// (integers in [0, classes), or <see cref="Labels.Null"/> for no label; null means no labels at all), with one-line
    /// errors naming the argument.
    /// </summary>
    public static void CheckConditioning(Tensor t, Tensor? labels, long n, int classes)
    {
        if (t.dim() != 1 || t.shape[0] != n) throw new ArgumentException($"t must have shape [{n}], got {Shapes.Show(t)}", nameof(t));
        if (classes == 0 || labels is null) return;
        if (labels.dim() != 1 || labels.shape[0] != n)
            throw new ArgumentException($"labels must have shape [{n}], got {Shapes.Show(labels)}", nameof(labels));
        if (is_floating_point(labels) || labels.dtype == ScalarType.Bool)
            throw new ArgumentException($"labels must be integers in [0, {classes}) or {Labels.Null} (no label), got {labels.dtype}", nameof(labels));
        if (n == 0) return;
        using var min = labels.min().to(ScalarType.Int64);
        using var max = labels.max().to(ScalarType.Int64);
        long lo = min.item<long>(), hi = max.item<long>();
        if (lo < Labels.Null || hi > classes)
            throw new ArgumentException($"labels must lie in [0, {classes}) or be {Labels.Null} (no label), got values in [{lo}, {hi}]", nameof(labels));
    }

    /// <summary>
    /// Rows of a student's class-embedding table for labels [N]: a class's own row, and row <paramref name="classes"/>
    /// for <see cref="Labels.Null"/> (and for no labels at all). The table's extra row is the null class; the value
    /// <paramref name="classes"/> itself is still read as the null label (checkpoints and calls written before the one
    /// convention).
    /// </summary>
    public static Tensor EmbeddingIndex(Tensor? labels, long n, int classes, Device device)
    {
        if (labels is null) return full(n, (long)classes, dtype: ScalarType.Int64, device: device);
        using var l = labels.to(ScalarType.Int64);
        using var isNull = l.lt(0);
        using var nul = full_like(l, (long)classes);
        return where(isNull, nul, l);
    }
}
