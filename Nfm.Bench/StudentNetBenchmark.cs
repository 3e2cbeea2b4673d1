using Nfm.Couple;
using Nfm.Descriptions;
using Nfm.Nets;
using Nfm.Regress;
using Nfm.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm.Bench;

/// <summary>
/// One velocity network at one libtorch thread count: its size, its measured speed and its analytic cost.
/// A training step is the real one (flow-matching loss on an independent coupling, backward, clipping, AdamW, EMA);
/// a forward pass is one sampling evaluation (eval mode, no autograd) on the whole batch.
/// </summary>
/// <param name="Net">"mlp" or "unet".</param>
/// <param name="Width">Hidden width (MLP) or base channels (U-Net).</param>
/// <param name="Depth">Hidden layers (MLP) or resolutions (U-Net).</param>
/// <param name="Parameters">Trainable parameters.</param>
/// <param name="Threads">libtorch intra-op threads during the timing.</param>
/// <param name="Batch">Rows per step and per forward pass.</param>
/// <param name="TrainStepsPerSecond">Training steps per second (median step time).</param>
/// <param name="ForwardPassesPerSecond">Sampling forward passes per second (median), each over <paramref name="Batch"/> rows.</param>
/// <param name="MultiplyAddsPerSample">Conv and linear multiply-adds of one forward pass per row (norms and activations not counted).</param>
/// <param name="TrainGflopPerStep">Estimated FLOPs of one training step in units of 1e9: 3 x forward (backward is about
/// twice the forward) x 2 FLOPs per multiply-add x batch.</param>
/// <param name="TrainGflopsPerSecond">Achieved throughput of training: TrainGflopPerStep x TrainStepsPerSecond.</param>
/// <param name="MatmulGflopsPerSecond">This machine's matmul peak at the same thread count in the dtype of the training
/// step's products (float32, or bfloat16 under mixed precision), for scale.</param>
public sealed record StudentNetTiming(string Net, int Width, int Depth, long Parameters, int Threads, int Batch,
    double TrainStepsPerSecond, double ForwardPassesPerSecond, long MultiplyAddsPerSample, double TrainGflopPerStep,
    double TrainGflopsPerSecond, double MatmulGflopsPerSecond);

/// <summary>Figures of the student-network benchmark: every network at every thread count, on one input shape.</summary>
/// <param name="LoadAverage">The machine's one-minute load average at the start (Linux /proc/loadavg; null elsewhere):
/// on a shared machine the timings scale with it, the multiply-add counts do not.</param>
/// <param name="Precision">The training steps' precision; sampling forward passes are timed in float32 whatever it is.</param>
public sealed record StudentNetBenchmarkFigures(long[] InputShape, int Classes, int Batch, int Steps, int Warmup,
    double? LoadAverage, IReadOnlyList<StudentNetTiming> Timings, Precision Precision = Precision.Float32);

/// <summary>
/// Compares the velocity networks a student can use on MNIST-shaped input (1 x 28 x 28, 10 classes by default):
/// the MLP (Width 512, Depth 3) against the U-Net at the given width and depth (by default
/// <see cref="VelocityUNet.MnistCpu"/>). For each libtorch thread count it times <c>steps</c> training steps and
/// <c>steps</c> sampling forward passes after <c>warmup</c> untimed ones, and reports medians. The thread count in force before the call is restored afterwards.
/// </summary>
public static class StudentNetBenchmark
{
    /// <summary>The MLP the U-Net is compared against.</summary>
    public static readonly (int Width, int Depth) Mlp = (512, 3);

    /// <summary>Run the benchmark; <paramref name="threads"/> defaults to 1 and 2; <paramref name="seed"/> fixes
    /// weights and data.</summary>
    public static StudentNetBenchmarkFigures Run(int? unetWidth = null, int? unetDepth = null, int batch = 64, int steps = 20,
        int warmup = 3, int[]? threads = null, long[]? inputShape = null, int classes = 10, long seed = 0,
        Precision precision = Precision.Float32)
    {
        if (steps < 1) throw new ArgumentException($"steps must be >= 1, got {steps}", nameof(steps));
        if (warmup < 0) throw new ArgumentException($"warmup must be >= 0, got {warmup}", nameof(warmup));
        if (batch < 1) throw new ArgumentException($"batch must be >= 1, got {batch}", nameof(batch));
        threads ??= [1, 2];
        if (threads.Length == 0 || threads.Any(n => n < 1)) throw new ArgumentException("threads must list counts >= 1", nameof(threads));
        var shape = inputShape ?? [1, 28, 28];
        var nets = new[]
        {
            ("mlp", new VelocityNetSpec(shape, Mlp.Width, Mlp.Depth, Classes: classes, Architecture: Architecture.Mlp)),
            ("unet", new VelocityNetSpec(shape, unetWidth ?? VelocityUNet.MnistCpu.Width, unetDepth ?? VelocityUNet.MnistCpu.Depth,
                Classes: classes, Architecture: Architecture.UNet)),
        };
        double? load = LoadAverage();
        int before = get_num_threads();
        var timings = new List<StudentNetTiming>();
        try
        {
            foreach (var n in threads)
            {
                set_num_threads(n);
                double peak = MatmulBenchmark.GflopsPerSecond(dtype: MatmulBenchmark.DtypeOf(precision));
                foreach (var (name, spec) in nets)
                    timings.Add(Time(name, spec, n, batch, steps, warmup, seed, peak, precision));
            }
        }
        finally { set_num_threads(before); }
        return new StudentNetBenchmarkFigures(shape, classes, batch, steps, warmup, load, timings, precision);
    }

    internal static double? LoadAverage()
    {
        try
        {
            var first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.TryParse(first, System.Globalization.CultureInfo.InvariantCulture, out var l) ? l : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    static StudentNetTiming Time(string name, VelocityNetSpec spec, int threads, int batch, int steps, int warmup, long seed, double peak,
        Precision precision)
    {
        manual_seed(seed);
        using var net = VelocityNets.Create(spec);
        long parameters = net.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        var training = new TrainingSpec(Steps: warmup + steps, Batch: batch, Seed: seed, Precision: precision);
        var state = TrainingState.Start(net, training, CPU);
        using var data = randn([batch, .. spec.InputShape], generator: state.Generator);
        using var labels = spec.Classes > 0 ? randint(0, spec.Classes, [batch], generator: state.Generator) : null;
        var path = new PathSpec();
        using var times = rand(batch, generator: state.Generator);

        net.train();
        double stepSeconds = Timing.MedianSeconds(() =>
        {
            using var scope = NewDisposeScope();
            var pairs = Couplings.Independent(new Batch(data, labels, null), state.Generator);
            state = FlowMatching.TrainStep(state, pairs, path, 0.1, spec.Classes).State;
        }, steps, warmup);

        net.eval();
        double forwardSeconds;
        using (no_grad())
            forwardSeconds = Timing.MedianSeconds(() =>
            {
                using var scope = NewDisposeScope();
                net.forward(data, times, labels);
            }, steps, warmup);

        long macs = MultiplyAddsPerSample(net, data, times, labels);
        double gflop = 3.0 * 2.0 * macs * batch / 1e9;
        return new StudentNetTiming(name, spec.Width, spec.Depth, parameters, threads, batch, 1 / stepSeconds, 1 / forwardSeconds,
            macs, gflop, gflop / stepSeconds, peak);
    }

    /// <summary>
    /// Multiply-adds per row of one forward pass of <paramref name="net"/> on this input, counted over its Conv2d and
    /// Linear layers from their output sizes (output values x inputs per output value). Norms, activations, the
    /// upsampling and the embedding look-up are left out: they are a few percent of the total.
    /// </summary>
    public static long MultiplyAddsPerSample(nn.Module<Tensor, Tensor, Tensor?, Tensor> net, Tensor x, Tensor t, Tensor? labels)
    {
        if (x.dim() < 1 || x.shape[0] < 1) throw new ArgumentException($"x must have at least one row, got {Shapes.Show(x)}", nameof(x));
        long total = 0;
        var removers = new List<Action>();
        foreach (var m in net.modules())
        {
            switch (m)
            {
                case Conv2d conv:
                    long perOutput = conv.in_channels / conv.groups * conv.kernel_size.Aggregate(1L, (a, b) => a * b);
                    var convHook = conv.register_forward_hook((_, _, y) => { total += y.numel() * perOutput; return y; });
                    removers.Add(() => convHook.remove());
                    break;
                case Linear linear:
                    long inFeatures = linear.in_features;
                    var linearHook = linear.register_forward_hook((_, _, y) => { total += y.numel() * inFeatures; return y; });
                    removers.Add(() => linearHook.remove());
                    break;
            }
        }
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            net.forward(x, t, labels);
        }
        finally { foreach (var remove in removers) remove(); }
        return total / x.shape[0];
    }
}
