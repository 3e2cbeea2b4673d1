using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Plots;

/// <summary>A grid of images (samples, data) as one PNG.</summary>
public static class ImageGrid
{
    /// <summary>
    /// Write images [N, C, H, W] with values in [-1, 1] (clamped; NaN shows as mid grey) as a PNG grid of
    /// <paramref name="columns"/> columns (fewer when N is smaller), each pixel drawn as a
    /// <paramref name="scale"/> x <paramref name="scale"/> block, with <paramref name="padding"/> grey pixels
    /// between and around images. C is 1 (grey) or 3 (RGB). The PNG is
    /// (pad + cols (W scale + pad)) x (pad + rows (H scale + pad)) pixels. The write is atomic.
    /// </summary>
    /// <exception cref="ArgumentException">a shape other than [N, 1 or 3, H, W] with N, H, W ≥ 1, or bad layout numbers.</exception>
    public static void Save(string path, Tensor images, int columns = 8, int scale = 2, int padding = 2)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.shape[1] is not (1 or 3) || images.shape[0] < 1 || images.shape[2] < 1 || images.shape[3] < 1)
            throw new ArgumentException($"images must have shape [N >= 1, C = 1 or 3, H, W], got [{string.Join(", ", images.shape)}]", nameof(images));
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), $"columns must be >= 1, got {columns}");
        if (scale is < 1 or > 64) throw new ArgumentOutOfRangeException(nameof(scale), $"scale must be in [1, 64], got {scale}");
        if (padding is < 0 or > 64) throw new ArgumentOutOfRangeException(nameof(padding), $"padding must be in [0, 64], got {padding}");

        int n = (int)images.shape[0], c = (int)images.shape[1], h = (int)images.shape[2], w = (int)images.shape[3];
        int cols = Math.Min(columns, n), rows = (n + cols - 1) / cols;
        long width = padding + (long)cols * (w * scale + padding), height = padding + (long)rows * (h * scale + padding);
        if (width * height > 1L << 28) throw new ArgumentException($"the grid would be {width} x {height} pixels; use fewer images or a smaller scale");

        byte[] bytes;
        using (var scope = torch.NewDisposeScope())
        {
            var levels = images.detach().cpu().to_type(ScalarType.Float32).nan_to_num(0.0).clamp(-1.0, 1.0)
                               .add(1.0).mul(127.5).round().to_type(ScalarType.Byte).contiguous();
            bytes = levels.bytes.ToArray();
        }

        // Grey images are written as a one-channel PNG (a quarter of the pixels' bytes), colour ones as RGBA.
        int bytesPerPixel = c == 3 ? 4 : 1;
        using var bitmap = new SKBitmap((int)width, (int)height, c == 3 ? SKColorType.Rgba8888 : SKColorType.Gray8, SKAlphaType.Opaque);
        var pixels = bitmap.GetPixelSpan();
        pixels.Fill(0x80);
        if (c == 3) for (int i = 3; i < pixels.Length; i += 4) pixels[i] = 0xff;
        int plane = h * w, rowBytes = bitmap.RowBytes;
        for (int k = 0; k < n; k++)
        {
            int left = padding + (k % cols) * (w * scale + padding), top = padding + (k / cols) * (h * scale + padding);
            int image = k * c * plane;
            for (int yy = 0; yy < h * scale; yy++)
            {
                int sourceRow = yy / scale, at = (top + yy) * rowBytes + left * bytesPerPixel;
                for (int xx = 0; xx < w * scale; xx++, at += bytesPerPixel)
                {
                    int p = image + sourceRow * w + xx / scale;
                    if (c == 1) { pixels[at] = bytes[p]; continue; }
                    pixels[at] = bytes[p]; pixels[at + 1] = bytes[p + plane]; pixels[at + 2] = bytes[p + 2 * plane]; pixels[at + 3] = 0xff;
                }
            }
        }
        Png.Save(path, bitmap);
    }
}
