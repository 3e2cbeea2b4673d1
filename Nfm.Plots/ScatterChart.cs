using ScottPlot;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Plots;

/// <summary>A named set of 2-D points [N, 2] drawn in one colour; the palette picks it when none is given.</summary>
public sealed record ScatterSeries(string Name, float[,] Points, Color? Color = null)
{
    /// <summary>A series from a tensor [N, 2] (any float type, any device).</summary>
    /// <exception cref="ArgumentException">the tensor is not [N, 2].</exception>
    public ScatterSeries(string name, Tensor points, Color? color = null) : this(name, ToArray(points), color) { }

    static float[,] ToArray(Tensor points)
    {
        ArgumentNullException.ThrowIfNull(points);
        if (points.dim() != 2 || points.shape[1] != 2)
            throw new ArgumentException($"scatter points must have shape [N, 2], got [{string.Join(", ", points.shape)}]", nameof(points));
        using var cpu = points.detach().cpu().to_type(ScalarType.Float32).contiguous();
        var flat = cpu.data<float>().ToArray();
        var result = new float[points.shape[0], 2];
        Buffer.BlockCopy(flat, 0, result, 0, flat.Length * sizeof(float));
        return result;
    }
}

/// <summary>Both axes of a scatter chart span at least [Min, Max].</summary>
public sealed record AxisRange(double Min, double Max);

/// <summary>Scatter charts of 2-D point sets (samples against data): one unit is as long on both axes, so shapes are not stretched.</summary>
public static class ScatterChart
{
    /// <summary>
    /// A plot of <paramref name="series"/> (in order, later ones on top), to restyle or save with
    /// <see cref="ChartFile.Save"/>. Equal aspect: the shorter axis is widened to match the other's scale.
    /// Both axes span <paramref name="limits"/> when given (points outside are cut off); otherwise they fit every
    /// finite point. Non-finite points are skipped.
    /// </summary>
    /// <exception cref="ArgumentException">no series, bad limits or marker size.</exception>
    public static Plot Create(string title, IReadOnlyList<ScatterSeries> series, AxisRange? limits = null, float markerSize = 3)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("a scatter chart needs at least one series", nameof(series));
        if (!(markerSize > 0)) throw new ArgumentOutOfRangeException(nameof(markerSize), $"marker size must be > 0, got {markerSize}");
        if (limits is not null && (!(limits.Min < limits.Max) || !double.IsFinite(limits.Min) || !double.IsFinite(limits.Max)))
            throw new ArgumentException($"limits must be finite with Min < Max, got [{limits.Min}, {limits.Max}]", nameof(limits));

        var plot = ChartStyle.NewPlot(title, "", "");
        for (int k = 0; k < series.Count; k++)
        {
            var s = series[k];
            ArgumentNullException.ThrowIfNull(s.Points, nameof(ScatterSeries.Points));
            var xs = new List<double>(s.Points.GetLength(0));
            var ys = new List<double>(s.Points.GetLength(0));
            for (int i = 0; i < s.Points.GetLength(0); i++)
            {
                float x = s.Points[i, 0], y = s.Points[i, 1];
                if (float.IsFinite(x) && float.IsFinite(y)) { xs.Add(x); ys.Add(y); }
            }
            var markers = plot.Add.Markers(xs.ToArray(), ys.ToArray(), MarkerShape.FilledCircle, markerSize, s.Color ?? ChartStyle.ColorAt(k));
            markers.LegendText = s.Name ?? "";
        }
        if (limits is not null) plot.Axes.SetLimits(limits.Min, limits.Max, limits.Min, limits.Max);
        plot.Axes.Rules.Add(new ScottPlot.AxisRules.SquareZoomOut(plot.Axes.Bottom, plot.Axes.Left));
        ChartStyle.LegendIfNamed(plot, series.Select(s => s.Name));
        return plot;
    }
}
