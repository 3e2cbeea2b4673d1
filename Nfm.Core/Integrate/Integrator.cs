using Nfm.Descriptions;
using static TorchSharp.torch;

namespace Nfm.Integrate;

/// <summary>The one entry point of the integrate step: solve dx/dt = v(x, t) from T0 to T1 as a spec says.</summary>
public static class Integrator
{
    /// <summary>
    /// Integrate <paramref name="v"/> from <paramref name="x0"/> at spec.T0 to spec.T1. Fixed-step methods walk
    /// <see cref="TimeGrid.Make"/>(spec.Grid, spec.Steps, T0, T1); Dopri5 chooses its own steps. Gradient mode is
    /// the caller's: wrap the call in torch.no_grad() for sampling. Intermediates are freed step by step; the
    /// start tensor is never freed, and the result (and trajectory) live in the caller's dispose scope.
    /// </summary>
    /// <param name="v">Velocity field; must return a tensor of x's shape (another dtype is converted to x's).</param>
    /// <param name="x0">Start state [N, ...] (at least one dimension), any dtype and device.</param>
    /// <param name="spec">Solver description; validated here.</param>
    /// <param name="keepTrajectory">Also return the state at every visited time.</param>
    /// <exception cref="ArgumentException">Invalid spec, a 0-dimensional start, or a field returning the wrong shape.</exception>
    /// <exception cref="InvalidOperationException">Dopri5 exceeded spec.MaxSteps or its step size underflowed.</exception>
    public static IntegrationResult Integrate(VelocityField v, Tensor x0, SolverSpec spec, bool keepTrajectory = false)
    {
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        if (x0.dim() == 0) throw new ArgumentException("x0 must have shape [N, ...] (at least one dimension); got a scalar", nameof(x0));

        var nfe = 0;
        var expected = x0.shape;
        Tensor Counted(Tensor x, double t)
        {
            nfe++;
            var u = v(x, t);
            // A wrong shape could broadcast silently into the state: refuse it here.
            if (u is null || !u.shape.SequenceEqual(expected))
                throw new ArgumentException(
                    $"the velocity field must return x's shape {Shapes.Show(expected)}; got " +
                    (u is null ? "null" : $"{Shapes.Show(u.shape)}"), nameof(v));
            // The state keeps x0's dtype even when a field computes in another precision.
            return u.dtype == x.dtype ? u : u.to(x.dtype);
        }

        if (spec.Method == SolverMethod.Dopri5)
        {
            var (x, times, trajectory) = Dopri5.Solve(Counted, x0, spec.T0, spec.T1, spec.Rtol, spec.Atol, spec.MaxSteps, keepTrajectory);
            return new IntegrationResult(x, nfe, times, trajectory);
        }
        var grid = TimeGrid.Make(spec.Grid, spec.Steps, spec.T0, spec.T1);
        var (xEnd, path) = FixedStepSolver.Run(FixedStepMethods.For(spec.Method), Counted, x0, grid, keepTrajectory);
        return new IntegrationResult(xEnd, nfe, grid, path);
    }
}
