using SkiaSharp;

namespace Nfm.Plots;

/// <summary>Colours and type shared by every plot.</summary>
public static class PlotStyle
{
    /// <summary>A palette of ten distinguishable colours (series i gets <c>Palette[i % 10]</c>).</summary>
    public static IReadOnlyList<SKColor> Palette { get; } =
    [
        new(0x1f, 0x77, 0xb4), new(0xd6, 0x27, 0x28), new(0x2c, 0xa0, 0x2c), new(0xff, 0x7f, 0x0e), new(0x94, 0x67, 0xbd),
        new(0x8c, 0x56, 0x4b), new(0xe3, 0x77, 0xc2), new(0x7f, 0x7f, 0x7f), new(0xbc, 0xbd, 0x22), new(0x17, 0xbe, 0xcf),
    ];

    /// <summary>The palette colour for series <paramref name="index"/>.</summary>
    public static SKColor ColorAt(int index) => Palette[((index % Palette.Count) + Palette.Count) % Palette.Count];

    internal static readonly SKColor Ink = new(0x20, 0x20, 0x20);
    internal static readonly SKColor Grid = new(0xe4, 0xe4, 0xe4);

    static readonly Lazy<SKTypeface> typeface = new(FindTypeface);

    /// <summary>
    /// The typeface for labels. Skia's Linux build without fontconfig may come with no usable default, so when the
    /// default has no glyphs we look for a common sans-serif font file; without one, text is simply not drawn.
    /// </summary>
    internal static SKTypeface Typeface => typeface.Value;

    internal static SKFont Font(float size) => new(Typeface, size);

    static SKTypeface FindTypeface()
    {
        var candidate = SKTypeface.Default;
        if (candidate is not null && candidate.GlyphCount > 0) return candidate;
        foreach (var family in new[] { "DejaVu Sans", "Liberation Sans", "Noto Sans", "Arial", "Helvetica" })
        {
            var t = SKTypeface.FromFamilyName(family);
            if (t is not null && t.GlyphCount > 0) return t;
        }
        string[] files = ["DejaVuSans.ttf", "LiberationSans-Regular.ttf", "NotoSans-Regular.ttf", "FreeSans.ttf", "Arial.ttf"];
        foreach (var root in new[] { "/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:\\Windows\\Fonts" })
        {
            if (!Directory.Exists(root)) continue;
            foreach (var name in files)
            {
                string? path;
                try { path = Directory.EnumerateFiles(root, name, SearchOption.AllDirectories).FirstOrDefault(); }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { path = null; }
                if (path is null) continue;
                var t = SKTypeface.FromFile(path);
                if (t is not null && t.GlyphCount > 0) return t;
            }
        }
        return candidate ?? SKTypeface.CreateDefault();
    }
}
