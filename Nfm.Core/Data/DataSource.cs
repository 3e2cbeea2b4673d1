using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Data;

/// <summary>
/// Turns the command line's DATA argument into a <see cref="Dataset"/>: a built-in 2-D name, <c>mnist:DIR</c>,
/// <c>images:FOLDER</c> (PNG and JPEG, one subfolder per class), or <c>FILE.npy</c> (with optional int64 labels in a second .npy). Data holding NaN or Inf is refused.
/// </summary>
public static class DataSource
{
    /// <summary>Points drawn from a built-in set when the spec asks for n = 0 ("the default").</summary>
    public const long DefaultToyCount = 10_000;

    /// <summary>Prefix of a MNIST folder spec.</summary>
    public const string MnistPrefix = DataSources.MnistPrefix;

    /// <summary>The valid spellings, for messages.</summary>
    public static string ValidSpecs => DataSources.ValidSpecs;

    /// <summary>Which kind of source <paramref name="spec"/> names (<see cref="DataSources.KindOf"/>).</summary>
    /// <exception cref="ArgumentException">an empty or unknown spec (the message lists the valid ones).</exception>
    public static DataSourceKind KindOf(string spec) => DataSources.KindOf(spec);

    /// <summary>Load what a validated <see cref="DataSpec"/> describes.</summary>
    public static Dataset Load(DataSpec spec, ScalarType dtype = ScalarType.Float32)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        return Load(spec.Source, spec.N, spec.Seed, spec.Split, spec.Labels, dtype);
    }

    /// <summary>
    /// Load data. <paramref name="n"/>: points to draw from a built-in set (0: <see cref="DefaultToyCount"/>), or
    /// the first n rows of a file (0: all). <paramref name="seed"/> only matters for built-in sets,
    /// <paramref name="split"/> only for MNIST and image folders with train/ and test/, <paramref name="labels"/> (an integer .npy of length N) only for .npy data.
    /// X comes back as <paramref name="dtype"/> (float32 unless asked otherwise).
    /// </summary>
    /// <exception cref="ArgumentException">unknown spec, negative n or seed, labels given for a non-.npy source.</exception>
    /// <exception cref="FileNotFoundException">a missing file.</exception>
    /// <exception cref="InvalidDataException">malformed files, wrong types or shapes, length mismatches, NaN or Inf.</exception>
    public static Dataset Load(string spec, long n = 0, long seed = 0, DataSplit split = DataSplit.Train,
                               string? labels = null, ScalarType dtype = ScalarType.Float32)
    {
        var kind = KindOf(spec);
        if (n < 0) throw new ArgumentOutOfRangeException(nameof(n), $"n must be >= 0 (0: the default / all rows), got {n}");
        if (seed < 0) throw new ArgumentOutOfRangeException(nameof(seed), $"seed must be >= 0, got {seed}");
        if (labels is not null && kind != DataSourceKind.Npy)
            throw new ArgumentException($"a labels file only goes with FILE.npy data, not with '{spec}'", nameof(labels));
        if (dtype is not (ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentException($"dtype must be float32 or float64, got {dtype}", nameof(dtype));

        switch (kind)
        {
            case DataSourceKind.Toy2D:
                return Toy2D.Sample(spec, n == 0 ? DefaultToyCount : n, seed, dtype);
            case DataSourceKind.Mnist:
            {
                var data = Mnist.Load(spec[MnistPrefix.Length..], split);
                data = TakeFirst(data, n, spec);
                return dtype == ScalarType.Float32 ? data : data with { X = data.X.to_type(dtype) };
            }
            case DataSourceKind.Images:
            {
                var data = TakeFirst(ImageFolder.Load(ImageFolderSpec.Parse(spec), split), n, spec);
                return dtype == ScalarType.Float32 ? data : data with { X = data.X.to_type(dtype) };
            }
            default:
                return LoadNpy(spec, labels, n, dtype);
        }
    }

    /// <summary>Refuse data holding NaN or Inf, naming the first bad row (and how many rows are bad).</summary>
    /// <exception cref="InvalidDataException">some row is not finite.</exception>
    public static void CheckFinite(Tensor x, string name)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.is_floating_point() || x.numel() == 0) return;
        using var scope = torch.NewDisposeScope();
        var badRows = x.isfinite().logical_not().reshape(x.shape[0], -1).any(1).nonzero();
        if (badRows.shape[0] == 0) return;
        long first = badRows[0, 0].item<long>();
        throw new InvalidDataException($"{name}: row {first} holds NaN or Inf ({badRows.shape[0]} of {x.shape[0]} rows are not finite)");
    }

    static Dataset TakeFirst(Dataset data, long n, string source)
    {
        if (n == 0) return data;
        if (n > data.Count) throw new ArgumentOutOfRangeException(nameof(n), $"asked for {n} rows, {source} has {data.Count}");
        return data.Take(n);
    }

    static Dataset LoadNpy(string path, string? labelsPath, long n, ScalarType dtype)
    {
        var x = Npy.Read(path);
        if (x.dtype is not (ScalarType.Float32 or ScalarType.Float64))
            throw new InvalidDataException($"{path}: data must be float32 or float64, found {x.dtype.ToString().ToLowerInvariant()}");
        if (x.dim() < 2)
            throw new InvalidDataException($"{path}: data must have shape N x D or N x C x H x W, found {Shapes.Show(x.shape)}");
        CheckFinite(x, path);
        if (x.dtype != dtype)
        {
            using var original = x;
            x = original.to_type(dtype);
            CheckFinite(x, $"{path} (as {dtype.ToString().ToLowerInvariant()})"); // float64 beyond float32's range becomes Inf
        }

        Tensor? y = null;
        if (labelsPath is not null)
        {
            y = Npy.Read(labelsPath);
            if (y.is_floating_point() || y.dtype == ScalarType.Bool)
                throw new InvalidDataException($"{labelsPath}: labels must be integers (int64), found {y.dtype.ToString().ToLowerInvariant()}");
            if (y.dim() != 1)
                throw new InvalidDataException($"{labelsPath}: labels must have shape [N], found {Shapes.Show(y.shape)}");
            if (y.shape[0] != x.shape[0])
                throw new InvalidDataException($"{labelsPath}: {y.shape[0]} labels, but {path} has {x.shape[0]} rows");
            if (y.dtype != ScalarType.Int64)
            {
                using var original = y;
                y = original.to_type(ScalarType.Int64);
            }
            if (y.numel() > 0 && y.min().item<long>() < 0)
            {
                using var negative = y.lt(0).nonzero();
                throw new InvalidDataException($"{labelsPath}: labels must be >= 0, row {negative[0, 0].item<long>()} is negative");
            }
        }
        return TakeFirst(new Dataset(x, y, Path.GetFileName(path)), n, path);
    }
}
