using ScottPlot;

namespace Nfm.Plots;

/// <summary>
/// A named curve: points (Xs[i], Ys[i]) joined in order; the palette picks a colour when none is given. A
/// <paramref name="Reference"/> curve (a level to compare against, such as the teacher's quality) is dashed, without markers.
/// </summary>
public sealed record LineSeries(string Name, double[] Xs, double[] Ys, Color? Color = null, bool Reference = false);

/// <summary>Line charts (quality against sampling steps, losses against training steps): linear or log axes, markers on short series, a legend.</summary>
public static class LineChart
{
    /// <summary>Series with more points than this are drawn as plain lines (markers would merge into a band).</summary>
    public const int MaxMarkedPoints = 60;

    /// <summary>
    /// A plot of <paramref name="series"/>, to restyle or save with <see cref="ChartFile.Save"/>. <paramref name="logX"/>
    /// and <paramref name="logY"/> draw base-10 log axes (see <see cref="LogAxis"/>). Non-finite points, and
    /// non-positive ones on a log axis, are skipped and break the line.
    /// </summary>
    /// <exception cref="ArgumentException">no series, or Xs and Ys of different lengths.</exception>
    public static Plot Create(string title, string xLabel, string yLabel, IReadOnlyList<LineSeries> series,
                              bool logX = false, bool logY = false)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("a line chart needs at least one series", nameof(series));
        foreach (var s in series)
        {
            ArgumentNullException.ThrowIfNull(s.Xs, nameof(LineSeries.Xs));
            ArgumentNullException.ThrowIfNull(s.Ys, nameof(LineSeries.Ys));
            if (s.Xs.Length != s.Ys.Length)
                throw new ArgumentException($"series '{s.Name}': {s.Xs.Length} x values but {s.Ys.Length} y values", nameof(series));
        }

        var plot = ChartStyle.NewPlot(title, xLabel, yLabel);
        double Px(double x) => logX ? LogAxis.Position(x) : (double.IsFinite(x) ? x : double.NaN);
        double Py(double y) => logY ? LogAxis.Position(y) : (double.IsFinite(y) ? y : double.NaN);
        for (int k = 0; k < series.Count; k++)
        {
            var s = series[k];
            var color = s.Color ?? ChartStyle.ColorAt(k);
            bool markers = s.Xs.Length <= MaxMarkedPoints;
            bool named = false;
            // One plottable per unbroken run of drawable points, so that a skipped point breaks the line.
            foreach (var run in Runs(s.Xs.Select(Px).ToArray(), s.Ys.Select(Py).ToArray()))
            {
                var line = plot.Add.Scatter(run.Select(p => p.X).ToArray(), run.Select(p => p.Y).ToArray(), color);
                line.LineWidth = 2;
                line.MarkerSize = markers && !s.Reference ? 7 : 0;
                if (s.Reference) line.LinePattern = LinePattern.Dashed;
                if (!named) { line.LegendText = s.Name ?? ""; named = true; }
            }
        }
        if (logX) LogAxis.Apply(plot.Axes.Bottom);
        if (logY) LogAxis.Apply(plot.Axes.Left);
        ChartStyle.LegendIfNamed(plot, series.Select(s => s.Name));
        return plot;
    }

    static IEnumerable<List<(double X, double Y)>> Runs(double[] xs, double[] ys)
    {
        var run = new List<(double X, double Y)>();
        for (int i = 0; i < xs.Length; i++)
        {
            if (double.IsNaN(xs[i]) || double.IsNaN(ys[i]))
            {
                if (run.Count > 0) { yield return run; run = []; }
                continue;
            }
            run.Add((xs[i], ys[i]));
        }
        if (run.Count > 0) yield return run;
    }
}
