using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>Pairwise squared Euclidean distances between two point sets, the cost every coupling and metric here uses.</summary>
public static class SquaredDistances
{
    /// <summary>
    /// Distances ||a_i - b_j||^2 as a float64 tensor [N, M] on the inputs' device, for <paramref name="a"/> [N, ...]
    /// and <paramref name="b"/> [M, ...] with the same number of values per row (rows are flattened, so images work).
    /// Computed as |a|^2 + |b|^2 - 2 a.b in float64 and clamped at 0, so rounding never gives a negative distance.
    /// </summary>
    /// <exception cref="ArgumentException">Scalars, different row sizes, or different devices.</exception>
    public static Tensor Pairwise(Tensor a, Tensor b)
    {
        var (fa, fb) = (Rows(a, nameof(a)), Rows(b, nameof(b)));
        if (fa.d != fb.d)
            throw new ArgumentException(
                $"a and b must have the same number of values per row, got {Shapes.Show(a)} and {Shapes.Show(b)}", nameof(b));
        if (a.device_type != b.device_type || a.device_index != b.device_index)
            throw new ArgumentException($"a and b must be on the same device, got {a.device} and {b.device}", nameof(b));
        using var scope = NewDisposeScope();
        var x = a.detach().reshape(fa.n, fa.d).to(ScalarType.Float64);
        var y = b.detach().reshape(fb.n, fb.d).to(ScalarType.Float64);
        var xx = (x * x).sum(1).unsqueeze(1);
        var yy = (y * y).sum(1).unsqueeze(0);
        var d = (xx + yy - 2.0 * x.matmul(y.t())).clamp_min(0.0);
        return d.MoveToOuterDisposeScope();
    }

    /// <summary>Number of rows and values per row of a tensor [N, ...]; a 1-D tensor counts as N points of one value.</summary>
    internal static (long n, long d) Rows(Tensor t, string name)
    {
        if (t.dim() < 1) throw new ArgumentException($"{name} must have shape [N, ...], got a scalar", name);
        long n = t.shape[0];
        long d = 1;
        for (int k = 1; k < t.dim(); k++) d *= t.shape[k];
        return (n, d);
    }
}
