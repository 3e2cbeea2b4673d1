using static TorchSharp.torch;

namespace Nfm.Integrate;

/// <summary>What an integration produced.</summary>
/// <param name="X">The state at the last time of <paramref name="Times"/> (same shape and dtype as the start).</param>
/// <param name="Nfe">Velocity evaluations actually made.</param>
/// <param name="Times">The times visited, start first: the grid of a fixed-step method, the accepted times of Dopri5.</param>
/// <param name="Trajectory">
/// When asked for: the state at each of <paramref name="Times"/> (the first an alias of the start, the last is
/// <paramref name="X"/> itself); otherwise null.
/// </param>
public sealed record IntegrationResult(Tensor X, int Nfe, double[] Times, IReadOnlyList<Tensor>? Trajectory);
