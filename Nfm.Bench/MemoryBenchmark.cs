using System.Diagnostics;
using Nfm.Couple;
using Nfm.Data;
using Nfm.Descriptions;
using Nfm.Regress;
using Nfm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Bench;

/// <summary>
/// Memory at one training step: the process's resident set size, the live TorchSharp tensor handles
/// (<see cref="Tensor.TotalCount"/>: created and not yet disposed or finalised) and the live tensors that the dispose-scope
/// statistics of the training thread count (<see cref="DisposeScopeManager.Statistics"/>).
/// </summary>
public sealed record MemorySample(long Step, long ResidentBytes, long LiveTensors, long ScopeLiveTensors);

/// <summary>
/// Figures of the memory benchmark: the series, and its values at the first sample after warm-up and at the end.
/// <see cref="GrowthPercent"/> is the resident set's growth from warm-up to the end; a training loop that leaks native
/// tensors shows it there, and more plainly as a rising live-tensor count.
/// </summary>
public sealed record MemoryBenchmarkFigures(
    int Steps, int Batch, int Width, int Depth, string Data, string Coupling, int SampleEvery,
    IReadOnlyList<MemorySample> Series,
    long WarmupStep, long ResidentAfterWarmup, long ResidentAtEnd, double GrowthPercent,
    long LiveTensorsAfterWarmup, long LiveTensorsAtEnd, long ScopeLiveAfterWarmup, long ScopeLiveAtEnd,
    double Seconds, Precision Precision = Precision.Float32);

/// <summary>
/// Trains a small student in this process (the CLI's training path: <see cref="StudentTraining.Run"/> on a built-in
/// 2-D set) and samples memory every <c>sampleEvery</c> steps. A sample is taken in the progress report at the end of a
/// step, before that step's dispose scope closes, so each includes one step's temporaries: the same number every time.
/// </summary>
public static class MemoryBenchmark
{
    /// <summary>Runs the benchmark; the first sample at or after <paramref name="warmupSteps"/> is the warm-up reference.</summary>
    /// <exception cref="ArgumentException">non-positive sizes, or no sample after the warm-up.</exception>
    public static MemoryBenchmarkFigures Run(int steps = 2000, int sampleEvery = 100, int warmupSteps = 200, int batch = 256,
        int width = 256, int depth = 3, string data = "checkerboard", string coupling = "ot", long seed = 0, string device = "cpu",
        Precision precision = Precision.Float32)
    {
        if (sampleEvery < 1) throw new ArgumentException($"sampleEvery must be >= 1, got {sampleEvery}", nameof(sampleEvery));
        if (warmupSteps < 0) throw new ArgumentException($"warmupSteps must be >= 0, got {warmupSteps}", nameof(warmupSteps));
        if (steps < warmupSteps + sampleEvery)
            throw new ArgumentException($"steps ({steps}) must leave a sample after the {warmupSteps} warm-up steps (one every {sampleEvery})", nameof(steps));
        var couplingSpec = CouplingSpec.Parse(coupling);
        if (couplingSpec.Kind is not (CouplingKind.Independent or CouplingKind.Ot or CouplingKind.Sinkhorn))
            throw new ArgumentException($"the memory benchmark takes independent, ot or sinkhorn:EPS, got '{coupling}'", nameof(coupling));

        var set = DataSource.Load(data, 20_000, seed);
        var rowShape = set.X.shape.Skip(1).ToArray();
        var spec = new StudentSpec(new VelocityNetSpec(rowShape, width, depth), new PathSpec(),
            new TrainingSpec(steps, batch, Seed: seed, Precision: precision), couplingSpec, set.Name, new DeviceSpec(device)).Validate();
        var student = Student.Create(spec);
        var series = new List<MemorySample>();
        var watch = Stopwatch.StartNew();
        StudentTraining.Run(student, set.X, null, Couplings.From(couplingSpec), progress: p =>
        {
            if (p.Step % sampleEvery == 0) series.Add(Sample(p.Step));
        });
        double seconds = watch.Elapsed.TotalSeconds;

        var warm = series.First(s => s.Step >= warmupSteps);
        var end = series[^1];
        double growth = 100.0 * (end.ResidentBytes - warm.ResidentBytes) / warm.ResidentBytes;
        return new MemoryBenchmarkFigures(steps, batch, width, depth, data, coupling, sampleEvery, series,
            warm.Step, warm.ResidentBytes, end.ResidentBytes, growth,
            warm.LiveTensors, end.LiveTensors, warm.ScopeLiveTensors, end.ScopeLiveTensors, seconds, precision);
    }

    static MemorySample Sample(long step) =>
        new(step, ResidentBytes(), Tensor.TotalCount, DisposeScopeManager.Statistics.ThreadTotalLiveCount);

    /// <summary>The resident set size in bytes: /proc/self/statm on Linux (cheap, current), else the runtime's working set.</summary>
    public static long ResidentBytes()
    {
        try
        {
            var fields = File.ReadAllText("/proc/self/statm").Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length > 1 && long.TryParse(fields[1], out var pages)) return pages * Environment.SystemPageSize;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Environment.WorkingSet;
    }
}
