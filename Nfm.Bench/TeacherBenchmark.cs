using System.Diagnostics;
using System.Text.Json.Serialization;
using Nfm.Descriptions;
using Nfm.Invert;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Bench;

/// <summary>
/// Training throughput of one teacher configuration. A step is one step of <see cref="TeacherTraining.Run"/>
/// (batch draw, noise augmentation, loss, backward, clipping, AdamW); forward + backward alone is timed as well, so that
/// the model's own cost can be told apart from the optimiser's. Wall-clock figures are what a user waits; the CPU-time
/// figures (this process, all threads) hold up better on a machine shared with other work.
/// </summary>
/// <param name="Name">Configuration name (mnist, 2d).</param>
/// <param name="Batch">Rows per step.</param>
/// <param name="StepsPerSecond">Training steps per second (median step time).</param>
/// <param name="ForwardBackwardPerSecond">Loss forward + backward passes per second (median), no optimiser.</param>
/// <param name="ModelFlopsPerStep">Model FLOPs of one step (<see cref="TeacherBenchmark.TrainingFlops"/>).</param>
/// <param name="AchievedGflopsPerSecond">ModelFlopsPerStep times StepsPerSecond, in GFLOP/s.</param>
/// <param name="Mfu">Model FLOP utilisation of the whole step: achieved over the matmul peak measured in the same run.</param>
/// <param name="ForwardBackwardMfu">The same for forward + backward alone.</param>
/// <param name="CpuSecondsPerStep">Process CPU seconds per training step (mean over the timed steps).</param>
/// <param name="CpuMfu">Model FLOPs per CPU second of a step over the matmul's FLOPs per CPU second.</param>
public sealed record TeacherTrainingFigures(string Name, int Batch, double StepsPerSecond, double ForwardBackwardPerSecond,
    double ModelFlopsPerStep, double AchievedGflopsPerSecond, double Mfu, double ForwardBackwardMfu,
    double CpuSecondsPerStep, double CpuMfu);

/// <summary>Encoding and sampling speed of the MNIST configuration (no autograd graph).</summary>
/// <param name="Batch">Rows per encode and per sampled batch.</param>
/// <param name="EncodeSamplesPerSecond">Rows encoded (data to noise) per second (median of the repeats).</param>
/// <param name="CachedSeconds">Decoding one batch with the key/value cache (median).</param>
/// <param name="UncachedSeconds">Decoding one batch with a full pass per step (one run: it is slow); NaN when skipped
/// (written to JSON as the string "NaN").</param>
/// <param name="CacheSpeedup">UncachedSeconds / CachedSeconds; NaN when the uncached decode was skipped.</param>
public sealed record TeacherSamplingFigures(int Batch, double EncodeSamplesPerSecond, double CachedSeconds,
    [property: JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double UncachedSeconds,
    [property: JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)] double CacheSpeedup);

/// <summary>
/// Figures of the teacher benchmark, with what they were measured under: libtorch threads, the machine's load
/// average at the end (1, 5, 15 minutes; empty where /proc/loadavg is missing) and the 1024^3 matmul peak of the same
/// run in the dtype of the training steps' products (float32, or bfloat16 for <see cref="Descriptions.Precision.BFloat16"/>;
/// the better of a measurement before and one after the model timings, in GFLOP per wall second and per process CPU
/// second). A part not asked for is null. <paramref name="Precision"/> is the training steps' precision; encoding and
/// sampling are timed in float32 whatever it is (inference runs in the model's dtype).
/// </summary>
public sealed record TeacherBenchmarkFigures(int TorchThreads, double[] LoadAverage, double MatmulPeakGflopsPerSecond,
    double MatmulPeakGflopsPerCpuSecond, TeacherTrainingFigures? MnistTraining, TeacherTrainingFigures? ToyTraining,
    TeacherSamplingFigures? MnistSampling, Precision Precision = Precision.Float32);

/// <summary>
/// Times the TarFlow teacher on the two configurations the project trains: MNIST (1x28x28 in 4x4 patches: 49 tokens of
/// 16 values, width 128, 4 blocks of 4 layers, head dim 64, batch 64) and 2-D toy data (2 tokens of 1 value, width 64,
/// 8 blocks of 2 layers, head dim 32, batch 256). Random weights and random data: the cost does not depend on them.
/// </summary>
public static class TeacherBenchmark
{
    /// <summary>The MNIST teacher.</summary>
    public static readonly TeacherSpec Mnist = new([1, 28, 28], TokenSize: 4, Width: 128, Blocks: 4, LayersPerBlock: 4, HeadDim: 64);

    /// <summary>Rows per step (and per sampled batch) of the MNIST configuration.</summary>
    public const int MnistBatch = 64;

    /// <summary>The 2-D toy teacher.</summary>
    public static readonly TeacherSpec Toy = new([2], TokenSize: 1, Width: 64, Blocks: 8, LayersPerBlock: 2, HeadDim: 32);

    /// <summary>Rows per step of the 2-D configuration.</summary>
    public const int ToyBatch = 256;

    /// <summary>
    /// FLOPs of the matmuls in one forward pass over <paramref name="rows"/> rows (2 per multiply-add). Per block the
    /// transformer runs over the first T - 1 tokens (the last token's output is shifted out and nothing depends on it;
    /// at least one token): proj_in (d to C), per layer qkv (C to 3C), attention scores and weighted values (counted
    /// over the full (T-1) x (T-1) product, not just its causal half), proj (C to C), the MLP (C to eC to C), then
    /// proj_out (C to 2d, or d shift-only). A context of one token (T = 2, the 2-D teacher) attends only to itself:
    /// only its values (C to C) are computed, no scores. LayerNorm, softmax, GELU and the element-wise flow are left out.
    /// </summary>
    public static double ForwardFlops(TeacherSpec spec, long rows)
    {
        double t = Math.Max(spec.Tokens - 1, 1), d = spec.TokenDim, c = spec.Width, e = spec.Expansion;
        double outputs = spec.Affine ? 2 * d : d;
        double attention = t == 1 ? 2 * c * c : 2 * c * 3 * c + 2 * t * c + 2 * t * c;
        double perLayer = attention + 2 * c * c + 2 * 2 * c * e * c;
        double perBlock = 2 * d * c + spec.LayersPerBlock * perLayer + 2 * c * outputs;
        return rows * t * spec.Blocks * perBlock;
    }

    /// <summary>Model FLOPs of one training step: forward plus backward counted as three forwards.</summary>
    public static double TrainingFlops(TeacherSpec spec, long rows) => 3 * ForwardFlops(spec, rows);

    /// <summary>
    /// Runs the benchmark with libtorch set to <paramref name="threads"/> threads (restored afterwards).
    /// <paramref name="trainSteps"/> timed training steps per configuration (after 3 untimed ones for MNIST, 40 for 2-D);
    /// <paramref name="repeats"/> timed encodes and cached decodes; <paramref name="uncached"/>: also time one uncached
    /// decode (tens of seconds on two cores).
    /// </summary>
    public static TeacherBenchmarkFigures Run(int threads = 1, int trainSteps = 10, int repeats = 5, bool training = true,
        bool sampling = true, bool uncached = true, long seed = 0, string device = "cpu", Precision precision = Precision.Float32)
    {
        if (threads < 1) throw new ArgumentException($"threads must be >= 1, got {threads}", nameof(threads));
        if (trainSteps < 1) throw new ArgumentException($"trainSteps must be >= 1, got {trainSteps}", nameof(trainSteps));
        if (repeats < 1) throw new ArgumentException($"repeats must be >= 1, got {repeats}", nameof(repeats));
        var deviceSpec = new DeviceSpec(device).Validate();
        int before = get_num_threads();
        set_num_threads(threads);
        try
        {
            var dtype = MatmulBenchmark.DtypeOf(precision);
            var peak = Peak(device, dtype);
            var mnist = training ? Train("mnist", Mnist, MnistBatch, 3, trainSteps, seed, deviceSpec, precision) : null;
            var toy = training ? Train("2d", Toy, ToyBatch, 40, trainSteps, seed, deviceSpec, precision) : null;
            var sample = sampling ? Sample(Mnist, MnistBatch, repeats, uncached, seed, deviceSpec) : null;
            var after = Peak(device, dtype);
            (double wall, double cpu) = (Math.Max(peak.Wall, after.Wall), Math.Max(peak.Cpu, after.Cpu));
            return new TeacherBenchmarkFigures(get_num_threads(), LoadAverage(), wall, cpu,
                mnist?.Against(wall, cpu), toy?.Against(wall, cpu), sample, precision);
        }
        finally
        {
            set_num_threads(before);
        }
    }

    /// <summary>The 1, 5 and 15 minute load averages from /proc/loadavg; empty where it cannot be read.</summary>
    public static double[] LoadAverage()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return [.. parts.Take(3).Select(p => double.Parse(p, System.Globalization.CultureInfo.InvariantCulture))];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return [];
        }
    }

    /// <summary>Random data rows [rows, ...InputShape] in [-1, 1] on the device.</summary>
    static Tensor Data(TeacherSpec spec, long rows, Generator generator, Device device)
    {
        using var scope = NewDisposeScope();
        return (rand([rows, .. spec.InputShape], generator: generator) * 2 - 1).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>Process CPU time so far (all threads), in seconds.</summary>
    static double CpuSeconds() => Environment.CpuUsage.TotalTime.TotalSeconds;

    /// <summary>
    /// The 1024^3 matmul's peak in <paramref name="dtype"/>: GFLOP per wall second of the fastest of 15 calls (on a
    /// shared machine the median includes other work's interruptions; the fastest call is the least disturbed) and
    /// GFLOP per process CPU second over all calls.
    /// </summary>
    static (double Wall, double Cpu) Peak(string device, ScalarType dtype)
    {
        var m = MatmulBenchmark.Measure(1024, 15, device, dtype);
        return (m.FastestGflopsPerSecond, m.GflopsPerCpuSecond);
    }

    /// <summary>Timings of one configuration before they are set against the peak.</summary>
    sealed record TrainingTimes(string Name, TeacherSpec Spec, int Batch, double StepSeconds, double ForwardBackwardSeconds, double StepCpuSeconds)
    {
        public TeacherTrainingFigures Against(double peakWall, double peakCpu)
        {
            double flops = TrainingFlops(Spec, Batch);
            double achieved = flops / StepSeconds / 1e9;
            return new TeacherTrainingFigures(Name, Batch, 1 / StepSeconds, 1 / ForwardBackwardSeconds, flops, achieved,
                achieved / peakWall, flops / ForwardBackwardSeconds / 1e9 / peakWall, StepCpuSeconds,
                flops / StepCpuSeconds / 1e9 / peakCpu);
        }
    }

    /// <summary>
    /// Times <paramref name="steps"/> training steps after <paramref name="warmup"/> untimed ones. Small models need
    /// tens of warm-up steps: .NET compiles the managed side of a step fully only after about 30 calls, and on the
    /// 2-D teacher that side is a large part of the step.
    /// </summary>
    static TrainingTimes Train(string name, TeacherSpec spec, int batch, int warmup, int steps, long seed, DeviceSpec device,
        Precision precision)
    {
        var dev = device.ToDevice();
        var training = TeacherRunSpec.DefaultTraining(warmup + steps, batch, 1e-4, seed, precision: precision);
        var run = new TeacherRunSpec(spec, training, "random", device);
        var teacher = TrainedTeacher.Create(run);
        using var generator = new Generator((ulong)seed);
        using var data = Data(spec, 4 * batch, generator, dev);

        // Whole training steps, timed between the trainer's progress reports.
        var watch = Stopwatch.StartNew();
        var stepSeconds = new List<double>();
        double last = 0, cpuStart = 0;
        TeacherTraining.Run(teacher, data, null, progress: p =>
        {
            double now = watch.Elapsed.TotalSeconds;
            if (p.Step > warmup) stepSeconds.Add(now - last);
            else if (p.Step == warmup) cpuStart = CpuSeconds();
            last = now;
        });
        double stepCpu = (CpuSeconds() - cpuStart) / steps;

        // Forward + backward alone, on one fixed batch.
        var model = teacher.Model;
        model.train();
        using var x = data.narrow(0, 0, batch);
        double forwardBackward = Timing.MedianSeconds(() =>
        {
            using var scope = NewDisposeScope();
            Teacher.Loss(model, x, null, precision).backward();
            model.zero_grad();
            Synchronise(dev);
        }, steps, warmup: 1);
        model.eval();
        model.Dispose();
        return new TrainingTimes(name, spec, batch, Median(stepSeconds), forwardBackward, stepCpu);
    }

    static TeacherSamplingFigures Sample(TeacherSpec spec, int batch, int repeats, bool uncached, long seed, DeviceSpec device)
    {
        var dev = device.ToDevice();
        using var generator = new Generator((ulong)seed);
        using var model = new TeacherModel(spec, generator);
        model.to(dev);
        model.eval();
        // Non-zero output projections, so that decoding does real work (a new model is the identity).
        using (var scope = NewDisposeScope())
        using (no_grad())
            foreach (var (pname, p) in model.named_parameters())
                if (pname.Contains("proj_out.")) p.copy_(randn(p.shape, generator: generator).to(dev) * 0.01);
        using var x = Data(spec, batch, generator, dev);
        using var z = Data(spec, batch, generator, dev); // stands in for noise: the cost does not depend on the values
        using var _ = no_grad();
        double encode = Timing.MedianSeconds(() =>
        {
            using var scope = NewDisposeScope();
            Teacher.Encode(model, x);
            Synchronise(dev);
        }, repeats, warmup: 1);
        void Decode(bool cache)
        {
            using var scope = NewDisposeScope();
            Teacher.Decode(model, z, useCache: cache);
            Synchronise(dev);
        }
        double cached = Timing.MedianSeconds(() => Decode(true), repeats, warmup: 1);
        double full = uncached ? Timing.MedianSeconds(() => Decode(false), 1, warmup: 0) : double.NaN;
        return new TeacherSamplingFigures(batch, batch / encode, cached, full, full / cached);
    }

    /// <summary>Waits for queued GPU work, so that a timing covers it.</summary>
    static void Synchronise(Device device)
    {
        if (device.type == DeviceType.CUDA) cuda.synchronize();
    }

    static double Median(List<double> values)
    {
        var v = values.Order().ToArray();
        int n = v.Length;
        return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    }
}
