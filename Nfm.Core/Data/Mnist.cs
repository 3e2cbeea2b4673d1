using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Data;

/// <summary>
/// MNIST from a folder of IDX files as a user downloads them (gzipped or not): images scaled to [-1, 1] as
/// float32 [N, 1, 28, 28] (pixel p becomes p / 127.5 - 1), labels int64 [N].
/// </summary>
public static class Mnist
{
    /// <summary>The file names tried, in order, for the images and labels of a split (each also with ".gz").</summary>
    public static (string[] Images, string[] Labels) FileNames(DataSplit split)
    {
        // The original distribution calls the test files "t10k-"; some mirrors write ".idx3" instead of "-idx3".
        string[] prefixes = split == DataSplit.Train ? ["train"] : ["test", "t10k"];
        string[] Names(string kind, string suffix) =>
            [.. prefixes.SelectMany(p => new[] { $"{p}-{kind}-{suffix}", $"{p}-{kind}.{suffix}" })
                        .SelectMany(n => new[] { n, n + ".gz" })];
        return (Names("images", "idx3-ubyte"), Names("labels", "idx1-ubyte"));
    }

    /// <summary>The image and label files of a split in <paramref name="folder"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">no such folder.</exception>
    /// <exception cref="FileNotFoundException">a file is missing (the message lists the names tried).</exception>
    public static (string Images, string Labels) FindFiles(string folder, DataSplit split)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: no such MNIST folder");
        var (images, labels) = FileNames(split);
        string Find(string[] names, string kind) =>
            names.Select(n => Path.Combine(folder, n)).FirstOrDefault(File.Exists)
            ?? throw new FileNotFoundException($"{folder}: no MNIST {split.ToString().ToLowerInvariant()} {kind} file (tried {string.Join(", ", names)})");
        return (Find(images, "images"), Find(labels, "labels"));
    }

    /// <summary>Load a split: images [N, 1, rows, cols] in [-1, 1] as float32, labels int64 [N], name "mnist".</summary>
    /// <exception cref="InvalidDataException">a malformed file, or image and label counts that differ.</exception>
    public static Dataset Load(string folder, DataSplit split = DataSplit.Train)
    {
        var (imagesPath, labelsPath) = FindFiles(folder, split);
        var images = Idx.ReadImages(imagesPath);
        var labels = Idx.ReadLabels(labelsPath);
        if (images.Count != labels.Length)
            throw new InvalidDataException($"{folder}: MNIST {split.ToString().ToLowerInvariant()} files disagree: {images.Count} images in {Path.GetFileName(imagesPath)}, {labels.Length} labels in {Path.GetFileName(labelsPath)}");
        return new Dataset(ToTensor(images), LabelsToTensor(labels), "mnist");
    }

    /// <summary>Images as float32 [N, 1, rows, cols], pixel p mapped to p / 127.5 - 1 (0 to -1, 255 to 1).</summary>
    public static Tensor ToTensor(IdxImages images)
    {
        ArgumentNullException.ThrowIfNull(images);
        images.Validate();
        using var raw = torch.empty([images.Count, 1, images.Rows, images.Columns], ScalarType.Byte);
        images.Pixels.AsSpan().CopyTo(raw.bytes);
        using var asFloat = raw.to_type(ScalarType.Float32);
        using var scaled = asFloat.div(127.5);
        return scaled.sub(1.0);
    }

    /// <summary>Labels as int64 [N].</summary>
    public static Tensor LabelsToTensor(byte[] labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        using var raw = torch.empty([labels.Length], ScalarType.Byte);
        labels.AsSpan().CopyTo(raw.bytes);
        return raw.to_type(ScalarType.Int64);
    }
}
