using SkiaSharp;

namespace Nfm.Plots;

/// <summary>Encode a bitmap as PNG and write it atomically.</summary>
internal static class Png
{
    public static void Save(string path, SKBitmap bitmap)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"{path}: PNG encoding failed");
        Nfm.Data.AtomicFile.Write(path, data.SaveTo);
    }
}
