using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Nets;

/// <summary>
/// Sinusoidal features of a time t in [0, 1]: [sin(w_k t), cos(w_k t)] with frequencies w_k geometric in [1, 1000],
/// so both the slow and the fast variation of the velocity across t can be represented.
/// </summary>
public static class SinusoidalTimeEmbedding
{
    /// <summary>Features [N, features] for times [N] (features even).</summary>
    public static Tensor Embed(Tensor t, int features)
    {
        if (t.dim() != 1) throw new ArgumentException($"t must have shape [N], got {Shapes.Show(t)}");
        if (features < 2 || features % 2 != 0) throw new ArgumentException($"features must be even and >= 2, got {features}");
        int half = features / 2;
        using var k = arange(half, dtype: t.dtype, device: t.device);
        using var freqs = exp(k * (Math.Log(1000.0) / Math.Max(1, half - 1)));
        using var angles = t.unsqueeze(1) * freqs.unsqueeze(0);
        return cat(new[] { sin(angles), cos(angles) }, 1);
    }
}
