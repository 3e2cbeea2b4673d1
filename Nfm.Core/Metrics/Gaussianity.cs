using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Metrics;

/// <summary>Per-dimension summaries of rows [N, D]: the ranges over the D dimensions of the mean, the variance and the excess kurtosis.</summary>
/// <param name="MeanMin">Smallest per-dimension mean (0 for N(0, I) up to sampling noise, about 1/sqrt(N)).</param>
/// <param name="MeanMax">Largest per-dimension mean.</param>
/// <param name="VarianceMin">Smallest per-dimension variance (unbiased; 1 for N(0, I)).</param>
/// <param name="VarianceMax">Largest per-dimension variance.</param>
/// <param name="KurtosisMin">Smallest per-dimension excess kurtosis m4 / m2^2 - 3 (0 for a Gaussian).</param>
/// <param name="KurtosisMax">Largest per-dimension excess kurtosis.</param>
public sealed record DimensionSummary(double MeanMin, double MeanMax, double VarianceMin, double VarianceMax, double KurtosisMin, double KurtosisMax)
{
    /// <summary>The summaries of rows <paramref name="z"/> [N, ...] (each row flattened to D values), computed in float64.</summary>
    /// <exception cref="ArgumentException">Fewer than 2 rows.</exception>
    public static DimensionSummary Of(Tensor z)
    {
        ArgumentNullException.ThrowIfNull(z);
        if (z.dim() < 1 || z.shape[0] < 2)
            throw new ArgumentException($"rows must have shape [N, D] with N >= 2, got {Shapes.Show(z)}", nameof(z));
        using var scope = NewDisposeScope();
        var x = z.detach().reshape(z.shape[0], -1).to(ScalarType.Float64);
        var mean = x.mean([0]);
        var centred = x - mean;
        var m2 = centred.square().mean([0]);
        var m4 = centred.square().square().mean([0]);
        var variance = centred.square().sum([0]) / (x.shape[0] - 1);
        var kurtosis = m4 / m2.square().clamp_min(1e-300) - 3.0;
        return new DimensionSummary(mean.min().item<double>(), mean.max().item<double>(), variance.min().item<double>(),
                                    variance.max().item<double>(), kurtosis.min().item<double>(), kurtosis.max().item<double>());
    }
}

/// <summary>
/// How Gaussian a set of rows is, as an excess over the sampling floor: the Fréchet distance of the rows' Gaussian fit
/// to N(0, I) (<see cref="Frechet.ToStandardNormal"/>) minus the mean of the same statistic on exact N(0, I) samples of
/// the same size and shape. The raw statistic is biased upward by the sample size (2,000 exact rows of 784 values give
/// about 81.6); the excess reads 0 on exact N(0, I) samples, up to its spread.
/// </summary>
/// <param name="Statistic">The rows' Fréchet distance to N(0, I).</param>
/// <param name="FloorMean">Mean of the statistic over <see cref="Draws"/> exact N(0, I) samples of the rows' shape.</param>
/// <param name="FloorSpread">Sample standard deviation of the statistic over those draws.</param>
/// <param name="Draws">How many exact N(0, I) samples the floor averages.</param>
/// <param name="Gap">The rows' own Fréchet gap (distance, covariance eigenvalues, mean norm).</param>
/// <param name="FloorGap">The first exact draw's gap: its eigenvalues show the Marchenko–Pastur range at this N and D.</param>
/// <param name="Dimensions">Per-dimension mean, variance and excess kurtosis ranges of the rows.</param>
/// <param name="FloorDimensions">The same ranges for the first exact draw (what sampling alone gives).</param>
public sealed record GaussianityExcess(
    double Statistic, double FloorMean, double FloorSpread, int Draws, StandardNormalGap Gap, StandardNormalGap FloorGap,
    DimensionSummary Dimensions, DimensionSummary FloorDimensions)
{
    /// <summary>Statistic minus its floor: 0 for exact N(0, I) rows up to <see cref="Spread"/>.</summary>
    public double Excess => Statistic - FloorMean;

    /// <summary>
    /// The standard deviation of <see cref="Excess"/> under N(0, I): the floor's spread for the statistic itself and,
    /// over <see cref="Draws"/> draws, for the floor's mean, FloorSpread * sqrt(1 + 1 / Draws).
    /// </summary>
    public double Spread => FloorSpread * Math.Sqrt(1.0 + 1.0 / Draws);

    /// <summary>Rows the statistic was measured on.</summary>
    public long Count => Gap.Count;

    /// <summary>Values per row.</summary>
    public long Dimension => Gap.Dimension;
}

/// <summary>The Gaussianity of encodings (or any rows) measured against the floor that exact N(0, I) samples of the same size give.</summary>
public static class Gaussianity
{
    /// <summary>Exact draws the floor averages by default.</summary>
    public const int DefaultDraws = 5;

    /// <summary>
    /// Measure rows <paramref name="z"/> [N, ...] (flattened to D values): their Fréchet distance to N(0, I), the
    /// floor from <paramref name="draws"/> exact N(0, I) samples [N, D] drawn from <paramref name="generator"/>, and
    /// the per-dimension summaries. Costs (draws + 1) D x D eigen-decompositions.
    /// </summary>
    /// <exception cref="ArgumentException">Fewer than 2 rows, or fewer than 2 draws (no spread).</exception>
    public static GaussianityExcess Measure(Tensor z, Generator generator, int draws = DefaultDraws)
    {
        ArgumentNullException.ThrowIfNull(z);
        ArgumentNullException.ThrowIfNull(generator);
        if (draws < 2) throw new ArgumentOutOfRangeException(nameof(draws), $"draws must be >= 2 (the floor needs a spread), got {draws}");
        if (z.dim() < 1 || z.shape[0] < 2)
            throw new ArgumentException($"rows must have shape [N, D] with N >= 2, got {Shapes.Show(z)}", nameof(z));
        using var scope = NewDisposeScope();
        long n = z.shape[0], d = z.numel() / n;
        var rows = z.detach().reshape(n, d).to(ScalarType.Float64).cpu();
        var gap = Frechet.ToStandardNormal(rows);
        var floors = new double[draws];
        StandardNormalGap? floorGap = null;
        DimensionSummary? floorDimensions = null;
        for (int k = 0; k < draws; k++)
        {
            using var inner = NewDisposeScope();
            var exact = randn([n, d], dtype: ScalarType.Float64, generator: generator);
            var g = Frechet.ToStandardNormal(exact);
            floors[k] = g.Distance;
            if (k == 0) { floorGap = g; floorDimensions = DimensionSummary.Of(exact); }
        }
        double mean = floors.Average();
        double spread = Math.Sqrt(floors.Sum(f => (f - mean) * (f - mean)) / (draws - 1));
        return new GaussianityExcess(gap.Distance, mean, spread, draws, gap, floorGap!, DimensionSummary.Of(rows), floorDimensions!);
    }
}
