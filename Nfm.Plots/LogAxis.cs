using System.Globalization;
using ScottPlot;
using ScottPlot.TickGenerators;

namespace Nfm.Plots;

/// <summary>
/// Base-10 logarithmic axes. ScottPlot 5 has no log scale: a chart plots log10 of its values (<see cref="Position"/>)
/// and gives the axis a <see cref="LogTickGenerator"/>, whose ticks are labelled with the real values (1, 10, 100).
/// </summary>
public static class LogAxis
{
    /// <summary>Where <paramref name="value"/> is drawn on a log axis; NaN for values a log axis cannot show (≤ 0, not finite).</summary>
    public static double Position(double value) => double.IsFinite(value) && value > 0 ? Math.Log10(value) : double.NaN;

    /// <summary>Makes <paramref name="axis"/> read as a log axis for data plotted at <see cref="Position"/>.</summary>
    public static void Apply(IAxis axis)
    {
        ArgumentNullException.ThrowIfNull(axis);
        axis.TickGenerator = new LogTickGenerator();
    }

    /// <summary>A short label: plain digits for ordinary magnitudes, 1e-05 style for very small or large ones.</summary>
    public static string Format(double v)
    {
        double a = Math.Abs(v);
        if (a == 0) return "0";
        if (a >= 1e5 || a < 1e-3) return v.ToString("0.##e+0", CultureInfo.InvariantCulture);
        // Three significant digits, without exponent or trailing zeros: 1000, 0.05, 2.5.
        int decimals = Math.Clamp(2 - (int)Math.Floor(Math.Log10(a)), 0, 5);
        return Math.Round(v, decimals).ToString("0.#####", CultureInfo.InvariantCulture);
    }
}

/// <summary>
/// Ticks for an axis in log10 units: major ticks at powers of ten when the view holds at least three (every second or
/// third one when it holds many), else at 1, 2 and 5 times powers of ten, else at 1..9 times; log-spaced minor ticks
/// at 2..9 times each power of ten; labels show the real values.
/// </summary>
public sealed class LogTickGenerator : ITickGenerator
{
    public Tick[] Ticks { get; set; } = [];
    public int MaxTickCount { get; set; } = 1000;

    /// <summary>Fewest pixels between two major tick labels.</summary>
    public float MinimumTickSpacing { get; set; } = 40;

    static readonly double[][] Multipliers = [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]];

    public void Regenerate(CoordinateRange range, Edge edge, PixelLength size, Paint paint, LabelStyle labelStyle)
    {
        double lo = range.Min, hi = range.Max;
        if (!double.IsFinite(lo) || !double.IsFinite(hi) || hi <= lo || hi - lo > 300) { Ticks = []; return; }
        int maxMajor = Math.Max(2, (int)(size.Length / MinimumTickSpacing));
        int first = (int)Math.Floor(lo), last = (int)Math.Ceiling(hi);

        List<double> major = [];
        foreach (var set in Multipliers)
        {
            major = Values(first, last, set, lo, hi);
            if (major.Count >= 3) break;
        }
        if (major.Count < 2)
        {
            // Less than one step of 1..9 in view: fall back to evenly spaced ticks in log units.
            var linear = new NumericAutomatic { LabelFormatter = v => LogAxis.Format(Math.Pow(10, v)) };
            linear.Regenerate(range, edge, size, paint, labelStyle);
            Ticks = linear.Ticks;
            return;
        }
        int every = (major.Count + maxMajor - 1) / maxMajor;
        // Only powers of ten can be this many (the finer sets are used below two decades): keep every n-th.
        if (every > 1) major = major.Where(p => ((int)Math.Round(p) % every + every) % every == 0).ToList();

        var ticks = major.Select(p => Tick.Major(p, LogAxis.Format(Math.Pow(10, p)))).ToList();
        if (last - first <= maxMajor)
            foreach (var p in Values(first, last, Multipliers[2], lo, hi))
                if (!major.Any(m => Math.Abs(m - p) < 1e-9)) ticks.Add(Tick.Minor(p));
        Ticks = [.. ticks.Take(MaxTickCount)];
    }

    /// <summary>log10 of m 10^k for each multiplier m and k in [first, last], inside [lo, hi].</summary>
    static List<double> Values(int first, int last, double[] multipliers, double lo, double hi)
    {
        var values = new List<double>();
        for (int k = first; k <= last; k++)
            foreach (var m in multipliers)
            {
                double p = k + Math.Log10(m);
                if (p >= lo - 1e-9 && p <= hi + 1e-9) values.Add(p);
            }
        return values;
    }
}
