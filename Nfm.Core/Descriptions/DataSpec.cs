
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

    /// <summary>The valid spellings, for messages.</summary>
    public static string ValidSpecs => $"{string.Join(", ", ToyNames)}, {MnistPrefix}DIR, FILE.npy";

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
