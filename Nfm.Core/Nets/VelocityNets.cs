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
        var a => throw new ArgumentException($"unknown architecture {a}"),
    };
}
