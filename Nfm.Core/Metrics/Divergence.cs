using Nfm.Descriptions;
using Nfm.Integrate;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Metrics;

/// <summary>How a divergence is computed.</summary>
public enum DivergenceEstimator
{
    /// <summary>Exact: the trace of the Jacobian by D vector-Jacobian products (one backward pass per dimension).</summary>
    Exact,
    /// <summary>Hutchinson's estimate with Rademacher probes (entries +-1): unbiased, one backward pass for all probes.</summary>
    HutchinsonRademacher,
    /// <summary>Hutchinson's estimate with standard Gaussian probes: unbiased, one backward pass for all probes.</summary>
    HutchinsonGaussian,
}

/// <summary>
/// Divergence div v(x, t) = Tr(dv/dx) of a velocity field, by autograd, and the exact-ODE log-likelihood of a
/// flow-matching student built on it.
/// </summary>
/// <remarks>
/// Every method here assumes the field treats rows independently (row i of v(x, t) depends on row i of x only),
/// as a per-sample network without batch statistics does: the Jacobian of a row is then read off one batched
/// backward pass. Autograd is switched on inside (also under an outer no_grad); results are detached.
/// </remarks>
public static class Divergence
{
    /// <summary>
    /// The exact divergence at <paramref name="x"/> [N, ...] (rows flattened to D values) and time <paramref name="t"/>:
    /// float [N] in x's dtype and device. Costs one forward and D backward passes: meant for small D (toy data).
    /// A field that does not depend on x has divergence 0.
    /// </summary>
    /// <exception cref="ArgumentException">No rows, or a field returning a wrong shape.</exception>
    public static Tensor Exact(VelocityField v, Tensor x, double t)
    {
        ArgumentNullException.ThrowIfNull(v);
        CheckRows(x);
        using var scope = NewDisposeScope();
        return ExactWithVelocity(v, x, t).Divergence.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Hutchinson's per-probe estimates e_k^T (dv/dx) e_k at <paramref name="x"/> [N, ...]: float [probes, N].
    /// Each is an unbiased estimate of the divergence of its row; their mean is <see cref="Hutchinson"/>. All probes
    /// go through one forward and one backward pass over x repeated <paramref name="probes"/> times (memory grows with it).
    /// </summary>
    /// <param name="v">The velocity field.</param>
    /// <param name="x">States [N, ...].</param>
    /// <param name="t">Time.</param>
    /// <param name="probes">Number of probes per row, &gt;= 1.</param>
    /// <param name="generator">Source of the probes (on x's device).</param>
    /// <param name="estimator">Rademacher or Gaussian probes.</param>
    /// <exception cref="ArgumentException">No rows, probes &lt; 1, <see cref="DivergenceEstimator.Exact"/>, or a wrong field shape.</exception>
    public static Tensor HutchinsonProbes(VelocityField v, Tensor x, double t, int probes, Generator generator,
        DivergenceEstimator estimator = DivergenceEstimator.HutchinsonRademacher)
    {
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(generator);
        CheckRows(x);
        if (probes < 1) throw new ArgumentException($"probes must be >= 1, got {probes}", nameof(probes));
        if (estimator == DivergenceEstimator.Exact) throw new ArgumentException("estimator must be a Hutchinson estimator here; use Exact for the exact divergence", nameof(estimator));
        using var scope = NewDisposeScope();
        return HutchinsonWithVelocity(v, x, t, probes, generator, estimator).Estimates.MoveToOuterDisposeScope();
    }

    /// <summary>Hutchinson's estimate of the divergence at <paramref name="x"/> [N, ...]: the mean of <paramref name="probes"/> probe estimates, float [N].</summary>
    /// <exception cref="ArgumentException">As <see cref="HutchinsonProbes"/>.</exception>
    public static Tensor Hutchinson(VelocityField v, Tensor x, double t, int probes, Generator generator,
        DivergenceEstimator estimator = DivergenceEstimator.HutchinsonRademacher)
    {
        using var scope = NewDisposeScope();
        return HutchinsonProbes(v, x, t, probes, generator, estimator).mean([0]).MoveToOuterDisposeScope();
    }

    /// <summary>The divergence by the chosen estimator (exact, or Hutchinson with <paramref name="probes"/> probes from <paramref name="generator"/>).</summary>
    /// <exception cref="ArgumentException">A Hutchinson estimator without a generator, or as the estimators themselves.</exception>
    public static Tensor Estimate(VelocityField v, Tensor x, double t, DivergenceEstimator estimator, int probes = 1, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        return VelocityAndDivergence(v, x, t, estimator, probes, generator).Divergence.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// v(x, t) (detached) and its divergence [N] from the same forward pass: what the log-likelihood ODE needs at
    /// each evaluation, for the price of one. Hutchinson estimators average <paramref name="probes"/> probes.
    /// </summary>
    /// <exception cref="ArgumentException">A Hutchinson estimator without a generator, or as the estimators themselves.</exception>
    public static (Tensor Velocity, Tensor Divergence) VelocityAndDivergence(VelocityField v, Tensor x, double t, DivergenceEstimator estimator,
        int probes = 1, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(v);
        CheckRows(x);
        if (estimator == DivergenceEstimator.Exact) return ExactWithVelocity(v, x, t);
        if (generator is null) throw new ArgumentException("a Hutchinson estimator needs a generator", nameof(generator));
        if (probes < 1) throw new ArgumentException($"probes must be >= 1, got {probes}", nameof(probes));
        using var scope = NewDisposeScope();
        var (u, each) = HutchinsonWithVelocity(v, x, t, probes, generator, estimator);
        return (u.MoveToOuterDisposeScope(), each.mean([0]).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The log-density, in nats, that the ODE dx/dt = v(x, t) gives the data rows <paramref name="x1"/> [N, ...] when
    /// its noise end is N(0, I): float [N] in x1's dtype.
    /// </summary>
    /// <remarks>
    /// Convention: t = 0 is noise, t = 1 is data. Along a solution, d log p_t(x_t) / dt = -div v(x_t, t), so
    /// log p_1(x1) = log N(x0; 0, I) - integral_0^1 div v(x_t, t) dt. The state [x, a] is integrated backward from
    /// t = 1 (x = x1, a = 0) to t = 0 with da/dt = div v, which ends at a = -integral_0^1 div v dt and x = x0; the
    /// result is log N(x0; 0, I) + a. The fixed-step <paramref name="method"/> walks a uniform grid of
    /// <paramref name="steps"/> steps. With a Hutchinson estimator each evaluation draws fresh probes; the path of
    /// x does not depend on them, so the result stays an unbiased estimate of the solver's exact-divergence answer.
    /// </remarks>
    /// <param name="v">The student's velocity field.</param>
    /// <param name="x1">Data rows [N, ...].</param>
    /// <param name="steps">Solver steps from t = 1 to t = 0, &gt;= 1.</param>
    /// <param name="estimator">Exact divergence (small D) or a Hutchinson estimator.</param>
    /// <param name="probes">Hutchinson probes per evaluation.</param>
    /// <param name="generator">Probe source; required for Hutchinson estimators.</param>
    /// <param name="method">A fixed-step method (default RK4).</param>
    /// <exception cref="ArgumentException">steps &lt; 1, Dopri5, no rows, or as the divergence estimators.</exception>
    public static Tensor StudentLogLikelihood(VelocityField v, Tensor x1, int steps, DivergenceEstimator estimator,
        int probes = 1, Generator? generator = null, SolverMethod method = SolverMethod.Rk4)
    {
        ArgumentNullException.ThrowIfNull(v);
        CheckRows(x1);
        if (steps < 1) throw new ArgumentException($"steps must be >= 1, got {steps}", nameof(steps));
        if (method == SolverMethod.Dopri5) throw new ArgumentException("method must be a fixed-step method (euler, midpoint, heun, rk4)", nameof(method));
        if (estimator != DivergenceEstimator.Exact && generator is null) throw new ArgumentException("a Hutchinson estimator needs a generator", nameof(generator));
        if (estimator != DivergenceEstimator.Exact && probes < 1) throw new ArgumentException($"probes must be >= 1, got {probes}", nameof(probes));

        long n = x1.shape[0], d = x1.numel() / n;
        var rowShape = x1.shape;
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        // Augmented state [N, D + 1]: the flattened x and the running integral of the divergence.
        Tensor Augmented(Tensor state, double t)
        {
            var x = state.narrow(1, 0, d).reshape(rowShape);
            var (u, div) = VelocityAndDivergence(v, x, t, estimator, probes, generator);
            return cat([u.reshape(n, d), div.reshape(n, 1).to(u.dtype)], 1);
        }
        var start = cat([x1.detach().reshape(n, d), zeros(n, 1, dtype: x1.dtype, device: x1.device)], 1);
        var run = Integrator.Integrate(Augmented, start, new SolverSpec(method, steps, TimeGridKind.Uniform, T0: 1.0, T1: 0.0));
        var x0 = run.X.narrow(1, 0, d).to(ScalarType.Float64);
        var a = run.X.select(1, d).to(ScalarType.Float64);
        var logNormal = x0.square().sum(1) * -0.5 - 0.5 * d * Math.Log(2 * Math.PI);
        return (logNormal + a).to(x1.dtype).MoveToOuterDisposeScope();
    }

    private static void CheckRows(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() < 1 || x.shape[0] < 1) throw new ArgumentException($"x must have shape [N, ...] with N >= 1, got {Shapes.Show(x)}", nameof(x));
    }

    /// <summary>v(x, t) detached, and the exact divergence [N] by one backward pass per dimension.</summary>
    private static (Tensor Velocity, Tensor Divergence) ExactWithVelocity(VelocityField v, Tensor x, double t)
    {
        long n = x.shape[0], d = x.numel() / n;
        using var grad = enable_grad();
        using var scope = NewDisposeScope();
        var input = x.detach().clone().requires_grad_(true);
        var u = Evaluate(v, input, t);
        var flat = u.reshape(n, d);
        var div = zeros(n, dtype: x.dtype, device: x.device);
        if (u.requires_grad)
            for (long i = 0; i < d; i++)
            {
                using var inner = NewDisposeScope();
                var g = autograd.grad([flat.select(1, i).sum()], [input], retain_graph: i + 1 < d, allow_unused: true)[0];
                if (g is null || g.IsInvalid) continue;
                div.add_(g.reshape(n, d).select(1, i).detach());
            }
        return (u.detach().MoveToOuterDisposeScope(), div.MoveToOuterDisposeScope());
    }

    /// <summary>v(x, t) detached and the per-probe Hutchinson estimates [probes, N] from one forward and one backward pass.</summary>
    private static (Tensor Velocity, Tensor Estimates) HutchinsonWithVelocity(VelocityField v, Tensor x, double t, int probes, Generator generator,
        DivergenceEstimator estimator)
    {
        long n = x.shape[0], d = x.numel() / n;
        using var grad = enable_grad();
        using var scope = NewDisposeScope();
        // Rows repeated probe-major: row k*N + i is probe k of row i.
        var shape = x.shape.ToArray();
        shape[0] = probes * n;
        var input = x.detach().reshape(n, d).repeat(probes, 1).reshape(shape).requires_grad_(true);
        var e = Probes(probes * n, d, estimator, x.dtype, x.device, generator);
        var u = Evaluate(v, input, t);
        var velocity = u.detach().narrow(0, 0, n);
        var estimates = zeros(probes, n, dtype: x.dtype, device: x.device);
        if (u.requires_grad)
        {
            var g = autograd.grad([(u.reshape(probes * n, d) * e).sum()], [input], allow_unused: true)[0];
            if (g is not null && !g.IsInvalid) estimates = (g.detach().reshape(probes * n, d) * e).sum(1).reshape(probes, n);
        }
        return (velocity.MoveToOuterDisposeScope(), estimates.MoveToOuterDisposeScope());
    }

    private static Tensor Evaluate(VelocityField v, Tensor x, double t)
    {
        var u = v(x, t);
        if (u is null || !u.shape.SequenceEqual(x.shape))
            throw new ArgumentException($"the velocity field must return x's shape {Shapes.Show(x)}; got {(u is null ? "null" : Shapes.Show(u))}", nameof(v));
        return u;
    }

    private static Tensor Probes(long rows, long d, DivergenceEstimator estimator, ScalarType dtype, Device device, Generator generator) =>
        estimator == DivergenceEstimator.HutchinsonGaussian
            ? randn([rows, d], dtype: dtype, device: device, generator: generator)
            : randint(0, 2, [rows, d], dtype: dtype, device: device, generator: generator) * 2 - 1;
}
