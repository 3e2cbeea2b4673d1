using TorchSharp;
using static TorchSharp.torch;

using Nfm.Descriptions;

namespace Nfm.Couple;

/// <summary>
/// Settings of entropic optimal transport.
/// <para><c>Epsilon</c> is relative: the entropic regulariser is <c>Epsilon * mean(cost)</c>, so one value means the
/// same softness for 2-D points and for images (whose squared distances are thousands of times larger).
/// Small values approach exact OT (and need more iterations); large values approach the independent pairing.</para>
/// <para>Iterations stop when the plan's row sums are within <c>Tolerance</c> of the uniform marginal (L1 distance,
/// the column sums are exact after every iteration) or after <c>MaxIterations</c>.</para>
/// </summary>
public sealed record SinkhornOptions(double Epsilon = 0.05, int MaxIterations = 2000, double Tolerance = 1e-6)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the field and its allowed range.</summary>
    public SinkhornOptions Validate()
    {
        if (!(Epsilon > 0) || !double.IsFinite(Epsilon))
            throw new ArgumentException($"Epsilon must be finite and > 0, got {Epsilon}", nameof(Epsilon));
        if (MaxIterations < 1)
            throw new ArgumentException($"MaxIterations must be >= 1, got {MaxIterations}", nameof(MaxIterations));
        if (!(Tolerance > 0) || !double.IsFinite(Tolerance))
            throw new ArgumentException($"Tolerance must be finite and > 0, got {Tolerance}", nameof(Tolerance));
        return this;
    }
}

/// <summary>
/// An entropic transport plan with uniform marginals, kept as its logarithm [N, M] in float64 (the plan itself
/// underflows for small epsilon). <c>Converged</c> is false when <c>MaxIterations</c> ran out first; the plan is
/// still a valid coupling of the column marginal, only its row sums are off by <c>MarginalError</c> (L1).
/// Owns <c>LogPlan</c>: dispose it.
/// </summary>
public sealed record SinkhornPlan(Tensor LogPlan, int Iterations, double MarginalError, bool Converged) : IDisposable
{
    /// <summary>The plan itself, exp(LogPlan); it sums to 1.</summary>
    public Tensor Plan() => LogPlan.exp();

    /// <summary>Frees the plan tensor.</summary>
    public void Dispose() => LogPlan.Dispose();
}

/// <summary>
/// Entropic optimal transport between two uniformly weighted point sets, and two ways to turn its plan into
/// one-to-one pairs: <see cref="Round"/> and <see cref="Sinkhorn.Sample"/>. Both return a permutation, so no pair is
/// ever duplicated or dropped (unlike sampling the plan with replacement).
/// <para>The solver is Sinkhorn's iteration, stabilised in the log domain: the plan is
/// exp(-C/eps + alpha_i + beta_j) with dual potentials alpha, beta kept as logarithms. Between stabilisations the
/// iterations run on scalings u, v of the kernel exp(-C/eps + alpha + beta) (two matrix-vector products per
/// iteration, the cheap form); when a scaling drifts past e^<see cref="AbsorbAbove"/> (or would overflow) it is
/// absorbed into the potentials and one exact log-sum-exp iteration rebuilds the kernel. Nothing under- or overflows
/// for any epsilon, and the result is the same plan the pure log-domain iteration gives.</para>
/// </summary>
public static class Sinkhorn
{
    /// <summary>A scaling whose |log| exceeds this is absorbed into the potentials.</summary>
    public const double AbsorbAbove = 30.0;

    // Iterations between read-backs of the marginal error and the scalings' drift: each read-back is a device sync.
    const int CheckEvery = 5;

    /// <summary>The plan for a cost matrix [N, M] (any floating dtype and device; computed in float64 on that device).</summary>
    /// <exception cref="ArgumentException">The cost is not 2-D, is empty, or holds a NaN or infinity.</exception>
    public static SinkhornPlan Plan(Tensor cost, SinkhornOptions options)
    {
        options.Validate();
        if (cost.dim() != 2 || cost.shape[0] < 1 || cost.shape[1] < 1)
            throw new ArgumentException($"cost must have shape [N, M] with N, M >= 1, got {Shapes.Show(cost)}", nameof(cost));
        using var scope = NewDisposeScope();
        var c = cost.detach().to(ScalarType.Float64);
        if (!c.isfinite().all().item<bool>())
            throw new ArgumentException("cost must be finite everywhere", nameof(cost));
        long n = c.shape[0], m = c.shape[1];
        double meanCost = c.mean().item<double>();
        double eps = options.Epsilon * (meanCost > 0 ? meanCost : 1.0);
        var logK = c / -eps;
        double a = 1.0 / n, b = 1.0 / m;
        var alpha = zeros(n, dtype: ScalarType.Float64, device: c.device);
        var beta = zeros(m, dtype: ScalarType.Float64, device: c.device);
        var u = ones_like(alpha);
        var v = ones_like(beta);
        Tensor kernel = null!;

        // Fold the scalings into the potentials and take one exact log-domain iteration from there (the new alpha
        // depends on beta only): afterwards every column of the kernel sums to exactly 1/M and every row to about
        // 1/N, so no row or column underflows. Called from inside an iteration's scope, so what it keeps goes
        // straight to the solve's scope.
        void Absorb()
        {
            using var inner = NewDisposeScope();
            var al = Math.Log(a) - (logK + (beta + v.log()).unsqueeze(0)).logsumexp(1);
            var be = Math.Log(b) - (logK + al.unsqueeze(1)).logsumexp(0);
            var k = (logK + al.unsqueeze(1) + be.unsqueeze(0)).exp();
            foreach (var t in new[] { alpha, beta, u, v }) t.Dispose();
            kernel?.Dispose();
            (alpha, beta) = (al.MoveToOtherDisposeScope(scope), be.MoveToOtherDisposeScope(scope));
            (u, v) = (ones_like(alpha).MoveToOtherDisposeScope(scope), ones_like(beta).MoveToOtherDisposeScope(scope));
            kernel = k.MoveToOtherDisposeScope(scope);
        }

        Absorb();
        double error = double.PositiveInfinity;
        int it = 1;
        // (u, v) last seen with a small drift: where to fall back to when the scalings run away between checks.
        Tensor uSafe = u, vSafe = v;
        for (; it < options.MaxIterations; it++)
        {
            using var step = NewDisposeScope();
            var kv = kernel.mv(v);
            if (it % CheckEvery == 0)
            {
                // One read-back: the row error of the current plan diag(u) K diag(v) (its columns are exact after
                // every v update) and the scalings' drift (NaN or infinity counts as too far).
                var stats = stack([(u * kv - a).abs().sum(), cat([u, v]).log().abs().max()]).cpu().data<double>().ToArray();
                if (!(stats[1] <= AbsorbAbove))
                {
                    (u, v) = (uSafe, vSafe);
                    Absorb();
                    uSafe = u; vSafe = v;
                    continue;
                }
                error = stats[0];
                if (error <= options.Tolerance) break;
                if (!ReferenceEquals(uSafe, u)) { uSafe.Dispose(); vSafe.Dispose(); }
                uSafe = u; vSafe = v;
            }
            var uNew = (a / kv).MoveToOuterDisposeScope();
            var vNew = (b / kernel.t().mv(uNew)).MoveToOuterDisposeScope();
            if (!ReferenceEquals(u, uSafe)) { u.Dispose(); v.Dispose(); }
            (u, v) = (uNew, vNew);
        }
        if (it >= options.MaxIterations && !ReferenceEquals(u, uSafe))
        {
            // Ran out between checks: keep the last iterate known to be finite.
            if (!(cat([u, v]).log().abs().max().item<double>() <= AbsorbAbove)) (u, v) = (uSafe, vSafe);
        }
        var logPlan = logK + (alpha + u.log()).unsqueeze(1) + (beta + v.log()).unsqueeze(0);
        if (it >= options.MaxIterations)
            error = (logPlan.logsumexp(1).exp() - a).abs().sum().item<double>();
        return new SinkhornPlan(logPlan.MoveToOuterDisposeScope(), Math.Min(it, options.MaxIterations), error, error <= options.Tolerance);
    }

    /// <summary>The plan for a square cost matrix n x n stored row-major (computed on the CPU).</summary>
    public static SinkhornPlan Plan(double[] cost, int n, SinkhornOptions options)
    {
        if (n < 1 || cost.Length != (long)n * n)
            throw new ArgumentException($"cost must hold n*n values with n >= 1, got {cost.Length} values for n = {n}", nameof(cost));
        using var c = tensor(cost, [n, n], ScalarType.Float64);
        return Plan(c, options);
    }

    /// <summary>
    /// Rounding: the permutation that collects the most plan mass, max over pi of sum_i P[i, pi(i)], found exactly by
    /// assignment on the cost -P (scaled by n^2 for conditioning). Deterministic. It follows the plan's soft matches,
    /// not the raw costs: maximising the product prod_i P[i, pi(i)] instead would be the same as exact OT,
    /// since log P = (f_i + g_j - C_ij) / eps and the potentials add the same constant to every permutation.
    /// </summary>
    public static int[] Round(SinkhornPlan plan)
    {
        var (n, p) = Square(plan);
        double scale = (double)n * n;
        for (int k = 0; k < p.Length; k++) p[k] = -scale * Math.Exp(p[k]);
        return Assignment.Solve(p, n).Permutation;
    }

    /// <summary>
    /// Sampling without replacement: rows are visited in a random order; each draws one still-free column with
    /// probability proportional to its plan row restricted to the free columns. The result is a permutation (every
    /// row and column used exactly once). When the plan is close to a permutation this returns it; when it is close
    /// to uniform this returns a uniformly random permutation. Randomness comes from <paramref name="generator"/>
    /// (a random order and n uniforms drawn on its device).
    /// </summary>
    public static int[] Sample(SinkhornPlan plan, Generator generator)
    {
        var (n, logP) = Square(plan);
        int[] order;
        double[] uniforms;
        using (var scope = NewDisposeScope())
        {
            order = randperm(n, dtype: ScalarType.Int32, device: generator.device, generator: generator).cpu().data<int>().ToArray();
            uniforms = rand(n, dtype: ScalarType.Float64, device: generator.device, generator: generator).cpu().data<double>().ToArray();
        }
        var free = new int[n];
        for (int j = 0; j < n; j++) free[j] = j;
        var weight = new double[n];
        var perm = new int[n];
        int live = n;
        for (int k = 0; k < n; k++)
        {
            int i = order[k], row = i * n;
            // Weights relative to the row's largest free entry: at least one weight is 1, so nothing underflows to all zeros.
            double top = double.NegativeInfinity;
            for (int q = 0; q < live; q++) top = Math.Max(top, logP[row + free[q]]);
            double total = 0.0;
            for (int q = 0; q < live; q++) { weight[q] = Math.Exp(logP[row + free[q]] - top); total += weight[q]; }
            double target = uniforms[k] * total;
            int pick = live - 1;
            for (int q = 0; q < live; q++)
            {
                target -= weight[q];
                if (target < 0) { pick = q; break; }
            }
            perm[i] = free[pick];
            free[pick] = free[--live];
        }
        return perm;
    }

    /// <summary>The (log) plan as a flat CPU array, checked square.</summary>
    static (int n, double[] logPlan) Square(SinkhornPlan plan)
    {
        var lp = plan.LogPlan;
        if (lp.dim() != 2 || lp.shape[0] != lp.shape[1])
            throw new ArgumentException($"pairing needs a square plan [n, n], got {Shapes.Show(lp)}", nameof(plan));
        using var scope = NewDisposeScope();
        return ((int)lp.shape[0], lp.to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray());
    }
}
