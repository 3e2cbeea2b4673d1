using TorchSharp;
using Nfm.Descriptions;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>
/// The couplings that need no trained model, as <see cref="Coupling"/> values. Each draws its noise x0 ~ N(0, I)
/// with the given generator, in the shape, dtype and device of x1. The non-independent ones then only reorder the
/// noise rows: the data rows, their order and their labels come back untouched, so every data row appears exactly
/// once with its label, and the noise is the same multiset as the independent draw from the same generator state.
/// </summary>
public static class Couplings
{
    /// <summary>Independent pairing: fresh Gaussian noise, row i of x0 paired with row i of x1.</summary>
    public static readonly Coupling Independent = (batch, generator) =>
    {
        using var scope = NewDisposeScope();
        var x0 = Noise(batch, generator);
        return new CoupledBatch(x0.MoveToOuterDisposeScope(), batch.X1, batch.Labels);
    };

    /// <summary>
    /// Minibatch optimal transport: the noise rows are permuted so that the summed cost between each data row and its
    /// noise row is least (an exact assignment). <paramref name="cost"/> maps (x1 [N, ...], x0 [N, ...]) to a cost
    /// matrix [N, N] (row = data, column = noise); by default the squared Euclidean distance of the flattened rows.
    /// </summary>
    public static Coupling MinibatchOt(Func<Tensor, Tensor, Tensor>? cost = null)
    {
        // The default squared distance goes through Assignment.Solve(rows, columns), which standardises both sets
        // first (the same pairing, found far sooner when noise and data differ in location and scale).
        if (cost is null) return PermutedNoise((x1, x0, _) => Assignment.Solve(x1, x0).Permutation);
        var c = cost;
        return PermutedNoise((x1, x0, _) =>
        {
            var m = c(x1, x0);
            CheckSquare(m, x1.shape[0], nameof(cost));
            return Assignment.Solve(m).Permutation;
        });
    }

    /// <summary>
    /// Entropic OT (squared Euclidean cost): a Sinkhorn plan with relative regulariser <paramref name="epsilon"/>
    /// (see <see cref="SinkhornOptions"/>), turned into a permutation of the noise rows by
    /// <see cref="SinkhornPairing.Round"/> or <see cref="SinkhornPairing.Sample"/> (without replacement).
    /// <paramref name="options"/> supplies the iteration cap and tolerance; its epsilon is replaced.
    /// </summary>
    public static Coupling Sinkhorn(double epsilon, SinkhornPairing pairing = SinkhornPairing.Sample, SinkhornOptions? options = null)
    {
        var o = (options ?? new SinkhornOptions()) with { Epsilon = epsilon };
        o.Validate();
        return PermutedNoise((x1, x0, generator) =>
        {
            using var plan = Couple.Sinkhorn.Plan(SquaredDistances.Pairwise(x1, x0), o);
            return pairing == SinkhornPairing.Round ? Couple.Sinkhorn.Round(plan) : Couple.Sinkhorn.Sample(plan, generator);
        });
    }

    /// <summary>
    /// The shared shape of every noise-reordering coupling: draw x0 ~ N(0, I) like <see cref="Independent"/>, ask
    /// <paramref name="pairing"/> for a permutation (data row i gets noise row perm[i]) and reorder the noise.
    /// The permutation is checked, so a faulty pairing cannot duplicate or drop noise rows.
    /// </summary>
    public static Coupling PermutedNoise(Func<Tensor, Tensor, Generator, int[]> pairing) => (batch, generator) =>
    {
        using var scope = NewDisposeScope();
        var x0 = Noise(batch, generator);
        var n = (int)batch.Count;
        var perm = n == 0 ? [] : pairing(batch.X1, x0, generator);
        CheckPermutation(perm, n);
        var index = tensor(Array.ConvertAll(perm, p => (long)p), ScalarType.Int64).to(x0.device);
        return new CoupledBatch(x0.index_select(0, index).MoveToOuterDisposeScope(), batch.X1, batch.Labels);
    };

    /// <summary>
    /// The coupling a description names, for the kinds that need no model (independent, ot, sinkhorn).
    /// Teacher and reflow couplings need a trained network and are built where checkpoints are loaded.
    /// </summary>
    /// <exception cref="NotSupportedException">The kind is teacher or reflow.</exception>
    public static Coupling From(CouplingSpec spec)
    {
        spec.Validate();
        return spec.Kind switch
        {
            CouplingKind.Independent => Independent,
            CouplingKind.Ot => MinibatchOt(),
            CouplingKind.Sinkhorn => Sinkhorn(spec.Epsilon!.Value, spec.Pairing ?? SinkhornPairing.Sample),
            CouplingKind.Custom => throw new NotSupportedException(
                $"coupling '{spec.Format()}' is code: pass the coupling itself, a description cannot rebuild it"),
            _ => throw new NotSupportedException(
                $"coupling '{spec.Format()}' needs a trained model; build it from its checkpoint, not from Couplings.From"),
        };
    }

    /// <summary>x0 ~ N(0, I) shaped like x1, on x1's device and dtype; checks the batch first.</summary>
    static Tensor Noise(Batch batch, Generator generator)
    {
        var x1 = batch.X1;
        if (x1.dim() < 1) throw new ArgumentException("batch.X1 must have shape [N, ...], got a scalar", nameof(batch));
        if (!is_floating_point(x1))
            throw new ArgumentException($"batch.X1 must be a floating tensor (float32 or float64), got {x1.dtype}", nameof(batch));
        if (batch.Labels is { } y && (y.dim() != 1 || y.shape[0] != x1.shape[0]))
            throw new ArgumentException(
                $"batch.Labels must have shape [{x1.shape[0]}] (one per data row), got {Shapes.Show(y)}", nameof(batch));
        return randn(x1.shape, dtype: x1.dtype, device: x1.device, generator: generator);
    }

    static void CheckSquare(Tensor m, long n, string name)
    {
        if (m.dim() != 2 || m.shape[0] != n || m.shape[1] != n)
            throw new ArgumentException($"{name} must return a cost matrix [{n}, {n}], got {Shapes.Show(m)}", name);
    }

    static void CheckPermutation(int[] perm, int n)
    {
        if (perm.Length != n) throw new InvalidOperationException($"pairing returned {perm.Length} indices for {n} rows");
        var used = new bool[n];
        foreach (var p in perm)
        {
            if (p < 0 || p >= n || used[p]) throw new InvalidOperationException($"pairing did not return a permutation of 0..{n - 1}");
            used[p] = true;
        }
    }
}
