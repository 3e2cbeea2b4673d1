using Nfm.Descriptions;
using Nfm.Integrate;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>
/// Reflow (rectified flow), over any velocity field (a trained student's: <c>Student.ReflowCoupling</c>): pairs (x0, ODE(x0)) from an already trained student. Unlike the other couplings it makes
/// its own data side: the batch only lends its size, shape and labels (a conditional student is sampled at those
/// labels, which then stay with the generated rows).
/// </summary>
public static class ReflowCoupling
{
    /// <summary>The solver reflow uses by default: Heun, 16 steps on a uniform grid.</summary>
    public static readonly SolverSpec DefaultSolver = new(SolverMethod.Heun, 16, TimeGridKind.Uniform);

    /// <summary>
    /// A reflow coupling from any velocity field: each batch draws fresh noise x0 and integrates it with
    /// <paramref name="solver"/> under no_grad; the result is the data side. <paramref name="fieldFor"/> gives the field
    /// for a batch's labels (null for unconditional data), so a conditional flow is integrated at those labels.
    /// </summary>
    public static Coupling Create(Func<Tensor?, VelocityField> fieldFor, SolverSpec? solver = null)
    {
        var s = (solver ?? DefaultSolver).Validate();
        return (batch, g) =>
        {
            var x0 = randn(batch.X1.shape, dtype: batch.X1.dtype, device: batch.X1.device, generator: g);
            Tensor x1;
            using (no_grad()) x1 = Integrator.Integrate(fieldFor(batch.Labels), x0, s).X;
            return new CoupledBatch(x0, x1, batch.Labels);
        };
    }
}
