using System.Diagnostics;

namespace Nfm;

/// <summary>Wall-clock timing helpers: warm-up, repeats, median (or fastest).</summary>
/// <remarks>
/// The one copy, in the core: the benchmarks (project Nfm.Bench) use it, and so does the library's experiment (the
/// latency figures of a comparison), which must not depend on the benchmarks.
/// </remarks>
public static class Timing
{
    /// <summary>Runs <paramref name="action"/> <paramref name="warmup"/> times untimed, then <paramref name="repeats"/>
    /// times timed; returns the median seconds per call.</summary>
    public static double MedianSeconds(Action action, int repeats = 5, int warmup = 1)
    {
        return Median(Seconds(action, repeats, warmup));
    }

    /// <summary>As <see cref="MedianSeconds"/>, but the fastest call: on a machine shared with other work it is the
    /// least disturbed one (a profile's parts are compared with this).</summary>
    public static double FastestSeconds(Action action, int repeats = 5, int warmup = 1) => Seconds(action, repeats, warmup)[0];

    /// <summary>The median of sorted values.</summary>
    public static double Median(double[] sorted) =>
        sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : 0.5 * (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]);

    /// <summary>The sorted seconds of <paramref name="repeats"/> timed calls after <paramref name="warmup"/> untimed ones.</summary>
    public static double[] Seconds(Action action, int repeats, int warmup)
    {
        if (repeats < 1) throw new ArgumentException($"repeats must be >= 1, got {repeats}", nameof(repeats));
        for (int i = 0; i < warmup; i++) action();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            var w = Stopwatch.StartNew();
            action();
            times[i] = w.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        return times;
    }
}
