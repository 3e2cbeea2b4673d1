using SkiaSharp;

namespace Nfm.Plots;

/// <summary>A named curve: points (Xs[i], Ys[i]) joined in order; the palette picks a colour when none is given.</summary>
public sealed record LineSeries(string Name, double[] Xs, double[] Ys, SKColor? Color = null);

/// <summary>Line charts as PNG (quality against steps, losses against time): markers at points (short series), linear or log axes, a legend.</summary>
public static class LinePlot
{
    /// <summary>Series with more points than this are drawn as plain lines (markers would merge into a band).</summary>
    public const int MaxMarkedPoints = 60;

    /// <summary>
    /// Draw <paramref name="series"/> and write a PNG of <paramref name="width"/> x <paramref name="height"/> pixels
    /// to <paramref name="path"/> (atomically). Axes fit the data (padded by 5%); <paramref name="logX"/> and
    /// <paramref name="logY"/> use base-10 log scales. Non-finite points (and non-positive ones on a log axis) are
    /// skipped and break the line.
    /// </summary>
    /// <exception cref="ArgumentException">no series, Xs and Ys of different lengths, or sizes below 100.</exception>
    public static void Save(string path, string title, string xLabel, string yLabel, IReadOnlyList<LineSeries> series,
                            bool logX = false, bool logY = false, int width = 800, int height = 560)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("a line plot needs at least one series", nameof(series));
        foreach (var s in series)
        {
            ArgumentNullException.ThrowIfNull(s.Xs, nameof(LineSeries.Xs));
            ArgumentNullException.ThrowIfNull(s.Ys, nameof(LineSeries.Ys));
            if (s.Xs.Length != s.Ys.Length)
                throw new ArgumentException($"series '{s.Name}': {s.Xs.Length} x values but {s.Ys.Length} y values", nameof(series));
        }

        bool Usable(double x, double y) =>
            double.IsFinite(x) && double.IsFinite(y) && (!logX || x > 0) && (!logY || y > 0);
        var xAxis = Axis.Fit(series.SelectMany(s => s.Xs.Where((x, i) => Usable(x, s.Ys[i]))), logX);
        var yAxis = Axis.Fit(series.SelectMany(s => s.Ys.Where((y, i) => Usable(s.Xs[i], y))), logY);

        using var frame = new PlotFrame(width, height, xAxis, yAxis, title ?? "", xLabel ?? "", yLabel ?? "");
        var colors = series.Select((s, i) => s.Color ?? PlotStyle.ColorAt(i)).ToArray();
        frame.InArea(canvas =>
        {
            for (int k = 0; k < series.Count; k++)
            {
                var s = series[k];
                using var line = new SKPaint { Color = colors[k], IsAntialias = true, IsStroke = true, StrokeWidth = 2, StrokeCap = SKStrokeCap.Round };
                using var dot = new SKPaint { Color = colors[k], IsAntialias = true };
                bool markers = s.Xs.Length <= MaxMarkedPoints;
                SKPoint? previous = null;
                for (int i = 0; i < s.Xs.Length; i++)
                {
                    if (!Usable(s.Xs[i], s.Ys[i])) { previous = null; continue; }
                    var p = new SKPoint(frame.PixelX(s.Xs[i]), frame.PixelY(s.Ys[i]));
                    if (previous is SKPoint q) canvas.DrawLine(q, p, line);
                    if (markers) canvas.DrawCircle(p, 3.5f, dot);
                    previous = p;
                }
            }
        });
        frame.Legend([.. series.Select((s, i) => (s.Name, colors[i]))], lines: true);
        frame.Save(path);
    }
}
