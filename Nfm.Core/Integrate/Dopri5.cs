using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Integrate;

/// <summary>
/// Dormand–Prince 5(4): an explicit Runge–Kutta pair that advances with the fifth-order solution and uses the
/// embedded fourth-order one as an error estimate. Seven stages, the last at the new state ("first same as
/// last"), so an accepted step costs six new evaluations.
/// </summary>
public static class Dopri5
{
    // Butcher tableau (Dormand & Prince 1980). Row i of A gives stage i+1 from stages 1..i.
    static readonly double[] C = [0.0, 1.0 / 5, 3.0 / 10, 4.0 / 5, 8.0 / 9, 1.0, 1.0];
    static readonly double[][] A =
    [
        [],
        [1.0 / 5],
        [3.0 / 40, 9.0 / 40],
        [44.0 / 45, -56.0 / 15, 32.0 / 9],
        [19372.0 / 6561, -25360.0 / 2187, 64448.0 / 6561, -212.0 / 729],
        [9017.0 / 3168, -355.0 / 33, 46732.0 / 5247, 49.0 / 176, -5103.0 / 18656],
        [35.0 / 384, 0.0, 500.0 / 1113, 125.0 / 192, -2187.0 / 6784, 11.0 / 84],
    ];
    // Fifth-order weights minus fourth-order weights, over all seven stages: h * sum E_i k_i estimates the local error.
    static readonly double[] E =
        [71.0 / 57600, 0.0, -71.0 / 16695, 71.0 / 1920, -17253.0 / 339200, 22.0 / 525, -1.0 / 40];

    /// <summary>Step-size factor applied to the optimal prediction, so the next step is likely accepted.</summary>
    public const double Safety = 0.9;
    /// <summary>A step shrinks by at most this factor.</summary>
    public const double MinFactor = 0.2;
    /// <summary>A step grows by at most this factor (and not at all right after a rejection).</summary>
    public const double MaxFactor = 10.0;

    /// <summary>
    /// Integrate from <paramref name="t0"/> to <paramref name="t1"/> (either direction). Error norm: for each
    /// sample (row) the RMS over its elements of err / (atol + rtol max(|x|, |x_new|)); a step is accepted when
    /// the worst sample's norm is &lt;= 1, so each sample's accuracy holds whatever the batch size. The next step is
    /// h * clamp(Safety * norm^(-1/5), MinFactor, MaxFactor). The first step is chosen from the field's scale at
    /// the start (Hairer, Nørsett &amp; Wanner, Solving ODEs I, II.4), at the price of one extra evaluation.
    /// </summary>
    /// <param name="v">Velocity field.</param>
    /// <param name="x0">Start state [N, ...]; never freed.</param>
    /// <param name="t0">Start time.</param>
    /// <param name="t1">End time (t1 &lt; t0 integrates backward; t1 = t0 is the identity, no evaluation).</param>
    /// <param name="rtol">Relative tolerance (&gt; 0).</param>
    /// <param name="atol">Absolute tolerance (&gt; 0).</param>
    /// <param name="maxSteps">Most step attempts (accepted plus rejected).</param>
    /// <param name="keepTrajectory">Keep the state at every accepted time.</param>
    /// <exception cref="InvalidOperationException">More than <paramref name="maxSteps"/> attempts, or the step size
    /// underflowed (the field is too stiff or not finite for these tolerances).</exception>
    public static (Tensor X, double[] Times, List<Tensor>? Trajectory) Solve(
        VelocityField v, Tensor x0, double t0, double t1, double rtol, double atol, int maxSteps, bool keepTrajectory)
    {
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(x0);
        if (!(rtol > 0)) throw new ArgumentException($"rtol must be > 0; got {rtol}", nameof(rtol));
        if (!(atol > 0)) throw new ArgumentException($"atol must be > 0; got {atol}", nameof(atol));
        if (maxSteps < 1) throw new ArgumentException($"maxSteps must be >= 1; got {maxSteps}", nameof(maxSteps));

        var times = new List<double> { t0 };
        var trajectory = keepTrajectory ? new List<Tensor> { x0.alias() } : null;
        if (t0 == t1) return (trajectory?[0] ?? x0.alias(), times.ToArray(), trajectory);

        var direction = Math.Sign(t1 - t0);
        var span = Math.Abs(t1 - t0);
        var x = x0;
        Tensor k1;
        double h;
        using (var scope = NewDisposeScope())
        {
            // An alias, so freeing it later never frees a tensor the field itself holds (a constant velocity).
            k1 = v(x0, t0).alias();
            h = direction * Math.Min(span, InitialStep(v, x0, k1, t0, direction, rtol, atol));
            k1.MoveToOuterDisposeScope();
        }

        var t = t0;
        var attempts = 0;
        var rejectedLast = false;
        while (direction * (t1 - t) > 0)
        {
            if (++attempts > maxSteps)
                throw new InvalidOperationException(
                    $"dopri5 exceeded MaxSteps = {maxSteps} step attempts integrating from t = {t0} to t = {t1} " +
                    $"(reached t = {t}, last step {h:g3}); loosen Rtol/Atol or raise MaxSteps");
            // Land exactly on t1 rather than a rounding error short of it.
            var last = direction * (t + h - t1) >= 0 || Math.Abs(t1 - (t + h)) <= 1e-12 * span;
            if (last) h = t1 - t;
            var tNext = last ? t1 : t + h;
            if (Math.Abs(h) <= 1e-14 * Math.Max(Math.Abs(t), span))
                throw new InvalidOperationException(
                    $"dopri5 step size underflow at t = {t} (step {h:g3}) integrating from t = {t0} to t = {t1}: " +
                    "the velocity field is too stiff or not finite for Rtol/Atol");

            Tensor? xNew = null, k7 = null;
            double norm;
            using (var scope = NewDisposeScope())
            {
                var k = new Tensor[7];
                k[0] = k1;
                for (var i = 1; i < 7; i++)
                {
                    var xi = Combine(x, h, A[i], k);
                    k[i] = v(xi, i == 6 ? tNext : t + C[i] * h);
                }
                // Stage 7 is evaluated at the fifth-order solution itself: it is both x_new and the next k1.
                var candidate = Combine(x, h, A[6], k);
                var err = Combine(null, h, E, k);
                var scale = torch.maximum(x.abs(), candidate.abs()).mul(rtol).add(atol);
                norm = ErrorNorm(err, scale);
                if (norm <= 1.0)
                {
                    xNew = candidate.MoveToOuterDisposeScope();
                    k7 = k[6].alias().MoveToOuterDisposeScope();
                }
            }

            if (xNew is not null && k7 is not null)
            {
                if (!keepTrajectory && !ReferenceEquals(x, x0)) x.Dispose();
                k1.Dispose();
                x = xNew;
                k1 = k7;
                t = tNext;
                times.Add(t);
                trajectory?.Add(x);
            }

            var factor = double.IsNaN(norm) ? MinFactor
                : norm == 0 ? MaxFactor
                : Math.Clamp(Safety * Math.Pow(norm, -0.2), MinFactor, MaxFactor);
            if (norm <= 1.0 && rejectedLast) factor = Math.Min(factor, 1.0);
            rejectedLast = !(norm <= 1.0);
            h *= factor;
        }
        k1.Dispose();
        return (x, times.ToArray(), trajectory);
    }

    /// <summary>(x or 0) + h * sum_j w_j k_j over the nonzero weights.</summary>
    static Tensor Combine(Tensor? x, double h, double[] w, Tensor[] k)
    {
        Tensor? sum = null;
        for (var j = 0; j < w.Length; j++)
        {
            if (w[j] == 0.0) continue;
            sum = sum is null ? k[j].mul(w[j]) : sum.add(k[j], w[j]);
        }
        if (sum is null) throw new InvalidOperationException("a Runge–Kutta stage with no weights");
        return x is null ? sum.mul(h) : x.add(sum, h);
    }

    /// <summary>Worst sample's RMS of err / scale: rows are samples, every other axis is flattened.</summary>
    static double ErrorNorm(Tensor err, Tensor scale)
    {
        if (err.numel() == 0) return 0.0;
        var ratio = err.div(scale);
        var rows = ratio.dim() == 0 ? ratio.reshape(1, 1) : ratio.reshape(ratio.shape[0], -1);
        return rows.square().mean([1]).sqrt().max().ToDouble();
    }

    /// <summary>
    /// Initial step: h0 = 0.01 ||x0|| / ||f0|| (scaled norms), then one Euler probe estimates the second derivative
    /// and h1 = (0.01 / max(||f0||, ||f'||))^(1/5); take min(100 h0, h1).
    /// </summary>
    static double InitialStep(VelocityField v, Tensor x0, Tensor f0, double t0, int direction, double rtol, double atol)
    {
        var scale = x0.abs().mul(rtol).add(atol);
        var d0 = ErrorNorm(x0, scale);
        var d1 = ErrorNorm(f0, scale);
        var h0 = d0 < 1e-5 || d1 < 1e-5 ? 1e-6 : 0.01 * d0 / d1;
        var x1 = x0.add(f0, direction * h0);
        var f1 = v(x1, t0 + direction * h0);
        var d2 = ErrorNorm(f1.sub(f0), scale) / h0;
        var dmax = Math.Max(d1, d2);
        var h1 = dmax <= 1e-15 ? Math.Max(1e-6, h0 * 1e-3) : Math.Pow(0.01 / dmax, 0.2);
        var h = Math.Min(100 * h0, h1);
        return double.IsFinite(h) && h > 0 ? h : 1e-6;
    }
}
