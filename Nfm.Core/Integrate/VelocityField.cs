using static TorchSharp.torch;

namespace Nfm.Integrate;

/// <summary>
/// The right-hand side of the ODE dx/dt = v(x, t): for states <paramref name="x"/> of any shape [N, ...] at time
/// <paramref name="t"/> (0 = noise, 1 = data) it returns a velocity of the same shape.
/// </summary>
public delegate Tensor VelocityField(Tensor x, double t);
