using ScottPlot;

namespace Nfm.Plots;

/// <summary>The loss of every training step of one run, from step <see cref="FirstStep"/> on.</summary>
public sealed record LossSeries(string Name, double[] Losses, long FirstStep = 1);

/// <summary>Loss curves: training loss against step, one line per run, averaged over blocks of steps so that noise does not hide the trend.</summary>
public static class LossChart
{
    /// <summary>Each curve is drawn with at most this many points: the mean of each block of consecutive steps.</summary>
    public const int MaxPoints = 400;

    /// <summary>
    /// A plot of <paramref name="series"/>, to restyle or save with <see cref="ChartFile.Save"/>. Runs longer than
    /// <see cref="MaxPoints"/> steps are drawn as means over equal blocks (x is the block's last step); non-finite
    /// losses are left out of the means. <paramref name="logY"/> draws a log loss axis (for losses that stay positive).
    /// </summary>
    /// <exception cref="ArgumentException">no series.</exception>
    public static Plot Create(string title, IReadOnlyList<LossSeries> series, bool logY = false)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("a loss chart needs at least one series", nameof(series));
        var lines = series.Select((s, k) =>
        {
            ArgumentNullException.ThrowIfNull(s.Losses, nameof(LossSeries.Losses));
            var (xs, ys) = BlockMeans(s.Losses, s.FirstStep);
            return new LineSeries(s.Name, xs, ys, ChartStyle.ColorAt(k));
        }).ToList();
        return LineChart.Create(title, "training step", "loss", lines, logX: false, logY: logY);
    }

    static (double[] Xs, double[] Ys) BlockMeans(double[] losses, long firstStep)
    {
        int block = Math.Max(1, (losses.Length + MaxPoints - 1) / MaxPoints);
        var xs = new List<double>();
        var ys = new List<double>();
        for (int start = 0; start < losses.Length; start += block)
        {
            int end = Math.Min(losses.Length, start + block);
            double sum = 0; int n = 0;
            for (int i = start; i < end; i++) if (double.IsFinite(losses[i])) { sum += losses[i]; n++; }
            xs.Add(firstStep + end - 1);
            ys.Add(n > 0 ? sum / n : double.NaN);
        }
        return (xs.ToArray(), ys.ToArray());
    }
}
