using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;
using Nfm.Training;

namespace Nfm.Regress;

/// <summary>A point on the path: x_t, its target velocity u_t = dx_t/dt, the endpoints and the times.</summary>
public sealed record PathSample(Tensor Xt, Tensor Ut, Tensor X0, Tensor X1, Tensor T);

/// <summary>The linear probability path x_t = (1 - t) x0 + t x1, u_t = x1 - x0 (t = 0 noise, t = 1 data).</summary>
public static class ProbabilityPath
{
    /// <summary>Interpolates each row at its own time t [N].</summary>
    public static PathSample Sample(Tensor x0, Tensor x1, Tensor t)
    {
        if (!x0.shape.SequenceEqual(x1.shape))
            throw new ArgumentException($"x0 and x1 must have the same shape, got {Shapes.Show(x0)} and {Shapes.Show(x1)}");
        if (t.dim() != 1 || t.shape[0] != x1.shape[0])
            throw new ArgumentException($"t must have shape [{x1.shape[0]}], got {Shapes.Show(t)}");
        using var tb = t.to(x1.dtype).reshape(Shapes.RowShape(x1));
        // Scalars held to the end (see Integrate.FixedStepMethods.Axpy): ut = x1 - x0, xt = x0 + t ut.
        using Scalar one = 1, minusOne = -1;
        var ut = x1.add(x0, minusOne);
        using var step = tb.mul(ut);
        var xt = x0.add(step, one);
        return new PathSample(xt, ut, x0, x1, t);
    }

    /// <summary>Draws N training times from the path's time distribution, with the given generator.</summary>
    public static Tensor SampleTimes(PathSpec spec, long n, Generator generator, Device device, ScalarType dtype = ScalarType.Float32)
    {
        switch (spec.Sampling)
        {
            case TimeSampling.Uniform:
                return rand(n, dtype: dtype, device: device, generator: generator);
            case TimeSampling.LogitNormal:
                using (var z = randn(n, dtype: dtype, device: device, generator: generator))
                    return sigmoid(z * spec.LogitStd + spec.LogitMean);
            default:
                throw new ArgumentException($"unknown time sampling {spec.Sampling}");
        }
    }
}
