using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Plots;

/// <summary>A named set of 2-D points [N, 2] drawn in one colour.</summary>
public sealed record ScatterSeries(string Name, float[,] Points, SKColor Color)
{
    /// <summary>A series from a tensor [N, 2] (any float type, any device).</summary>
    /// <exception cref="ArgumentException">the tensor is not [N, 2].</exception>
    public ScatterSeries(string name, Tensor points, SKColor color) : this(name, ToArray(points), color) { }

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

/// <summary>Both axes of a square plot span [Min, Max].</summary>
public sealed record AxisRange(double Min, double Max);

/// <summary>Scatter plots of 2-D point sets as PNG: a square, equal-aspect plot area, framed, with ticks and a legend.</summary>
public static class Scatter
{
    /// <summary>
    /// Draw <paramref name="series"/> (in order, later ones on top) and write a PNG <paramref name="size"/> pixels
    /// high, with a square data area (the canvas is wider by the tick-label margin), to <paramref name="path"/> (atomically).
    /// Both axes span <paramref name="limits"/> when given (points outside are cut off); otherwise the smallest
    /// square holding every finite point, padded by 5%. Non-finite points are skipped.
    /// </summary>
    /// <exception cref="ArgumentException">no series, bad limits, size below 100.</exception>
    public static void Save(string path, IReadOnlyList<ScatterSeries> series, string title = "",
                            AxisRange? limits = null, int size = 640, float pointRadius = 1.5f)
    {
        ArgumentNullException.ThrowIfNull(series);
        if (series.Count == 0) throw new ArgumentException("scatter needs at least one series", nameof(series));
        if (pointRadius <= 0) throw new ArgumentOutOfRangeException(nameof(pointRadius), $"point radius must be > 0, got {pointRadius}");
        Axis x, y;
        if (limits is not null)
        {
            if (!(limits.Min < limits.Max) || !double.IsFinite(limits.Min) || !double.IsFinite(limits.Max))
                throw new ArgumentException($"limits must be finite with Min < Max, got [{limits.Min}, {limits.Max}]", nameof(limits));
            x = y = new Axis(limits.Min, limits.Max, false);
        }
        else (x, y) = SquareFit(series);

        using var frame = new PlotFrame(CanvasWidth(size, title), size, x, y, title, "", "");
        frame.InArea(canvas =>
        {
            foreach (var s in series)
            {
                using var paint = new SKPaint
                {
                    Color = s.Color, IsAntialias = true, StrokeCap = SKStrokeCap.Round, StrokeWidth = 2 * pointRadius,
                };
                var points = new List<SKPoint>(s.Points.GetLength(0));
                for (int i = 0; i < s.Points.GetLength(0); i++)
                {
                    float x = s.Points[i, 0], y = s.Points[i, 1];
                    if (float.IsFinite(x) && float.IsFinite(y)) points.Add(new SKPoint(frame.PixelX(x), frame.PixelY(y)));
                }
                canvas.DrawPoints(SKPointMode.Points, [.. points], paint);
            }
        });
        frame.Legend([.. series.Select(s => (s.Name, s.Color.WithAlpha(255)))], lines: false);
        frame.Save(path);
    }

    /// <summary>Width of the PNG that <see cref="Save"/> writes <paramref name="size"/> pixels high: the data area is square.</summary>
    /// <exception cref="ArgumentOutOfRangeException">size below 100.</exception>
    public static int CanvasWidth(int size, string title = "")
    {
        if (size < 100) throw new ArgumentOutOfRangeException(nameof(size), $"size must be >= 100 pixels, got {size}");
        var (left, right, top, bottom) = PlotFrame.Margins(title, "");
        return (int)(size - top - bottom + left + right);
    }

    /// <summary>Equal spans on both axes (equal aspect), each centred on its data, holding every finite point plus 5%.</summary>
    static (Axis X, Axis Y) SquareFit(IReadOnlyList<ScatterSeries> series)
    {
        double minX = double.PositiveInfinity, maxX = double.NegativeInfinity, minY = double.PositiveInfinity, maxY = double.NegativeInfinity;
        foreach (var s in series)
            for (int i = 0; i < s.Points.GetLength(0); i++)
            {
                float x = s.Points[i, 0], y = s.Points[i, 1];
                if (!float.IsFinite(x) || !float.IsFinite(y)) continue;
                (minX, maxX, minY, maxY) = (Math.Min(minX, x), Math.Max(maxX, x), Math.Min(minY, y), Math.Max(maxY, y));
            }
        if (double.IsInfinity(minX)) return (new Axis(-1, 1, false), new Axis(-1, 1, false));
        double half = Math.Max(Math.Max(maxX - minX, maxY - minY) / 2 * 1.05, 1e-3 * Math.Max(1, Math.Max(Math.Abs(minX), Math.Abs(minY))));
        double cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
        return (new Axis(cx - half, cx + half, false), new Axis(cy - half, cy + half, false));
    }
}
