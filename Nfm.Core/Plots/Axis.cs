using System.Globalization;

namespace Nfm.Plots;

/// <summary>A closed range of values on a linear or base-10 logarithmic scale, with readable tick positions.</summary>
internal sealed class Axis
{
    public double Min { get; }
    public double Max { get; }
    public bool Log { get; }

    public Axis(double min, double max, bool log)
    {
        if (!(min < max) || !double.IsFinite(min) || !double.IsFinite(max))
            throw new ArgumentException($"axis range must be finite with min < max, got [{min}, {max}]");
        if (log && min <= 0) throw new ArgumentException($"a logarithmic axis needs positive values, got min {min}");
        (Min, Max, Log) = (min, max, log);
    }

    /// <summary>The smallest range holding every finite value (positive ones on a log axis), padded by a fraction on each side.</summary>
    public static Axis Fit(IEnumerable<double> values, bool log, double pad = 0.05)
    {
        var usable = values.Where(v => double.IsFinite(v) && (!log || v > 0)).Select(v => log ? Math.Log10(v) : v).ToList();
        double lo = usable.Count == 0 ? 0 : usable.Min(), hi = usable.Count == 0 ? 1 : usable.Max();
        if (hi - lo < 1e-12 * Math.Max(1, Math.Abs(lo)))
        {
            double half = log ? 0.5 : Math.Max(Math.Abs(lo) * 0.1, 1.0);
            (lo, hi) = (lo - half, hi + half);
        }
        double margin = (hi - lo) * pad;
        (lo, hi) = (lo - margin, hi + margin);
        return log ? new Axis(Math.Pow(10, lo), Math.Pow(10, hi), true) : new Axis(lo, hi, false);
    }

    double Scale(double v) => Log ? Math.Log10(v) : v;

    /// <summary>Where <paramref name="v"/> falls between pixel <paramref name="from"/> (at Min) and <paramref name="to"/> (at Max).</summary>
    public float ToPixel(double v, float from, float to) =>
        from + (float)((Scale(v) - Scale(Min)) / (Scale(Max) - Scale(Min))) * (to - from);

    /// <summary>Tick values inside the range: steps of 1, 2 or 5 times a power of ten; powers of ten on a wide log axis.</summary>
    public IReadOnlyList<double> Ticks()
    {
        if (Log)
        {
            double lo = Math.Log10(Min), hi = Math.Log10(Max);
            if (hi - lo >= 1)
            {
                int first = (int)Math.Ceiling(lo), last = (int)Math.Floor(hi);
                int every = Math.Max(1, (last - first + 1 + 7) / 8);
                var ticks = new List<double>();
                for (int k = first; k <= last; k += every) ticks.Add(Math.Pow(10, k));
                if (ticks.Count < 3)
                    for (int k = first - 1; k <= last; k++)
                        foreach (var m in new[] { 2.0, 5.0 })
                        {
                            double v = m * Math.Pow(10, k);
                            if (v >= Min && v <= Max) ticks.Add(v);
                        }
                ticks.Sort();
                return ticks;
            }
        }
        return LinearTicks(Min, Max);
    }

    static List<double> LinearTicks(double min, double max)
    {
        double raw = (max - min) / 6;
        double magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1.0, 2.0, 5.0, 10.0 }.Select(m => m * magnitude).First(s => s >= raw * 0.999);
        int decimals = Math.Clamp(-(int)Math.Floor(Math.Log10(step)), 0, 15);
        var ticks = new List<double>();
        for (long k = (long)Math.Ceiling(min / step); k * step <= max + step * 1e-9; k++)
            ticks.Add(Math.Round(k * step, decimals) + 0.0); // + 0.0 turns -0 into 0
        return ticks;
    }

    /// <summary>A short label: plain digits for ordinary magnitudes, 1e-05 style for very small or large ones.</summary>
    public static string Format(double v)
    {
        double a = Math.Abs(v);
        if (a != 0 && (a >= 1e5 || a < 1e-3)) return v.ToString("0.##e+0", CultureInfo.InvariantCulture);
        return v.ToString("G5", CultureInfo.InvariantCulture);
    }
}
