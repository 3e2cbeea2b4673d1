using System.Diagnostics;

namespace Nfm.Bench;

/// <summary>Wall-clock timing helpers shared by the benchmarks: warm-up, repeats, median.</summary>
public static class Timing
{
    /// <summary>Runs <paramref name="action"/> <paramref name="warmup"/> times untimed, then <paramref name="repeats"/>
    /// times timed; returns the median seconds per call.</summary>
    public static double MedianSeconds(Action action, int repeats = 5, int warmup = 1)
    {
        for (int i = 0; i < warmup; i++) action();
        var times = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            var w = Stopwatch.StartNew();
            action();
            times[i] = w.Elapsed.TotalSeconds;
        }
        Array.Sort(times);
        return repeats % 2 == 1 ? times[repeats / 2] : 0.5 * (times[repeats / 2 - 1] + times[repeats / 2]);
    }
}
