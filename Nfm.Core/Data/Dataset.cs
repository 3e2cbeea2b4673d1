using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Data;

/// <summary>
/// Data rows with optional class labels: <see cref="X"/> is [N, ...] (N x D for vectors, N x C x H x W for images),
/// <see cref="Labels"/> is int64 [N] or null, <see cref="Name"/> says where the data came from.
/// </summary>
public sealed record Dataset
{
    /// <summary>Make a data set, checking that labels (when given) are int64 [N] and on X's device.</summary>
    /// <exception cref="ArgumentException">X has rank 0, or labels do not match X.</exception>
    public Dataset(Tensor x, Tensor? labels, string name)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() < 1) throw new ArgumentException("x must have shape [N, ...], got a scalar", nameof(x));
        if (labels is not null)
        {
            if (labels.dtype != ScalarType.Int64)
                throw new ArgumentException($"labels must be int64, got {labels.dtype}", nameof(labels));
            if (labels.dim() != 1 || labels.shape[0] != x.shape[0])
                throw new ArgumentException($"labels must have shape [{x.shape[0]}] to match x, got {Shapes.Show(labels.shape)}", nameof(labels));
            if (labels.device_type != x.device_type || labels.device_index != x.device_index)
                throw new ArgumentException($"labels are on {labels.device}, x on {x.device}", nameof(labels));
        }
        X = x;
        Labels = labels;
        Name = name ?? "";
    }

    /// <summary>The rows [N, ...].</summary>
    public Tensor X { get; init; }

    /// <summary>Class labels int64 [N], or null when the data has none.</summary>
    public Tensor? Labels { get; init; }

    /// <summary>Where the data came from (a built-in name, "mnist", a file name).</summary>
    public string Name { get; init; }

    /// <summary>Number of rows N.</summary>
    public long Count => X.shape[0];

    /// <summary>Shape of one row (X's shape without the leading N).</summary>
    public long[] RowShape => X.shape[1..];

    /// <summary>Number of classes: largest label + 1, or 0 without labels (or without rows).</summary>
    public long ClassCount => Labels is null || Labels.numel() == 0 ? 0 : Labels.max().item<long>() + 1;

    /// <summary>The first <paramref name="n"/> rows (views, no copy).</summary>
    /// <exception cref="ArgumentOutOfRangeException">n is negative or larger than <see cref="Count"/>.</exception>
    public Dataset Take(long n)
    {
        if (n < 0 || n > Count) throw new ArgumentOutOfRangeException(nameof(n), $"n must be in [0, {Count}] for {Name}, got {n}");
        return new Dataset(X.narrow(0, 0, n), Labels?.narrow(0, 0, n), Name);
    }
}
