using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Data;

/// <summary>
/// The built-in 2-D data sets. Each is a deterministic function of (n, generator state): same seed, same points.
/// All lie roughly in [-4, 4]^2 with a per-coordinate standard deviation between 1 and 2, and carry int64 labels.
/// Points are drawn in float64 on the generator's device and then converted to the requested type.
/// </summary>
public static class Toy2D
{
    /// <summary>The names, as the command line spells them.</summary>
    public static IReadOnlyList<string> Names => DataSources.ToyNames;

    /// <summary>Whether <paramref name="name"/> is a built-in set (case-insensitive).</summary>
    public static bool IsName(string name) => DataSources.IsToyName(name);

    /// <summary>Sample <paramref name="n"/> points of the set called <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">unknown name (the message lists the valid ones) or n &lt; 1.</exception>
    public static Dataset Sample(string name, long n, Generator generator, ScalarType dtype = ScalarType.Float32) =>
        name.ToLowerInvariant() switch
        {
            "checkerboard" => Checkerboard(n, generator, dtype),
            "moons" => Moons(n, generator, dtype),
            "8gaussians" => EightGaussians(n, generator, dtype),
            "2spirals" => TwoSpirals(n, generator, dtype),
            "rings" => Rings(n, generator, dtype),
            _ => throw new ArgumentException($"unknown 2-D data set '{name}'; valid: {string.Join(", ", Names)}", nameof(name)),
        };

    /// <summary>Sample with a fresh CPU generator seeded with <paramref name="seed"/>.</summary>
    public static Dataset Sample(string name, long n, long seed, ScalarType dtype = ScalarType.Float32)
    {
        if (seed < 0) throw new ArgumentOutOfRangeException(nameof(seed), $"seed must be >= 0, got {seed}");
        using var generator = new Generator((ulong)seed, torch.CPU);
        return Sample(name, n, generator, dtype);
    }

    /// <summary>
    /// Checkerboard: a 4 x 4 board of square cells of side 1.5 covering [-3, 3]^2; points uniform over the 8 cells
    /// whose row + column is even (the bottom-left cell is one of them). No added noise.
    /// Draws: cell k ~ U{0..7} (row r = k / 2, column c = 2 (k mod 2) + (r mod 2)), then (u, v) ~ U[0, 1)^2;
    /// point = (-3 + 1.5 (c + u), -3 + 1.5 (r + v)). Label: the cell's parity class r mod 2 (= c mod 2), 0 or 1.
    /// Per-coordinate std = 6 / sqrt(12) ≈ 1.73.
    /// </summary>
    public static Dataset Checkerboard(long n, Generator generator, ScalarType dtype = ScalarType.Float32)
    {
        CheckCount(n);
        CheckDType(dtype);
        var device = generator.device;
        using var scope = torch.NewDisposeScope();
        var k = torch.randint(0, 8, [n], ScalarType.Int64, device, generator: generator);
        var uv = torch.rand([n, 2], ScalarType.Float64, device, generator: generator);
        var row = k.div(2, rounding_mode: RoundingMode.floor);
        var col = k.remainder(2).mul(2).add(row.remainder(2));
        var x = torch.stack([col.to_type(ScalarType.Float64), row.to_type(ScalarType.Float64)], 1).add(uv).mul(1.5).sub(3.0);
        return Finish(x, row.remainder(2), "checkerboard", dtype);
    }

    /// <summary>
    /// Two moons: moon m ~ U{0, 1}, angle θ ~ U[0, π); moon 0 is (cos θ, sin θ), moon 1 is (1 - cos θ, 1/2 - sin θ);
    /// then shifted by (-1/2, -1/4), scaled by 2, and Gaussian noise of std 0.1 added to each coordinate.
    /// Range about [-3.3, 3.3] x [-1.8, 1.8]; std about 1.7 (x) and 1.0 (y). Label: the moon index m.
    /// </summary>
    public static Dataset Moons(long n, Generator generator, ScalarType dtype = ScalarType.Float32)
    {
        CheckCount(n);
        CheckDType(dtype);
        var device = generator.device;
        using var scope = torch.NewDisposeScope();
        var m = torch.randint(0, 2, [n], ScalarType.Int64, device, generator: generator);
        var theta = torch.rand([n], ScalarType.Float64, device, generator: generator).mul(Math.PI);
        var noise = torch.randn([n, 2], ScalarType.Float64, device, generator: generator).mul(0.1);
        var sign = m.to_type(ScalarType.Float64).mul(-2.0).add(1.0); // +1 for moon 0, -1 for moon 1
        var moonX = theta.cos().mul(sign).add(m.to_type(ScalarType.Float64));
        var moonY = theta.sin().mul(sign).add(m.to_type(ScalarType.Float64).mul(0.5));
        var x = torch.stack([moonX.sub(0.5), moonY.sub(0.25)], 1).mul(2.0).add(noise);
        return Finish(x, m, "moons", dtype);
    }

    /// <summary>
    /// Eight Gaussians: component k ~ U{0..7} centred at 2.5 (cos(2πk/8), sin(2πk/8)), isotropic std 0.25.
    /// Range about [-3.8, 3.8]^2 (six std from the centres); per-coordinate std ≈ 1.79. Label: the component index k.
    /// </summary>
    public static Dataset EightGaussians(long n, Generator generator, ScalarType dtype = ScalarType.Float32)
    {
        CheckCount(n);
        CheckDType(dtype);
        var device = generator.device;
        using var scope = torch.NewDisposeScope();
        var k = torch.randint(0, 8, [n], ScalarType.Int64, device, generator: generator);
        var noise = torch.randn([n, 2], ScalarType.Float64, device, generator: generator).mul(0.25);
        var angle = k.to_type(ScalarType.Float64).mul(2 * Math.PI / 8);
        var x = torch.stack([angle.cos(), angle.sin()], 1).mul(2.5).add(noise);
        return Finish(x, k, "8gaussians", dtype);
    }

    /// <summary>
    /// Two spirals: arm a ~ U{0, 1}, s ~ U[0, 1), angle φ = 3π sqrt(s) (uniform along the arc), radius r = φ / π
    /// (0 to 3, one and a half turns); arm 0 is r (cos φ, sin φ), arm 1 is its point reflection -r (cos φ, sin φ);
    /// then Gaussian noise of std 0.1 on each coordinate. Range about [-3.3, 3.3]^2; std ≈ 1.5. Label: the arm a.
    /// </summary>
    public static Dataset TwoSpirals(long n, Generator generator, ScalarType dtype = ScalarType.Float32)
    {
        CheckCount(n);
        CheckDType(dtype);
        var device = generator.device;
        using var scope = torch.NewDisposeScope();
        var a = torch.randint(0, 2, [n], ScalarType.Int64, device, generator: generator);
        var phi = torch.rand([n], ScalarType.Float64, device, generator: generator).sqrt().mul(3 * Math.PI);
        var noise = torch.randn([n, 2], ScalarType.Float64, device, generator: generator).mul(0.1);
        var r = phi.div(Math.PI).mul(a.to_type(ScalarType.Float64).mul(-2.0).add(1.0));
        var x = torch.stack([phi.cos().mul(r), phi.sin().mul(r)], 1).add(noise);
        return Finish(x, a, "2spirals", dtype);
    }

    /// <summary>
    /// Rings: three concentric circles of radii 1, 2 and 3; ring j ~ U{0, 1, 2} (radius 1 + j), angle θ ~ U[0, 2π),
    /// point (1 + j)(cos θ, sin θ) plus Gaussian noise of std 0.1 on each coordinate.
    /// Range about [-3.3, 3.3]^2; per-coordinate std ≈ 1.53. Label: the ring index j.
    /// </summary>
    public static Dataset Rings(long n, Generator generator, ScalarType dtype = ScalarType.Float32)
    {
        CheckCount(n);
        CheckDType(dtype);
        var device = generator.device;
        using var scope = torch.NewDisposeScope();
        var j = torch.randint(0, 3, [n], ScalarType.Int64, device, generator: generator);
        var theta = torch.rand([n], ScalarType.Float64, device, generator: generator).mul(2 * Math.PI);
        var noise = torch.randn([n, 2], ScalarType.Float64, device, generator: generator).mul(0.1);
        var r = j.to_type(ScalarType.Float64).add(1.0);
        var x = torch.stack([theta.cos().mul(r), theta.sin().mul(r)], 1).add(noise);
        return Finish(x, j, "rings", dtype);
    }

    static void CheckCount(long n)
    {
        if (n < 1) throw new ArgumentOutOfRangeException(nameof(n), $"n (number of points) must be >= 1, got {n}");
    }

    static void CheckDType(ScalarType dtype)
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16))
            throw new ArgumentException($"dtype must be a floating-point type, got {dtype}", nameof(dtype));
    }

    static Dataset Finish(Tensor x, Tensor labels, string name, ScalarType dtype)
    {
        var points = x.to_type(dtype).MoveToOuterDisposeScope();
        var classes = labels.contiguous().MoveToOuterDisposeScope();
        return new Dataset(points, classes, name);
    }
}
