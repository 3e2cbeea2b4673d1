using ScottPlot;

namespace Nfm.Plots;

/// <summary>What every chart shares: the registered fonts, text sizes, the palette and a legend for named series.</summary>
public static class ChartStyle
{
    static readonly ScottPlot.Palettes.Category10 palette = new();

    /// <summary>The colour of series <paramref name="index"/> (ten distinguishable colours, then repeating).</summary>
    public static Color ColorAt(int index) => palette.GetColor(((index % palette.Colors.Length) + palette.Colors.Length) % palette.Colors.Length);

    /// <summary>An empty plot with the chart fonts, a title and axis labels (empty strings leave them out).</summary>
    /// <exception cref="FileNotFoundException">no TrueType font found (see <see cref="ChartFonts.Ensure"/>).</exception>
    public static Plot NewPlot(string? title, string? xLabel, string? yLabel)
    {
        ChartFonts.Ensure();
        var plot = new Plot();
        if (!string.IsNullOrEmpty(title)) plot.Title(title, 17);
        if (!string.IsNullOrEmpty(xLabel)) plot.XLabel(xLabel, 15);
        if (!string.IsNullOrEmpty(yLabel)) plot.YLabel(yLabel, 15);
        return plot;
    }

    /// <summary>Shows the legend in the upper-right corner when a series has a name.</summary>
    internal static void LegendIfNamed(Plot plot, IEnumerable<string?> names)
    {
        if (names.Any(n => !string.IsNullOrEmpty(n))) plot.ShowLegend(Alignment.UpperRight);
    }
}
