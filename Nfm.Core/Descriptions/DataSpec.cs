
namespace Nfm.Descriptions;

/// <summary>What kind of source a data spec names.</summary>
public enum DataSourceKind
{
    /// <summary>A built-in 2-D set (<see cref="DataSources.ToyNames"/>).</summary>
    Toy2D,

    /// <summary><c>mnist:DIR</c>, a folder of MNIST IDX files.</summary>
    Mnist,

    /// <summary><c>FILE.npy</c>, a float32/float64 array N x D or N x C x H x W.</summary>
    Npy,

    /// <summary><c>images:FOLDER</c>, PNG and JPEG files with one subfolder per class (<see cref="ImageFolderSpec"/>).</summary>
    Images,
}

/// <summary>
/// An image-folder source, <c>images:FOLDER</c> or <c>images:FOLDER?size=N&amp;channels=C</c>: PNG and JPEG files, one
/// subfolder per class (labels are the sorted subfolder names' indices), optionally split into <c>train/</c> and
/// <c>test/</c> folders. Every image is centre-cropped to a square, resized to <see cref="Size"/> x <see cref="Size"/>
/// (kept as it is when it already has that size) and read as <see cref="Channels"/> channels (1: grey, 3: RGB).
/// </summary>
/// <param name="Folder">The root folder.</param>
/// <param name="Size">Side of the square images (default 32).</param>
/// <param name="Channels">1 or 3 (default 3).</param>
public sealed record ImageFolderSpec(string Folder, int Size = ImageFolderSpec.DefaultSize, int Channels = ImageFolderSpec.DefaultChannels)
{
    /// <summary>The side images are resized to when the spec names none.</summary>
    public const int DefaultSize = 32;

    /// <summary>Channels when the spec names none (RGB).</summary>
    public const int DefaultChannels = 3;

    /// <summary>
    /// Parse <c>images:FOLDER[?size=N&amp;channels=C]</c> (options in any order, names in any case).
    /// </summary>
    /// <exception cref="ArgumentException">not an images spec, no folder, an unknown option, or a size or channel count out of range.</exception>
    public static ImageFolderSpec Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (!spec.StartsWith(DataSources.ImagesPrefix, StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"'{spec}' is not an image folder; write {DataSources.ImagesPrefix}FOLDER", nameof(spec));
        var body = spec[DataSources.ImagesPrefix.Length..];
        int q = body.IndexOf('?');
        var folder = q < 0 ? body : body[..q];
        if (folder.Length == 0) throw new ArgumentException($"data spec '{spec}' names no folder; write {DataSources.ImagesPrefix}FOLDER", nameof(spec));
        int size = DefaultSize, channels = DefaultChannels;
        if (q >= 0)
            foreach (var option in body[(q + 1)..].Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                var parts = option.Split('=', 2);
                if (parts.Length != 2 || !int.TryParse(parts[1], out var value))
                    throw new ArgumentException($"data spec '{spec}': option '{option}' must be size=N or channels=C", nameof(spec));
                switch (parts[0].Trim().ToLowerInvariant())
                {
                    case "size": size = value; break;
                    case "channels": channels = value; break;
                    default: throw new ArgumentException($"data spec '{spec}': unknown option '{parts[0]}' (size, channels)", nameof(spec));
                }
            }
        return new ImageFolderSpec(folder, size, channels).Validate();
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the field out of range.</summary>
    public ImageFolderSpec Validate()
    {
        if (string.IsNullOrWhiteSpace(Folder)) throw new ArgumentException("Folder is empty", nameof(Folder));
        if (Size is < 2 or > 1024) throw new ArgumentException($"size must be in [2, 1024], got {Size}", nameof(Size));
        if (Channels is not (1 or 3)) throw new ArgumentException($"channels must be 1 or 3, got {Channels}", nameof(Channels));
        return this;
    }
}

/// <summary>The spellings of data sources: which kind a spec names, the built-in 2-D sets' names.</summary>
public static class DataSources
{
    /// <summary>The built-in 2-D sets (drawn by <c>Nfm.Data.Toy2D</c>).</summary>
    public static IReadOnlyList<string> ToyNames { get; } = ["checkerboard", "moons", "8gaussians", "2spirals", "rings"];

    /// <summary>True for the name of a built-in 2-D set (any case).</summary>
    public static bool IsToyName(string name) => ToyNames.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>Prefix of a MNIST folder spec.</summary>
    public const string MnistPrefix = "mnist:";

    /// <summary>Prefix of an image-folder spec (<see cref="ImageFolderSpec"/>).</summary>
    public const string ImagesPrefix = "images:";

    /// <summary>The valid spellings, for messages.</summary>
    public static string ValidSpecs => $"{string.Join(", ", ToyNames)}, {MnistPrefix}DIR, {ImagesPrefix}FOLDER[?size=N&channels=C], FILE.npy";

    /// <summary>
    /// The data set's name for titles and tables, without its path: the built-in set's name, "mnist", the image
    /// folder's name, or the .npy file's name.
    /// </summary>
    public static string DisplayName(string spec) =>
        KindOf(spec) switch
        {
            DataSourceKind.Toy2D => spec.ToLowerInvariant(),
            DataSourceKind.Mnist => "mnist",
            DataSourceKind.Images => Path.GetFileName(Path.TrimEndingDirectorySeparator(ImageFolderSpec.Parse(spec).Folder)) is { Length: > 0 } name ? name : "images",
            _ => Path.GetFileName(spec),
        };

    /// <summary>Which kind of source <paramref name="spec"/> names.</summary>
    /// <exception cref="ArgumentException">an empty or unknown spec (the message lists the valid ones).</exception>
    public static DataSourceKind KindOf(string spec)
    {
        if (string.IsNullOrWhiteSpace(spec)) throw new ArgumentException($"data spec is empty; valid: {ValidSpecs}", nameof(spec));
        if (IsToyName(spec)) return DataSourceKind.Toy2D;
        if (spec.StartsWith(MnistPrefix, StringComparison.OrdinalIgnoreCase))
        {
            if (spec.Length == MnistPrefix.Length) throw new ArgumentException($"data spec '{spec}' names no folder; write {MnistPrefix}DIR", nameof(spec));
            return DataSourceKind.Mnist;
        }
        if (spec.StartsWith(ImagesPrefix, StringComparison.OrdinalIgnoreCase))
        {
            ImageFolderSpec.Parse(spec);
            return DataSourceKind.Images;
        }
        if (spec.EndsWith(".npy", StringComparison.OrdinalIgnoreCase)) return DataSourceKind.Npy;
        throw new ArgumentException($"unknown data '{spec}'; valid: {ValidSpecs}", nameof(spec));
    }
}

/// <summary>
/// Which data a run uses: <see cref="Source"/> is a built-in 2-D name, <c>mnist:DIR</c> or <c>FILE.npy</c>;
/// <see cref="N"/> is the number of points drawn from a built-in set (0: <c>Nfm.Data.DataSource.DefaultToyCount</c>)
/// or the first N rows of a file (0: all); <see cref="Seed"/> drives built-in sets; <see cref="Split"/> picks
/// MNIST's train or test files; <see cref="Labels"/> is an optional int64 .npy of labels for .npy data.
/// </summary>
public sealed record DataSpec(string Source, long N = 0, long Seed = 0, DataSplit Split = DataSplit.Train, string? Labels = null)
{
    /// <summary>Largest N accepted (a guard against typos, not a memory check).</summary>
    public const long MaxN = 1_000_000_000;

    /// <summary>Check every field; throws <see cref="ArgumentException"/> naming the field and what it allows.</summary>
    public void Validate()
    {
        DataSourceKind kind;
        try { kind = DataSources.KindOf(Source); }
        catch (ArgumentException e) { throw new ArgumentException($"Source: {e.Message}", nameof(Source), e); }
        if (N is < 0 or > MaxN)
            throw new ArgumentException($"N must be in [0, {MaxN}] (0: default / all rows), got {N}", nameof(N));
        if (Seed < 0)
            throw new ArgumentException($"Seed must be >= 0, got {Seed}", nameof(Seed));
        if (!Enum.IsDefined(Split))
            throw new ArgumentException($"Split must be train or test, got {(int)Split}", nameof(Split));
        if (Labels is not null && kind != DataSourceKind.Npy)
            throw new ArgumentException($"Labels (a .npy file) only go with FILE.npy data, not with '{Source}'", nameof(Labels));
        if (Labels is not null && !Labels.EndsWith(".npy", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"Labels must be a .npy file, got '{Labels}'", nameof(Labels));
    }

    /// <summary>This description as JSON (the project's convention, <see cref="Json"/>).</summary>
    public string ToJson() => Json.Write(this);

    /// <summary>Read and validate a description from JSON.</summary>
    /// <exception cref="InvalidDataException">malformed JSON.</exception>
    /// <exception cref="ArgumentException">a field out of range.</exception>
    public static DataSpec FromJson(string json)
    {
        var spec = Json.Read<DataSpec>(json);
        spec.Validate();
        return spec;
    }
}
