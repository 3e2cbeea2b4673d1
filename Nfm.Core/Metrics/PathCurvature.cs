using Nfm.Descriptions;
using Nfm.Integrate;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Metrics;

/// <summary>How far a sampler's paths are from straight lines.</summary>
/// <param name="PerDimension">The curvature per dimension: <paramref name="Total"/> / D. This is the headline figure.</param>
/// <param name="Total">E ||v(x_t, t) - (x1 - x0)||^2 summed over the D values of a row (averaged over rows and times).</param>
/// <param name="Times">The times at which the velocity was compared: the solver's visited times without the last.</param>
/// <param name="PerDimensionAtTime">The per-dimension deviation at each of <paramref name="Times"/> (averaged over rows).</param>
/// <param name="Nfe">Velocity evaluations spent: the integration's plus one per compared time.</param>
public sealed record PathCurvatureResult(double PerDimension, double Total, double[] Times, double[] PerDimensionAtTime, int Nfe);

/// <summary>
/// Path curvature in the sense of rectified flow: the mean squared deviation of the velocity along a path from the
/// straight displacement between its ends, E_t E_rows ||v(x_t, t) - (x1 - x0)||^2. Straight paths (those one Euler
/// step follows exactly) score 0.
/// </summary>
public static class PathCurvature
{
    /// <summary>
    /// Integrates <paramref name="v"/> from the noise <paramref name="x0"/> [N, ...] as <paramref name="spec"/> says
    /// (keeping the trajectory), then compares the velocity at each visited state x(t_i), i = 0 .. n-1, with the
    /// straight velocity (x(T1) - x(T0)) / (T1 - T0) (that is x1 - x0 on [0, 1]). The time average is the left-point
    /// rule weighted by step length, sum_i |t_(i+1) - t_i| dev(t_i) / |T1 - T0|: on a uniform grid exactly the plain
    /// mean over the grid times t_0 .. t_(n-1); on a quadratic grid (or Dopri5's own steps) it still approximates the
    /// integral over t instead of over-weighting the crowded end. Computed without gradients, in float64.
    /// </summary>
    /// <param name="v">The velocity field.</param>
    /// <param name="x0">Start states (noise at t = 0) [N, ...], N &gt;= 1.</param>
    /// <param name="spec">Solver: a fixed-step method (the usual choice) or Dopri5; it must take at least one step and T0 != T1.</param>
    /// <exception cref="ArgumentException">No rows, zero steps, an empty interval, or a field returning a wrong shape.</exception>
    public static PathCurvatureResult Measure(VelocityField v, Tensor x0, SolverSpec spec)
    {
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        if (x0.dim() < 1 || x0.shape[0] < 1) throw new ArgumentException($"x0 must have shape [N, ...] with N >= 1, got {Shapes.Show(x0)}", nameof(x0));
        if (spec.T0 == spec.T1) throw new ArgumentException($"the interval [T0, T1] must not be empty, got T0 = T1 = {spec.T0}", nameof(spec));
        if (spec.Method != SolverMethod.Dopri5 && spec.Steps < 1)
            throw new ArgumentException($"spec.Steps must be >= 1 to trace a path, got {spec.Steps}", nameof(spec));

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var run = Integrator.Integrate(v, x0, spec, keepTrajectory: true);
        var path = run.Trajectory!;
        long n = x0.shape[0];
        long d = x0.numel() / n;
        double span = spec.T1 - spec.T0;
        var straight = ((run.X.reshape(n, -1).to(ScalarType.Float64) - x0.reshape(n, -1).to(ScalarType.Float64)) / span);

        int steps = run.Times.Length - 1;
        var times = new double[steps];
        var perTime = new double[steps];
        double total = 0;
        for (int i = 0; i < steps; i++)
        {
            using var step = NewDisposeScope();
            var u = v(path[i], run.Times[i]);
            if (u is null || !u.shape.SequenceEqual(x0.shape))
                throw new ArgumentException($"the velocity field must return x's shape {Shapes.Show(x0)}; got {(u is null ? "null" : Shapes.Show(u))}", nameof(v));
            double rowTotal = (u.reshape(n, -1).to(ScalarType.Float64) - straight).square().sum(1).mean().item<double>();
            times[i] = run.Times[i];
            perTime[i] = rowTotal / d;
            total += Math.Abs(run.Times[i + 1] - run.Times[i]) / Math.Abs(span) * rowTotal;
        }
        return new PathCurvatureResult(total / d, total, times, perTime, run.Nfe + steps);
    }
}
