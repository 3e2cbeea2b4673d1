using Nfm.Descriptions;

namespace Nfm;

/// <summary>Descriptions to TorchSharp devices (the descriptions themselves do not depend on TorchSharp).</summary>
public static class Devices
{
    /// <summary>The TorchSharp device of a description; fails clearly when CUDA is asked for but not available.</summary>
    public static TorchSharp.torch.Device ToDevice(this DeviceSpec spec)
    {
        spec.Validate();
        if (spec.Name.StartsWith("cuda", StringComparison.OrdinalIgnoreCase) && !TorchSharp.torch.cuda.is_available())
            throw new ArgumentException($"device '{spec.Name}' asked for, but CUDA is not available (reference the CUDA libtorch package; see README)");
        return TorchSharp.torch.device(spec.Name.ToLowerInvariant());
    }
}
