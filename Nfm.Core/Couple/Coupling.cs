using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>
/// A batch of data rows x1 [N, ...] with optional integer labels [N] and, when drawn from a data set, the rows'
/// indices in it [N] (precomputed pair files look their noise up by index).
/// </summary>
public sealed record Batch(Tensor X1, Tensor? Labels = null, Tensor? Indices = null)
{
    /// <summary>Number of rows.</summary>
    public long Count => X1.shape[0];
}

/// <summary>Noise x0 paired row by row with data x1 (same shape); labels stay with their data rows.</summary>
public sealed record CoupledBatch(Tensor X0, Tensor X1, Tensor? Labels = null);

/// <summary>
/// A coupling is a value: a function from a batch of data (and labels) and a generator to paired noise.
/// Laws every coupling keeps: each data row appears exactly once, and labels stay with their rows.
/// </summary>
public delegate CoupledBatch Coupling(Batch batch, Generator generator);
