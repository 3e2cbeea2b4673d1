using Nfm.Descriptions;
using static TorchSharp.torch;

namespace Nfm.Integrate;

/// <summary>One explicit step of a fixed-step method from time <paramref name="t"/> to <paramref name="tNext"/>.</summary>
public delegate Tensor FixedStep(VelocityField v, Tensor x, double t, double tNext);

/// <summary>
/// The explicit one-step methods. Each returns a new tensor and leaves its intermediates in the caller's
/// dispose scope; the step end is passed as a time (not t + h) so the last step lands exactly on the grid.
/// </summary>
public static class FixedStepMethods
{
    /// <summary>Euler: x + h v(x, t). Order 1, 1 evaluation.</summary>
    public static Tensor Euler(VelocityField v, Tensor x, double t, double tNext)
    {
        var k1 = v(x, t);
        return Axpy(x, k1, tNext - t);
    }

    /// <summary>Midpoint: x + h v(x + h/2 k1, t + h/2). Order 2, 2 evaluations.</summary>
    public static Tensor Midpoint(VelocityField v, Tensor x, double t, double tNext)
    {
        var h = tNext - t;
        var k1 = v(x, t);
        var k2 = v(Axpy(x, k1, h / 2), t + h / 2);
        return Axpy(x, k2, h);
    }

    /// <summary>Heun (explicit trapezoid): x + h/2 (k1 + k2), k2 at the Euler predictor. Order 2, 2 evaluations.</summary>
    public static Tensor Heun(VelocityField v, Tensor x, double t, double tNext)
    {
        var h = tNext - t;
        var k1 = v(x, t);
        var k2 = v(Axpy(x, k1, h), tNext);
        return Axpy(x, Axpy(k1, k2, 1.0), h / 2);
    }

    /// <summary>Classical Runge–Kutta: x + h/6 (k1 + 2 k2 + 2 k3 + k4). Order 4, 4 evaluations.</summary>
    public static Tensor Rk4(VelocityField v, Tensor x, double t, double tNext)
    {
        var h = tNext - t;
        var tm = t + h / 2;
        var k1 = v(x, t);
        var k2 = v(Axpy(x, k1, h / 2), tm);
        var k3 = v(Axpy(x, k2, h / 2), tm);
        var k4 = v(Axpy(x, k3, h), tNext);
        var sum = Axpy(Axpy(k1, k4, 1.0), Axpy(k2, k3, 1.0), 2.0);
        return Axpy(x, sum, h / 6);
    }

    /// <summary>The step function of a fixed-step method.</summary>
    /// <exception cref="ArgumentException">Dopri5 (adaptive, not a fixed step) or an unknown method.</exception>
    /// <summary>x + a y, with the scalar held until libtorch has read it. TorchSharp 0.107 passes an implicit Scalar
    /// (a double, or the alpha of 1 that add(Tensor) supplies) by its native handle only, so with another thread
    /// allocating, the GC may finalise it while libtorch still reads it (seen as a garbage c10::Scalar in two-worker
    /// runs).</summary>
    public static Tensor Axpy(Tensor x, Tensor y, double a)
    {
        using TorchSharp.Scalar alpha = a;
        return x.add(y, alpha);
    }

    public static FixedStep For(SolverMethod method) => method switch
    {
        SolverMethod.Euler => Euler,
        SolverMethod.Midpoint => Midpoint,
        SolverMethod.Heun => Heun,
        SolverMethod.Rk4 => Rk4,
        _ => throw new ArgumentException($"{method} is not a fixed-step method; valid: euler, midpoint, heun, rk4", nameof(method)),
    };
}
