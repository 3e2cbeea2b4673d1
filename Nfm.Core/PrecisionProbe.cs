using System.Collections.Concurrent;
using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm;

/// <summary>
/// What a device's matrix units do in each dtype: the fastest of a few n x n by n x n matmuls in float32 and in
/// bfloat16, and the precision that follows from them (<see cref="Preferred"/>).
/// </summary>
/// <param name="Device">The device measured ("cpu", "cuda:0", ...).</param>
/// <param name="N">The matrix size.</param>
/// <param name="Float32Gflops">GFLOP per second of the fastest float32 call.</param>
/// <param name="BFloat16Gflops">GFLOP per second of the fastest bfloat16 call.</param>
public sealed record PrecisionProbe(string Device, int N, double Float32Gflops, double BFloat16Gflops)
{
    /// <summary>
    /// bfloat16 is preferred from this matmul speed-up on. A mixed-precision step also pays casts and keeps its norms
    /// in float32: the MNIST teacher step ran 2.4x faster for a 4.5x faster matmul (AMX), so below 2x it would gain little.
    /// </summary>
    public const double SpeedupNeeded = 2.0;

    /// <summary>bfloat16 GFLOP/s over float32 GFLOP/s.</summary>
    public double Speedup => BFloat16Gflops / Float32Gflops;

    /// <summary>bfloat16 when its matmul is at least <see cref="SpeedupNeeded"/> times float32's, else float32. CPUs
    /// without bfloat16 units (AVX2 only) emulate it: one measured here ran it at 1.4 GFLOP/s against 122 in float32.</summary>
    public Precision Preferred => Speedup >= SpeedupNeeded ? Precision.BFloat16 : Precision.Float32;

    /// <summary>One line for a log: the figures and the choice.</summary>
    public override string ToString() =>
        $"{Preferred.Name()} (matmul {N}^3 on {Device}: bfloat16 {BFloat16Gflops:0.0} GFLOP/s, float32 {Float32Gflops:0.0}, " +
        $"{Speedup:0.00}x; bfloat16 from {SpeedupNeeded:0.#}x)";

    static readonly ConcurrentDictionary<string, PrecisionProbe> measured = new();

    /// <summary>
    /// The probe of <paramref name="device"/>, measured once per process (512^3, one untimed and three timed calls per
    /// dtype, on the current libtorch threads: under a second where bfloat16 is emulated, at 1.4 GFLOP/s, and less
    /// where it is not).
    /// </summary>
    public static PrecisionProbe Of(string device = "cpu") => measured.GetOrAdd(device, d => Measure(d, 512, 3));

    /// <summary>Measures afresh: fastest of <paramref name="repeats"/> timed n x n matmuls per dtype after one untimed.</summary>
    public static PrecisionProbe Measure(string device, int n, int repeats)
    {
        if (n < 1) throw new ArgumentException($"n must be >= 1, got {n}", nameof(n));
        double Gflops(ScalarType dtype)
        {
            using var scope = NewDisposeScope();
            var dev = torch.device(device);
            var a = randn(n, n, dtype: dtype, device: dev);
            var b = randn(n, n, dtype: dtype, device: dev);
            double seconds = Timing.FastestSeconds(() =>
            {
                using var c = matmul(a, b);
                if (dev.type == DeviceType.CUDA) cuda.synchronize();
            }, repeats, 1);
            return 2.0 * n * (double)n * n / seconds / 1e9;
        }
        return new PrecisionProbe(device, n, Gflops(ScalarType.Float32), Gflops(ScalarType.BFloat16));
    }
}
