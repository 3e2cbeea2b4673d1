namespace Nfm.Descriptions;

/// <summary>How the ODE from noise (t = 0) to data (t = 1) is solved.</summary>
public enum SolverMethod
{
    /// <summary>Explicit Euler: order 1, one velocity evaluation per step.</summary>
    Euler,
    /// <summary>Explicit midpoint: order 2, two evaluations per step.</summary>
    Midpoint,
    /// <summary>Heun (explicit trapezoid): order 2, two evaluations per step.</summary>
    Heun,
    /// <summary>Classical Runge–Kutta: order 4, four evaluations per step.</summary>
    Rk4,
    /// <summary>Dormand–Prince 5(4): adaptive steps under rtol/atol error control.</summary>
    Dopri5,
}

/// <summary>Where the fixed steps of a solver fall on [T0, T1].</summary>
public enum TimeGridKind
{
    /// <summary>Equal steps.</summary>
    Uniform,
    /// <summary>Steps shrinking linearly towards the data end t = 1 (see <c>Nfm.Integrate.TimeGrid</c>).</summary>
    Quadratic,
}

/// <summary>Names, parsing and per-step costs of <see cref="SolverMethod"/>.</summary>
public static class SolverMethods
{
    /// <summary>Every method in its command-line spelling.</summary>
    public static readonly IReadOnlyList<string> Names = ["euler", "midpoint", "heun", "rk4", "dopri5"];

    /// <summary>Command-line spelling of a method (the same as its JSON spelling).</summary>
    public static string Name(SolverMethod method) => method switch
    {
        SolverMethod.Euler => "euler",
        SolverMethod.Midpoint => "midpoint",
        SolverMethod.Heun => "heun",
        SolverMethod.Rk4 => "rk4",
        SolverMethod.Dopri5 => "dopri5",
        _ => throw new ArgumentException($"unknown solver method {(int)method}; valid: {string.Join(", ", Names)}", nameof(method)),
    };

    /// <summary>Parse euler|midpoint|heun|rk4|dopri5, ignoring case and surrounding blanks.</summary>
    /// <exception cref="ArgumentException">The name is none of the valid ones; the message lists them.</exception>
    public static SolverMethod Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "euler" => SolverMethod.Euler,
            "midpoint" => SolverMethod.Midpoint,
            "heun" => SolverMethod.Heun,
            "rk4" => SolverMethod.Rk4,
            "dopri5" => SolverMethod.Dopri5,
            _ => throw new ArgumentException($"unknown solver '{name}'; valid: {string.Join(", ", Names)}", nameof(name)),
        };
    }

    /// <summary>Velocity evaluations per step of a fixed-step method (Euler 1, Midpoint 2, Heun 2, RK4 4).</summary>
    /// <exception cref="ArgumentException">Dopri5: its count depends on the tolerance and the field.</exception>
    public static int EvaluationsPerStep(SolverMethod method) => method switch
    {
        SolverMethod.Euler => 1,
        SolverMethod.Midpoint => 2,
        SolverMethod.Heun => 2,
        SolverMethod.Rk4 => 4,
        SolverMethod.Dopri5 => throw new ArgumentException("dopri5 is adaptive: its evaluation count is not fixed per step", nameof(method)),
        _ => throw new ArgumentException($"unknown solver method {(int)method}; valid: {string.Join(", ", Names)}", nameof(method)),
    };

    /// <summary>Global order of accuracy (Euler 1, Midpoint 2, Heun 2, RK4 4, Dopri5 5).</summary>
    public static int Order(SolverMethod method) => method switch
    {
        SolverMethod.Euler => 1,
        SolverMethod.Midpoint => 2,
        SolverMethod.Heun => 2,
        SolverMethod.Rk4 => 4,
        SolverMethod.Dopri5 => 5,
        _ => throw new ArgumentException($"unknown solver method {(int)method}; valid: {string.Join(", ", Names)}", nameof(method)),
    };
}

/// <summary>Names and parsing of <see cref="TimeGridKind"/>.</summary>
public static class TimeGridKinds
{
    /// <summary>Every grid in its command-line spelling.</summary>
    public static readonly IReadOnlyList<string> Names = ["uniform", "quadratic"];

    /// <summary>Parse uniform|quadratic, ignoring case and surrounding blanks.</summary>
    /// <exception cref="ArgumentException">The name is none of the valid ones; the message lists them.</exception>
    public static TimeGridKind Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return name.Trim().ToLowerInvariant() switch
        {
            "uniform" => TimeGridKind.Uniform,
            "quadratic" => TimeGridKind.Quadratic,
            _ => throw new ArgumentException($"unknown time grid '{name}'; valid: {string.Join(", ", Names)}", nameof(name)),
        };
    }
}

/// <summary>
/// A solver description: the method, its fixed step count and grid, or (for <see cref="SolverMethod.Dopri5"/>)
/// its tolerances and step guard, and the interval. T0 &gt; T1 integrates backward (data to noise).
/// </summary>
/// <param name="Method">Which solver.</param>
/// <param name="Steps">Fixed-step count (&gt;= 0; 0 is the identity). Ignored by Dopri5.</param>
/// <param name="Grid">Where the fixed steps fall. Ignored by Dopri5.</param>
/// <param name="Rtol">Dopri5 relative tolerance (&gt; 0).</param>
/// <param name="Atol">Dopri5 absolute tolerance (&gt; 0).</param>
/// <param name="MaxSteps">Dopri5 guard: most step attempts (accepted or rejected) before it gives up with an error.</param>
/// <param name="T0">Start time (0 = noise).</param>
/// <param name="T1">End time (1 = data).</param>
public sealed record SolverSpec(
    SolverMethod Method = SolverMethod.Heun,
    int Steps = 16,
    TimeGridKind Grid = TimeGridKind.Uniform,
    double Rtol = 1e-5,
    double Atol = 1e-5,
    int MaxSteps = 10_000,
    double T0 = 0.0,
    double T1 = 1.0)
{
    /// <summary>Check every field; throws <see cref="ArgumentException"/> naming the field and its allowed range.</summary>
    public SolverSpec Validate()
    {
        if (!Enum.IsDefined(Method))
            throw new ArgumentException($"Method must be one of {string.Join(", ", SolverMethods.Names)}; got {(int)Method}", nameof(Method));
        if (!Enum.IsDefined(Grid))
            throw new ArgumentException($"Grid must be one of {string.Join(", ", TimeGridKinds.Names)}; got {(int)Grid}", nameof(Grid));
        if (Steps < 0)
            throw new ArgumentException($"Steps must be >= 0 (0 = identity); got {Steps}", nameof(Steps));
        if (!(Rtol > 0) || double.IsInfinity(Rtol))
            throw new ArgumentException($"Rtol must be a finite number > 0; got {Rtol}", nameof(Rtol));
        if (!(Atol > 0) || double.IsInfinity(Atol))
            throw new ArgumentException($"Atol must be a finite number > 0; got {Atol}", nameof(Atol));
        if (MaxSteps < 1)
            throw new ArgumentException($"MaxSteps must be >= 1; got {MaxSteps}", nameof(MaxSteps));
        if (!double.IsFinite(T0))
            throw new ArgumentException($"T0 must be finite; got {T0}", nameof(T0));
        if (!double.IsFinite(T1))
            throw new ArgumentException($"T1 must be finite; got {T1}", nameof(T1));
        return this;
    }
}
