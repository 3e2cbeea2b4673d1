using Nfm.Descriptions;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Data;

/// <summary>
/// A folder of PNG and JPEG images as a <see cref="Dataset"/>, in the common image-folder layout: one subfolder per
/// class (labels 0, 1, ... in the ordinal order of the subfolder names), or the images directly in the folder (no
/// labels). A folder holding both <c>train/</c> and <c>test/</c> is split: each split reads its own subfolder. Images
/// come back as float32 [N, C, S, S] in [-1, 1] (byte p becomes p / 127.5 - 1, as for MNIST), in the order class, then
/// file name (ordinal). Decoding is SkiaSharp's.
/// </summary>
public static class ImageFolder
{
    /// <summary>The file extensions read (any case).</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".png", ".jpg", ".jpeg"];

    /// <summary>The class names (sorted subfolder names; empty for an unlabelled folder) and the files with their labels, for a split.</summary>
    /// <exception cref="DirectoryNotFoundException">no such folder.</exception>
    /// <exception cref="InvalidDataException">an unsupported file, images beside class folders, or no images at all.</exception>
    public static (string[] Classes, (string Path, long Label)[] Files) List(string folder, DataSplit split)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such image folder");
        var root = SplitFolder(folder, split);
        var classes = Directory.GetDirectories(root).Select(Path.GetFileName).Where(n => !n!.StartsWith('.')).Select(n => n!)
                               .OrderBy(n => n, StringComparer.Ordinal).ToArray();
        var files = new List<(string, long)>();
        if (classes.Length == 0)
            files.AddRange(Images(root).Select(f => (f, -1L)));
        else
        {
            var loose = Images(root).FirstOrDefault();
            if (loose is not null)
                throw new InvalidDataException($"{loose}: an image beside the class folders of {root}; put every image in its class's folder");
            for (int k = 0; k < classes.Length; k++)
                files.AddRange(Images(Path.Combine(root, classes[k])).Select(f => (f, (long)k)));
        }
        if (files.Count == 0) throw new InvalidDataException($"{root}: no PNG or JPEG images");
        return (classes, files.ToArray());
    }

    /// <summary>Load a split of an image folder as <paramref name="spec"/> describes; the data set's name is the folder's.</summary>
    /// <exception cref="InvalidDataException">a file that is not a readable PNG or JPEG (the message names it).</exception>
    public static Dataset Load(ImageFolderSpec spec, DataSplit split = DataSplit.Train)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        var (classes, files) = List(spec.Folder, split);
        int plane = spec.Size * spec.Size, row = spec.Channels * plane;
        var pixels = new byte[(long)files.Length * row];
        for (int i = 0; i < files.Length; i++)
            Decode(files[i].Path, spec.Size, spec.Channels, pixels.AsSpan(i * row, row));
        Tensor x;
        using (var raw = torch.empty([files.Length, spec.Channels, spec.Size, spec.Size], ScalarType.Byte))
        {
            pixels.AsSpan().CopyTo(raw.bytes);
            using var asFloat = raw.to_type(ScalarType.Float32);
            using var scaled = asFloat.div(127.5);
            x = scaled.sub(1.0);
        }
        var labels = classes.Length == 0 ? null : torch.tensor(files.Select(f => f.Label).ToArray());
        return new Dataset(x, labels, DataSources.DisplayName(DataSources.ImagesPrefix + spec.Folder));
    }

    /// <summary>
    /// Decode one image into <paramref name="destination"/> (C planes of S x S bytes): centre-cropped to a square,
    /// resized with a Mitchell cubic filter when its side is not <paramref name="size"/>, and turned grey with the
    /// ITU-R 601 weights (0.299, 0.587, 0.114) when <paramref name="channels"/> is 1 (grey files keep their exact
    /// values). Transparent pixels are read as their colour, alpha ignored.
    /// </summary>
    /// <exception cref="InvalidDataException">the file is not a readable PNG or JPEG.</exception>
    public static void Decode(string path, int size, int channels, Span<byte> destination)
    {
        using var codec = SKCodec.Create(path, out var result)
            ?? throw new InvalidDataException($"{path}: not a readable PNG or JPEG ({result})");
        if (codec.EncodedFormat is not (SKEncodedImageFormat.Png or SKEncodedImageFormat.Jpeg))
            throw new InvalidDataException($"{path}: a {codec.EncodedFormat} image; PNG and JPEG are read");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var full = new SKBitmap(info);
        var decoded = codec.GetPixels(info, full.GetPixels());
        if (decoded != SKCodecResult.Success)
            throw new InvalidDataException($"{path}: the image could not be decoded ({decoded})");
        int side = Math.Min(info.Width, info.Height);
        using var square = new SKBitmap();
        if (!full.ExtractSubset(square, SKRectI.Create((info.Width - side) / 2, (info.Height - side) / 2, side, side)))
            throw new InvalidDataException($"{path}: could not crop the image to a square");
        using var resized = side == size
            ? null
            : square.Resize(new SKImageInfo(size, size, SKColorType.Rgba8888, SKAlphaType.Unpremul), new SKSamplingOptions(SKCubicResampler.Mitchell))
              ?? throw new InvalidDataException($"{path}: could not resize the image to {size} x {size}");
        var source = resized ?? square;
        var bytes = source.GetPixelSpan();
        int plane = size * size, stride = source.RowBytes;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                int p = y * stride + 4 * x, at = y * size + x;
                byte r = bytes[p], g = bytes[p + 1], b = bytes[p + 2];
                if (channels == 1)
                    destination[at] = r == g && g == b ? r : (byte)Math.Round(0.299 * r + 0.587 * g + 0.114 * b);
                else
                {
                    destination[at] = r;
                    destination[plane + at] = g;
                    destination[2 * plane + at] = b;
                }
            }
    }

    /// <summary>True when <paramref name="folder"/> holds both <c>train/</c> and <c>test/</c>.</summary>
    public static bool HasSplits(string folder) =>
        Directory.Exists(Path.Combine(folder, "train")) && Directory.Exists(Path.Combine(folder, "test"));

    static string SplitFolder(string folder, DataSplit split) =>
        HasSplits(folder) ? Path.Combine(folder, split == DataSplit.Train ? "train" : "test") : folder;

    /// <summary>The image files directly in <paramref name="folder"/>, sorted (ordinal); any other non-hidden file is refused.</summary>
    static IEnumerable<string> Images(string folder)
    {
        foreach (var file in Directory.GetFiles(folder).OrderBy(f => f, StringComparer.Ordinal))
        {
            var name = Path.GetFileName(file);
            if (name.StartsWith('.')) continue;
            if (!Extensions.Contains(Path.GetExtension(name), StringComparer.OrdinalIgnoreCase))
                throw new InvalidDataException($"{file}: not a PNG or JPEG file (image folders hold {string.Join(", ", Extensions)})");
            yield return file;
        }
    }
}
