using ScottPlot;

namespace Nfm.Plots;

/// <summary>Writes a chart as a PNG, atomically (a temporary file in the same folder, then a rename).</summary>
public static class ChartFile
{
    public const int DefaultWidth = 800;
    public const int DefaultHeight = 560;

    /// <summary>Renders <paramref name="plot"/> at <paramref name="width"/> x <paramref name="height"/> pixels and writes it to <paramref name="path"/>.</summary>
    /// <exception cref="ArgumentException">a size below 100 pixels.</exception>
    /// <exception cref="DirectoryNotFoundException">the folder of <paramref name="path"/> does not exist.</exception>
    public static void Save(Plot plot, string path, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(plot);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (width < 100 || height < 100) throw new ArgumentException($"chart size must be at least 100 x 100 pixels, got {width} x {height}");
        var folder = Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".";
        // Checked before rendering, which is the slow part.
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{path}: cannot write, folder '{folder}' does not exist");
        byte[] png = plot.GetImageBytes(width, height, ImageFormat.Png);
        Nfm.Data.AtomicFile.WriteAllBytes(path, png);
    }
}
