using TorchSharp;
using Nfm.Couple;
using static TorchSharp.torch;

namespace Nfm.Metrics;

/// <summary>Maximum mean discrepancy between two samples.</summary>
public static class Mmd
{
    /// <summary>Bandwidths used when none are given, as multiples of the median pairwise distance of the pooled sets.</summary>
    public static readonly double[] DefaultBandwidthFactors = [0.25, 0.5, 1.0, 2.0, 4.0];

    /// <summary>At most this many rows of each set enter the median heuristic (taken evenly spaced, so it is deterministic).</summary>
    public const int MedianRows = 1000;

    // Rows per block of the kernel sums: bounds memory at Block x M doubles per bandwidth.
    const long Block = 1024;

    /// <summary>
    /// Squared MMD with a mixture of Gaussian (RBF) kernels, k(x, y) = mean over s of exp(-||x - y||^2 / (2 s^2)),
    /// between <paramref name="a"/> [N, ...] and <paramref name="b"/> [M, ...] (rows flattened; N and M may differ).
    /// The estimate is the biased V-statistic mean k(a, a') + mean k(b, b') - 2 mean k(a, b), diagonals included:
    /// it is never negative, exactly 0 for identical sets, and symmetric in a and b (an unbiased estimate would be
    /// negative around 0 and noisier). <paramref name="bandwidths"/> are the s values in the data's units; when null,
    /// s = <see cref="DefaultBandwidthFactors"/> times the median distance between distinct points of the pooled sets
    /// (up to <see cref="MedianRows"/> evenly spaced rows of each), which also keeps the value symmetric.
    /// </summary>
    /// <exception cref="ArgumentException">Empty sets, different row sizes or devices, or a bandwidth that is not finite and > 0.</exception>
    public static double Rbf(Tensor a, Tensor b, double[]? bandwidths = null)
    {
        if (a.dim() < 1 || b.dim() < 1 || a.shape[0] == 0 || b.shape[0] == 0)
            throw new ArgumentException($"MMD needs two non-empty sets [N, ...], got {Shapes.Show(a)} and {Shapes.Show(b)}", nameof(b));
        if (a.numel() / a.shape[0] != b.numel() / b.shape[0])
            throw new ArgumentException($"a and b must have the same number of values per row, got {Shapes.Show(a)} and {Shapes.Show(b)}", nameof(b));
        if (bandwidths is not null)
        {
            if (bandwidths.Length == 0) throw new ArgumentException("bandwidths must hold at least one value (or be null for the default)", nameof(bandwidths));
            foreach (var s in bandwidths)
                if (!(s > 0) || !double.IsFinite(s)) throw new ArgumentException($"every bandwidth must be finite and > 0, got {s}", nameof(bandwidths));
        }
        using var scope = NewDisposeScope();
        var x = a.detach().reshape(a.shape[0], -1).to(ScalarType.Float64);
        var y = b.detach().reshape(b.shape[0], -1).to(ScalarType.Float64);
        var s2 = (bandwidths ?? DefaultBandwidths(x, y)).Select(s => 2.0 * s * s).ToArray();
        double kxx = MeanKernel(x, x, s2), kyy = MeanKernel(y, y, s2), kxy = MeanKernel(x, y, s2);
        return Math.Max(0.0, kxx + kyy - 2.0 * kxy);
    }

    /// <summary>The default bandwidths for two sets: the factors times the pooled median distance (1 when all points coincide).</summary>
    public static double[] DefaultBandwidths(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var x = a.detach().reshape(a.shape[0], -1).to(ScalarType.Float64);
        var y = b.detach().reshape(b.shape[0], -1).to(ScalarType.Float64);
        var pooled = cat([Spread(x), Spread(y)], 0);
        var d2 = SquaredDistances.Pairwise(pooled, pooled);
        long n = pooled.shape[0];
        var upper = d2.masked_select(ones(n, n, dtype: ScalarType.Bool, device: d2.device).triu(1));
        double median = upper.numel() == 0 ? 0.0 : Math.Sqrt(upper.median().item<double>());
        if (!(median > 0)) median = 1.0;
        return DefaultBandwidthFactors.Select(f => f * median).ToArray();
    }

    static Tensor Spread(Tensor x)
    {
        long n = x.shape[0];
        if (n <= MedianRows) return x;
        var rows = arange(MedianRows, dtype: ScalarType.Float64, device: x.device).mul((double)n / MedianRows).floor().to(ScalarType.Int64);
        return x.index_select(0, rows);
    }

    /// <summary>Mean of the kernel mixture over all pairs (x_i, y_j), summed block by block.</summary>
    static double MeanKernel(Tensor x, Tensor y, double[] twoS2)
    {
        double total = 0.0;
        for (long i = 0; i < x.shape[0]; i += Block)
        {
            using var step = NewDisposeScope();
            var d2 = SquaredDistances.Pairwise(x.narrow(0, i, Math.Min(Block, x.shape[0] - i)), y);
            var k = zeros_like(d2);
            foreach (var t in twoS2) k.add_((d2 / -t).exp());
            total += k.sum().item<double>();
        }
        return total / (twoS2.Length * (double)x.shape[0] * y.shape[0]);
    }
}
