using static TorchSharp.torch;

namespace Nfm.Integrate;

/// <summary>Runs a fixed-step method over a time grid.</summary>
public static class FixedStepSolver
{
    /// <summary>
    /// Step from times[0] to times[^1] through every grid point. One dispose scope per step: only the new state
    /// leaves it, and a superseded state is freed unless the trajectory keeps it. The start is never freed.
    /// </summary>
    /// <param name="step">The method's step.</param>
    /// <param name="v">The velocity field (count its calls to get the NFE).</param>
    /// <param name="x0">Start state [N, ...].</param>
    /// <param name="times">Grid, start first (see <see cref="TimeGrid.Make"/>).</param>
    /// <param name="keepTrajectory">Keep the state at every grid time.</param>
    /// <returns>The end state and, when kept, the trajectory (its first entry an alias of x0).</returns>
    public static (Tensor X, List<Tensor>? Trajectory) Run(FixedStep step, VelocityField v, Tensor x0, double[] times, bool keepTrajectory)
    {
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(times);
        if (times.Length == 0) throw new ArgumentException("times must hold at least the start time", nameof(times));

        var trajectory = keepTrajectory ? new List<Tensor> { x0.alias() } : null;
        if (times.Length == 1) return (trajectory?[0] ?? x0.alias(), trajectory);

        var x = x0;
        for (var i = 0; i + 1 < times.Length; i++)
        {
            Tensor next;
            using (var scope = NewDisposeScope())
                next = step(v, x, times[i], times[i + 1]).MoveToOuterDisposeScope();
            if (!keepTrajectory && !ReferenceEquals(x, x0)) x.Dispose();
            trajectory?.Add(next);
            x = next;
        }
        return (x, trajectory);
    }
}
