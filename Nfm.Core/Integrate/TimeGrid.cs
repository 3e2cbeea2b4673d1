using Nfm.Descriptions;

namespace Nfm.Integrate;

/// <summary>The times at which a fixed-step solver evaluates its steps.</summary>
public static class TimeGrid
{
    /// <summary>
    /// n + 1 times from <paramref name="t0"/> to <paramref name="t1"/> (both exact), start first.
    /// <list type="bullet">
    /// <item><see cref="TimeGridKind.Uniform"/>: t_i = t0 + (t1 - t0) i / n.</item>
    /// <item><see cref="TimeGridKind.Quadratic"/>: with s_i = 1 - (1 - i/n)^2, forward (t0 &lt;= t1)
    /// t_i = t0 + (t1 - t0) s_i. Step i has length (t1 - t0)(2(n - i) - 1)/n^2: the first is (2n - 1) times the
    /// last, so steps are small near the data end.</item>
    /// </list>
    /// Backward (t0 &gt; t1), either kind, the grid is exactly the forward grid over [t1, t0] reversed
    /// (quadratic: t_i = t1 + (t0 - t1) s_{n-i}): the fine steps stay at the data side, the later time, and a
    /// round trip 0 → 1 → 0 visits the same points.
    /// n = 0 gives the single time [t0]: no step, the identity.
    /// </summary>
    /// <exception cref="ArgumentException">n &lt; 0, a non-finite time, or an unknown kind.</exception>
    public static double[] Make(TimeGridKind kind, int n, double t0, double t1)
    {
        if (n < 0) throw new ArgumentException($"step count n must be >= 0; got {n}", nameof(n));
        if (!double.IsFinite(t0)) throw new ArgumentException($"t0 must be finite; got {t0}", nameof(t0));
        if (!double.IsFinite(t1)) throw new ArgumentException($"t1 must be finite; got {t1}", nameof(t1));
        // Build the forward grid over [lo, hi] and read it backward when t0 > t1: a round trip then visits
        // exactly the same times, and the fine quadratic steps stay at the data side.
        var backward = t0 > t1;
        var (lo, hi) = backward ? (t1, t0) : (t0, t1);
        var times = new double[n + 1];
        for (var i = 0; i <= n; i++)
        {
            var s = kind switch
            {
                TimeGridKind.Uniform => (double)i / n,
                TimeGridKind.Quadratic => Quadratic(i, n),
                _ => throw new ArgumentException($"unknown time grid {(int)kind}; valid: {string.Join(", ", TimeGridKinds.Names)}", nameof(kind)),
            };
            times[backward ? n - i : i] = lo + (hi - lo) * s;
        }
        // Exact ends, whatever rounding did (and 0/0 at n = 0).
        times[0] = t0;
        if (n > 0) times[n] = t1;
        return times;
    }

    /// <summary>s_i = 1 - (1 - i/n)^2 on [0, 1].</summary>
    static double Quadratic(int i, int n)
    {
        var r = 1.0 - (double)i / n;
        return 1.0 - r * r;
    }
}
