using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Nets;

/// <summary>Placeholder replaced by the U-Net implementation.</summary>
public sealed class VelocityUNet : nn.Module<Tensor, Tensor, Tensor?, Tensor>
{
    /// <summary>Builds the network.</summary>
    public VelocityUNet(VelocityNetSpec spec) : base("VelocityUNet") => throw new NotSupportedException("the U-Net velocity network is not built yet");

    /// <inheritdoc/>
    public override Tensor forward(Tensor x, Tensor t, Tensor? labels) => throw new NotSupportedException();
}
