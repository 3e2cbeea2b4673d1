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
