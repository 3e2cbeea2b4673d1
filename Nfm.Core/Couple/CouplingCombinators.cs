using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>
/// Building couplings from couplings. Every combinator keeps each data row exactly once, in its place, with its label:
/// only the noise side x0 is chosen, perturbed or re-paired.
/// </summary>
public static class CouplingCombinators
{
    /// <summary>Any user function from (x1, labels, generator) to noise x0 of x1's shape, as a coupling.</summary>
    public static Coupling OfFunction(Func<Tensor, Tensor?, Generator, Tensor> noiseFor) => (batch, g) =>
    {
        var x0 = noiseFor(batch.X1, batch.Labels, g);
        if (!x0.shape.SequenceEqual(batch.X1.shape))
            throw new ArgumentException($"a custom coupling returned noise of shape {Shapes.Show(x0)} for data of shape {Shapes.Show(batch.X1)}");
        return new CoupledBatch(x0, batch.X1, batch.Labels);
    };

    /// <summary>
    /// Each row's noise comes from <paramref name="a"/> with probability <paramref name="p"/>, else from <paramref name="b"/>.
    /// p = 1 is exactly <paramref name="a"/> and p = 0 exactly <paramref name="b"/> (the other coupling is not run).
    /// </summary>
    public static Coupling Mix(double p, Coupling a, Coupling b)
    {
        if (!(p >= 0 && p <= 1)) throw new ArgumentException($"mix probability must be in [0, 1], got {p}");
        if (p >= 1) return a;
        if (p <= 0) return b;
        return (batch, g) =>
        {
            var ca = a(batch, g);
            var cb = b(batch, g);
            using var u = rand(batch.Count, device: batch.X1.device, generator: g);
            using var pick = u.lt(p).reshape(Shapes.RowShape(batch.X1));
            return new CoupledBatch(where(pick, ca.X0, cb.X0), batch.X1, batch.Labels);
        };
    }

    /// <summary>
    /// Adds Gaussian noise to the coupling's x0 and renormalises: x0' = (x0 + sigma eps) / sqrt(1 + sigma^2), so a
    /// standard-normal x0 stays standard normal. sigma = 0 is exactly <paramref name="c"/>.
    /// </summary>
    public static Coupling Perturb(double sigma, Coupling c)
    {
        if (!(sigma >= 0) || !double.IsFinite(sigma)) throw new ArgumentException($"perturb sigma must be finite and >= 0, got {sigma}");
        if (sigma == 0) return c;
        double scale = 1 / Math.Sqrt(1 + sigma * sigma);
        return (batch, g) =>
        {
            var inner = c(batch, g);
            using var eps = randn(inner.X0.shape, dtype: inner.X0.dtype, device: inner.X0.device, generator: g);
            return inner with { X0 = (inner.X0 + eps * sigma) * scale };
        };
    }

    /// <summary>
    /// Couples the rows of each label with that label's coupling; rows stay in their places. Labels are required.
    /// </summary>
    public static Coupling PerLabel(Func<long, Coupling> byLabel) => (batch, g) =>
    {
        if (batch.Labels is null) throw new ArgumentException("a per-label coupling needs labels with the data");
        var x0 = empty_like(batch.X1);
        using var labelsCpu = batch.Labels.cpu().to(ScalarType.Int64);
        var values = labelsCpu.data<long>().ToArray();
        foreach (var label in values.Distinct().OrderBy(v => v))
        {
            var rows = Enumerable.Range(0, values.Length).Where(i => values[i] == label).Select(i => (long)i).ToArray();
            using var idx = tensor(rows, device: batch.X1.device);
            var part = byLabel(label)(new Batch(batch.X1.index_select(0, idx), batch.Labels.index_select(0, idx)), g);
            x0.index_copy_(0, idx, part.X0);
        }
        return new CoupledBatch(x0, batch.X1, batch.Labels);
    };


    /// <summary>
    /// Re-pairs <paramref name="c"/>'s noise with the data by exact OT inside the batch (squared Euclidean cost):
    /// the noise rows are the same multiset, permuted to minimise the summed cost.
    /// </summary>
    public static Coupling OtWithin(Coupling c) => (batch, g) =>
    {
        var inner = c(batch, g);
        using var scope = NewDisposeScope();
        var perm = Assignment.Solve(inner.X1, inner.X0).Permutation;
        var idx = tensor(Array.ConvertAll(perm, p => (long)p), device: inner.X0.device);
        return inner with { X0 = inner.X0.index_select(0, idx).MoveToOuterDisposeScope() };
    };
}
