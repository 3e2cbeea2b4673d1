using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Bench;

/// <summary>This machine's float32 matmul throughput: the peak against which model FLOP utilisation is reported.</summary>
public static class MatmulBenchmark
{
    /// <summary>GFLOP/s of an n x n by n x n float32 matmul (2 n^3 FLOPs), median of repeats.</summary>
    public static double GflopsPerSecond(int n = 1024, int repeats = 7, string device = "cpu")
    {
        var dev = torch.device(device);
        using var a = randn(n, n, device: dev);
        using var b = randn(n, n, device: dev);
        double secs = Timing.MedianSeconds(() =>
        {
            using var c = matmul(a, b);
            if (dev.type == DeviceType.CUDA) cuda.synchronize();
        }, repeats, warmup: 2);
        return 2.0 * n * (double)n * n / secs / 1e9;
    }
}
