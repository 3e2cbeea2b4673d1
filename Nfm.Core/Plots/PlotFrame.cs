using SkiaSharp;

namespace Nfm.Plots;

/// <summary>
/// The parts every chart shares: a white canvas, a title, a framed plot area with ticks, grid lines and tick
/// labels, axis labels, a legend, and writing the result as a PNG (atomically).
/// </summary>
internal sealed class PlotFrame : IDisposable
{
    public SKBitmap Bitmap { get; }
    public SKCanvas Canvas { get; }
    /// <summary>The data area in pixels.</summary>
    public SKRect Area { get; }
    public Axis X { get; }
    public Axis Y { get; }

    public PlotFrame(int width, int height, Axis x, Axis y, string title, string xLabel, string yLabel)
    {
        if (width < 100 || height < 100) throw new ArgumentException($"plot size must be at least 100 x 100 pixels, got {width} x {height}");
        Bitmap = new SKBitmap(width, height, SKColorType.Rgba8888, SKAlphaType.Premul);
        Canvas = new SKCanvas(Bitmap);
        Canvas.Clear(SKColors.White);
        (X, Y) = (x, y);
        var (left, right, top, bottom) = Margins(title, xLabel);
        Area = new SKRect(left, top, width - right, height - bottom);

        using var ink = new SKPaint { Color = PlotStyle.Ink, IsAntialias = true };
        using var titleFont = PlotStyle.Font(16);
        using var labelFont = PlotStyle.Font(13);
        if (!string.IsNullOrEmpty(title))
            Canvas.DrawText(title, width / 2f, 28, SKTextAlign.Center, titleFont, ink);
        if (!string.IsNullOrEmpty(xLabel))
            Canvas.DrawText(xLabel, Area.MidX, height - 12, SKTextAlign.Center, labelFont, ink);
        if (!string.IsNullOrEmpty(yLabel))
        {
            Canvas.Save();
            Canvas.RotateDegrees(-90, 18, Area.MidY);
            Canvas.DrawText(yLabel, 18, Area.MidY + 5, SKTextAlign.Center, labelFont, ink);
            Canvas.Restore();
        }
        DrawAxes();
    }

    /// <summary>Pixels left around the data area for tick labels, the title and the x label.</summary>
    public static (float Left, float Right, float Top, float Bottom) Margins(string title, string xLabel) =>
        (72, 24, string.IsNullOrEmpty(title) ? 20 : 44, string.IsNullOrEmpty(xLabel) ? 36 : 58);

    public float PixelX(double v) => X.ToPixel(v, Area.Left, Area.Right);
    public float PixelY(double v) => Y.ToPixel(v, Area.Bottom, Area.Top);

    void DrawAxes()
    {
        using var grid = new SKPaint { Color = PlotStyle.Grid, StrokeWidth = 1, IsStroke = true };
        using var frame = new SKPaint { Color = PlotStyle.Ink, StrokeWidth = 1.2f, IsStroke = true, IsAntialias = true };
        using var ink = new SKPaint { Color = PlotStyle.Ink, IsAntialias = true };
        using var font = PlotStyle.Font(11);
        foreach (var t in X.Ticks())
        {
            float px = PixelX(t);
            Canvas.DrawLine(px, Area.Top, px, Area.Bottom, grid);
            Canvas.DrawLine(px, Area.Bottom, px, Area.Bottom + 5, frame);
            Canvas.DrawText(Axis.Format(t), px, Area.Bottom + 18, SKTextAlign.Center, font, ink);
        }
        foreach (var t in Y.Ticks())
        {
            float py = PixelY(t);
            Canvas.DrawLine(Area.Left, py, Area.Right, py, grid);
            Canvas.DrawLine(Area.Left - 5, py, Area.Left, py, frame);
            Canvas.DrawText(Axis.Format(t), Area.Left - 8, py + 4, SKTextAlign.Right, font, ink);
        }
        Canvas.DrawRect(Area, frame);
    }

    /// <summary>Run <paramref name="draw"/> with drawing clipped to the data area.</summary>
    public void InArea(Action<SKCanvas> draw)
    {
        Canvas.Save();
        Canvas.ClipRect(Area);
        draw(Canvas);
        Canvas.Restore();
    }

    /// <summary>A legend box in the top-right corner of the data area: a swatch and a name per entry.</summary>
    public void Legend(IReadOnlyList<(string Name, SKColor Color)> entries, bool lines)
    {
        var named = entries.Where(e => !string.IsNullOrEmpty(e.Name)).ToList();
        if (named.Count == 0) return;
        using var font = PlotStyle.Font(12);
        float row = 18, swatch = 22, pad = 8;
        float textWidth = named.Max(e => font.MeasureText(e.Name));
        var box = SKRect.Create(Area.Right - pad - (pad + swatch + 6 + textWidth + pad), Area.Top + pad, pad + swatch + 6 + textWidth + pad, pad + row * named.Count + pad - 4);
        using var back = new SKPaint { Color = SKColors.White.WithAlpha(230) };
        using var border = new SKPaint { Color = new SKColor(0xb0, 0xb0, 0xb0), IsStroke = true, StrokeWidth = 1 };
        using var ink = new SKPaint { Color = PlotStyle.Ink, IsAntialias = true };
        Canvas.DrawRect(box, back);
        Canvas.DrawRect(box, border);
        for (int i = 0; i < named.Count; i++)
        {
            float cy = box.Top + pad + row * i + row / 2 - 2;
            float sx = box.Left + pad;
            using var paint = new SKPaint { Color = named[i].Color, IsAntialias = true, StrokeWidth = 2 };
            if (lines) Canvas.DrawLine(sx, cy, sx + swatch, cy, paint);
            Canvas.DrawCircle(sx + swatch / 2, cy, 3.5f, paint);
            Canvas.DrawText(named[i].Name, sx + swatch + 6, cy + 4.5f, SKTextAlign.Left, font, ink);
        }
    }

    public void Save(string path) => Png.Save(path, Bitmap);

    public void Dispose()
    {
        Canvas.Dispose();
        Bitmap.Dispose();
    }
}
