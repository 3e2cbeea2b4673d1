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
    public static Tensor Euler(VelocityField v, Tensor x, double t, double tNext) =>
        x.add(v(x, t), tNext - t);

    /// <summary>Midpoint: x + h v(x + h/2 k1, t + h/2). Order 2, 2 evaluations.</summary>
    public static Tensor Midpoint(VelocityField v, Tensor x, double t, double tNext)
    {
        var h = tNext - t;
        var k1 = v(x, t);
        var k2 = v(x.add(k1, h / 2), t + h / 2);
        return x.add(k2, h);
    }

    /// <summary>Heun (explicit trapezoid): x + h/2 (k1 + k2), k2 at the Euler predictor. Order 2, 2 evaluations.</summary>
    public static Tensor Heun(VelocityField v, Tensor x, double t, double tNext)
    {
        var h = tNext - t;
        var k1 = v(x, t);
        var k2 = v(x.add(k1, h), tNext);
        return x.add(k1.add(k2), h / 2);
    }

    /// <summary>Classical Runge–Kutta: x + h/6 (k1 + 2 k2 + 2 k3 + k4). Order 4, 4 evaluations.</summary>
    public static Tensor Rk4(VelocityField v, Tensor x, double t, double tNext)
    {
        var h = tNext - t;
        var tm = t + h / 2;
        var k1 = v(x, t);
        var k2 = v(x.add(k1, h / 2), tm);
        var k3 = v(x.add(k2, h / 2), tm);
        var k4 = v(x.add(k3, h), tNext);
        var sum = k1.add(k4).add(k2.add(k3), 2.0);
        return x.add(sum, h / 6);
    }

    /// <summary>The step function of a fixed-step method.</summary>
    /// <exception cref="ArgumentException">Dopri5 (adaptive, not a fixed step) or an unknown method.</exception>
    public static FixedStep For(SolverMethod method) => method switch
    {
        SolverMethod.Euler => Euler,
        SolverMethod.Midpoint => Midpoint,
        SolverMethod.Heun => Heun,
        SolverMethod.Rk4 => Rk4,
        _ => throw new ArgumentException($"{method} is not a fixed-step method; valid: euler, midpoint, heun, rk4", nameof(method)),
    };
}
