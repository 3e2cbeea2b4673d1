using TorchSharp;
using System.Diagnostics;
using Nfm.Couple;
using static TorchSharp.torch;

namespace Nfm.Bench;

/// <summary>One timed solver at one size: median and fastest wall time over the repeats, in milliseconds.
/// <paramref name="Case"/> names the points: "near" (two draws of N(0, I)) or "far" (the second set shifted by 4 and
/// scaled by 0.3, as a one-step student's samples against the data: the hard case for the search).</summary>
public sealed record OtTiming(string Solver, int N, int Dim, int Repeats, double MedianMs, double MinMs, string Case = "near");

/// <summary>Figures of the OT benchmark: exact assignment at several sizes and Sinkhorn at one. The assignment is
/// timed twice per case, the full solver ("assignment") and the shortest-path search alone ("assignment, search
/// only"), so that the initial reductions' saving is a ratio within one run, and from the points ("assignment from
/// points": the standardised sets, cost matrix included), as W2 and the OT coupling call it.</summary>
public sealed record OtBenchmarkFigures(
    IReadOnlyList<OtTiming> Assignment,
    OtTiming Sinkhorn,
    double SinkhornEpsilon,
    int SinkhornIterations,
    bool SinkhornConverged,
    int TorchThreads);

/// <summary>
/// Times the coupling solvers on random Gaussian points in D = 2 (squared Euclidean cost, data against fresh noise,
/// the shape of a minibatch OT coupling). Assignment times cover the solver alone, from a ready float64 cost matrix;
/// the Sinkhorn time covers the plan (log-domain iterations to the default tolerance) from a ready cost tensor on the CPU.
/// Each figure is the median of <c>repeats</c> runs after one warm-up run.
/// </summary>
public static class OtBenchmark
{
    /// <summary>Sizes timed for the exact assignment.</summary>
    public static readonly int[] AssignmentSizes = [256, 512, 1024, 2000];

    /// <summary>Size timed for Sinkhorn.</summary>
    public const int SinkhornSize = 512;

    /// <summary>Run the benchmark; <paramref name="seed"/> fixes the points.</summary>
    public static OtBenchmarkFigures Run(int repeats = 7, long seed = 0, double sinkhornEpsilon = 0.05)
    {
        if (repeats < 1) throw new ArgumentException($"repeats must be >= 1, got {repeats}", nameof(repeats));
        const int dim = 2;
        using var generator = new Generator((ulong)seed);
        var timings = new List<OtTiming>();
        foreach (var n in AssignmentSizes)
            foreach (var far in new[] { false, true })
            {
                double[] cost;
                using var scope = NewDisposeScope();
                var b = Points(n, dim, generator);
                if (far) b = b * 0.3 + 4.0;
                var a = Points(n, dim, generator);
                cost = SquaredDistances.Pairwise(a, b).cpu().data<double>().ToArray();
                string label = far ? "far" : "near";
                timings.Add(Time("assignment", n, dim, repeats, () => Couple.Assignment.Solve(cost, n), label));
                timings.Add(Time("assignment, search only", n, dim, repeats, () => Couple.Assignment.SolveBySearchOnly(cost, n), label));
                // From the points (what W2 and the OT coupling call): both sets standardised, the cost matrix built too.
                timings.Add(Time("assignment from points", n, dim, repeats, () => Couple.Assignment.Solve(a, b), label));
            }

        using var c = SquaredDistances.Pairwise(Points(SinkhornSize, dim, generator), Points(SinkhornSize, dim, generator));
        var options = new SinkhornOptions(Epsilon: sinkhornEpsilon);
        int iterations = 0;
        bool converged = false;
        var sinkhorn = Time("sinkhorn", SinkhornSize, dim, repeats, () =>
        {
            using var plan = Couple.Sinkhorn.Plan(c, options);
            (iterations, converged) = (plan.Iterations, plan.Converged);
        });
        return new OtBenchmarkFigures(timings, sinkhorn, sinkhornEpsilon, iterations, converged, get_num_threads());
    }

    static Tensor Points(int n, int dim, Generator generator) =>
        randn(n, dim, dtype: ScalarType.Float64, generator: generator);

    static OtTiming Time(string solver, int n, int dim, int repeats, Action run, string label = "near")
    {
        // One untimed call first: JIT and first-touch allocations.
        var ms = Timing.Seconds(run, repeats, warmup: 1).Select(s => s * 1000).ToArray();
        return new OtTiming(solver, n, dim, repeats, Timing.Median(ms), ms.Min(), label);
    }
}
