using System.Diagnostics;
using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Bench;

/// <summary>
/// One matmul peak measurement: GFLOP per wall second of the median call and of the fastest call (on a shared machine
/// the fastest is the least disturbed), and GFLOP per process CPU second over all timed calls.
/// </summary>
public sealed record MatmulPeak(int N, string Dtype, double MedianGflopsPerSecond, double FastestGflopsPerSecond, double GflopsPerCpuSecond);

/// <summary>
/// This machine's matmul throughput in a dtype (float32, or bfloat16 for mixed precision): the peak against which model
/// FLOP utilisation is reported. Every benchmark that needs a peak measures it here.
/// </summary>
public static class MatmulBenchmark
{
    /// <summary>The dtype of the matrix products of a training step in <paramref name="precision"/>.</summary>
    public static ScalarType DtypeOf(Precision precision) => precision == Precision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;

    /// <summary>Times <paramref name="repeats"/> n x n by n x n matmuls (2 n^3 FLOPs each) in <paramref name="dtype"/> after two untimed ones.</summary>
    public static MatmulPeak Measure(int n = 1024, int repeats = 7, string device = "cpu", ScalarType dtype = ScalarType.Float32)
    {
        if (n < 1) throw new ArgumentException($"n must be >= 1, got {n}", nameof(n));
        if (repeats < 1) throw new ArgumentException($"repeats must be >= 1, got {repeats}", nameof(repeats));
        var dev = torch.device(device);
        using var a = randn(n, n, dtype: dtype, device: dev);
        using var b = randn(n, n, dtype: dtype, device: dev);
        void Multiply()
        {
            using var c = matmul(a, b);
            if (dev.type == DeviceType.CUDA) cuda.synchronize();
        }
        Multiply(); Multiply();
        var seconds = new double[repeats];
        double cpuStart = Environment.CpuUsage.TotalTime.TotalSeconds;
        for (int i = 0; i < repeats; i++)
        {
            var watch = Stopwatch.StartNew();
            Multiply();
            seconds[i] = watch.Elapsed.TotalSeconds;
        }
        double cpu = Environment.CpuUsage.TotalTime.TotalSeconds - cpuStart;
        double flops = 2.0 * n * (double)n * n;
        Array.Sort(seconds);
        double median = repeats % 2 == 1 ? seconds[repeats / 2] : 0.5 * (seconds[repeats / 2 - 1] + seconds[repeats / 2]);
        return new MatmulPeak(n, dtype.ToString().ToLowerInvariant(), flops / median / 1e9, flops / seconds[0] / 1e9,
            repeats * flops / cpu / 1e9);
    }

    /// <summary>GFLOP/s of an n x n by n x n matmul in <paramref name="dtype"/> (2 n^3 FLOPs), median of repeats.</summary>
    public static double GflopsPerSecond(int n = 1024, int repeats = 7, string device = "cpu", ScalarType dtype = ScalarType.Float32) =>
        Measure(n, repeats, device, dtype).MedianGflopsPerSecond;
}
