using TorchSharp;
using Nfm.Couple;
using static TorchSharp.torch;

namespace Nfm.Metrics;

/// <summary>Wasserstein distance between two empirical distributions of equal size.</summary>
public static class Wasserstein
{
    /// <summary>
    /// Exact W2 between the point sets <paramref name="a"/> [N, ...] and <paramref name="b"/> [N, ...] (rows flattened,
    /// each point weighted 1/N): sqrt of the mean squared distance ||a_i - b_pi(i)||^2 under the optimal assignment pi.
    /// With equal uniform weights an optimal plan is a permutation, so this is the exact W2 of the two empirical
    /// measures, not an approximation. Cost O(N^3) time and N^2 doubles of memory: meant for N up to a few thousand.
    /// Sizes must match; to compare sets of different sizes, subsample the larger one yourself (with your own seed).
    /// </summary>
    /// <exception cref="ArgumentException">Different numbers of rows or of values per row, different devices, or no rows.</exception>
    public static double W2(Tensor a, Tensor b)
    {
        if (a.dim() < 1 || b.dim() < 1 || a.shape[0] != b.shape[0] || a.shape[0] == 0)
            throw new ArgumentException(
                $"W2 needs two non-empty sets with the same number of points, got {Shapes.Show(a)} and {Shapes.Show(b)}; subsample the larger set first",
                nameof(b));
        using var scope = NewDisposeScope();
        var perm = Assignment.Solve(a, b).Permutation;
        // Recompute the matched distances by direct differences: exact 0 for identical points, unlike the |a|^2+|b|^2-2ab form.
        var index = tensor(Array.ConvertAll(perm, p => (long)p), ScalarType.Int64).to(b.device);
        var x = a.detach().reshape(a.shape[0], -1).to(ScalarType.Float64);
        var y = b.detach().reshape(b.shape[0], -1).to(ScalarType.Float64).index_select(0, index);
        return Math.Sqrt((x - y).square().sum(1).mean().item<double>());
    }
}
