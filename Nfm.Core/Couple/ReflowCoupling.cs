using Nfm.Descriptions;
using Nfm.Regress;
using Nfm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>
/// Reflow (rectified flow): pairs (x0, ODE(x0)) from an already trained student. Unlike the other couplings it makes
/// its own data side: the batch only lends its size, shape and labels (a conditional student is sampled at those
/// labels, which then stay with the generated rows).
/// </summary>
public static class ReflowCoupling
{
    /// <summary>The solver reflow uses by default: Heun, 16 steps on a uniform grid.</summary>
    public static readonly SolverSpec DefaultSolver = new(SolverMethod.Heun, 16, TimeGridKind.Uniform);

    /// <summary>A reflow coupling from <paramref name="teacherStudent"/> (its EMA weights), integrated with <paramref name="solver"/>.</summary>
    public static Coupling Create(Student teacherStudent, SolverSpec? solver = null)
    {
        var net = teacherStudent.SamplingNet();
        var s = (solver ?? DefaultSolver).Validate();
        long nullClass = teacherStudent.Spec.Net.Classes;
        return (batch, g) =>
        {
            if (batch.X1.numel() != batch.Count * teacherStudent.Spec.Net.Dim)
                throw new ArgumentException($"reflow student expects rows of shape [{string.Join(", ", teacherStudent.Spec.Net.InputShape)}], data rows have shape {Shapes.Show(batch.X1)}");
            var x0 = randn(batch.X1.shape, dtype: batch.X1.dtype, device: batch.X1.device, generator: g);
            var labels = teacherStudent.Spec.Net.Classes > 0 ? batch.Labels : null;
            var x1 = StudentSampler.FromNoise(net, x0, s, labels, 0.0, nullClass).X;
            return new CoupledBatch(x0, x1, batch.Labels);
        };
    }
}
