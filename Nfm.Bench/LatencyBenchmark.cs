using Nfm.Descriptions;
using Nfm.Invert;
using Nfm.Nets;
using Nfm.Sampling;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Bench;

/// <summary>The time of one sample (batch 1) of a student at a step count, with or without guidance.</summary>
/// <param name="Steps">Euler steps (solver evaluations).</param>
/// <param name="Nfe">Network passes per sample: the steps, twice under guidance (both passes run as one call).</param>
/// <param name="MedianSeconds">The median of each round's median, in seconds.</param>
/// <param name="RoundSeconds">Each round's median, in seconds.</param>
public sealed record StudentLatency(int Steps, int Nfe, double MedianSeconds, IReadOnlyList<double> RoundSeconds);

/// <summary>
/// One setting of the latency benchmark: a teacher (KV-cached autoregressive sampling) beside the student network of
/// its data, one sample at a time, at one libtorch thread count.
/// </summary>
/// <param name="Setting">"conditional" (classifier-free guidance at <paramref name="Guidance"/>), "conditional-unguided" or
/// "unconditional".</param>
/// <param name="TeacherNfe">The teacher's sequential network passes per sample (blocks x (tokens - 1); twice the rows
/// under guidance).</param>
/// <param name="TeacherRoundSeconds">The teacher's median per round.</param>
/// <param name="Students">The student at each step count.</param>
/// <param name="RatioByRound">Per round: the teacher's time over the student's at the largest step count, in that round.</param>
/// <param name="MinRatio">The smallest of <paramref name="RatioByRound"/>: the target holds in every round when it is at least 10.</param>
public sealed record LatencySetting(string Setting, string StudentNet, int Threads, double Guidance, int TeacherNfe, double TeacherMedianSeconds,
    IReadOnlyList<double> TeacherRoundSeconds, IReadOnlyList<StudentLatency> Students, IReadOnlyList<double> RatioByRound, double MinRatio);

/// <summary>Figures of the latency benchmark.</summary>
/// <param name="Teachers">Where each teacher was read from.</param>
/// <param name="StudentNets">The student networks timed (their weights do not change their time: they are freshly initialised).</param>
public sealed record LatencyFigures(IReadOnlyDictionary<string, string> Teachers, IReadOnlyList<VelocityNetSpec> StudentNets, int Rounds,
    int StudentRepeats, int TeacherRepeats, IReadOnlyList<LatencySetting> Settings, double? LoadAverage);

/// <summary>
/// How long one sample takes: a flow-matching student at 1, 2 and 4 Euler steps (guided and not) against the KV-cached
/// teacher it distils, with both networks built before any timing (EMA copies made once, eval mode, no autograd), on
/// the same threads, over several rounds (each round the median of repeated samples; the ratio is taken within a round).
/// The thread count in force before the call is restored afterwards.
/// </summary>
public static class LatencyBenchmark
{
    /// <summary>Runs the benchmark for each teacher given (a class-conditional teacher gives the guided and unguided
    /// settings, an unconditional one the unconditional setting) at each thread count.</summary>
    public static LatencyFigures Run(IReadOnlyDictionary<string, TrainedTeacher> teachers, int[]? threads = null, int rounds = 5,
        int studentRepeats = 9, int teacherRepeats = 3, int[]? steps = null, double guidance = 0.5, long seed = 0,
        Architecture[]? nets = null)
    {
        if (rounds < 1 || studentRepeats < 1 || teacherRepeats < 1) throw new ArgumentException("rounds and repeats must be >= 1");
        threads ??= new[] { 1, 2 };
        steps ??= new[] { 1, 2, 4 };
        nets ??= new[] { Architecture.UNet, Architecture.Sit };
        var before = get_num_threads();
        var settings = new List<LatencySetting>();
        var shown = new List<VelocityNetSpec>();
        try
        {
            foreach (var (source, trained) in teachers)
            {
                var teacher = trained.InferenceModel();
                var model = teacher.Spec;
                foreach (var architecture in model.InputShape.Length == 3 ? nets : new[] { Architecture.Mlp })
                {
                    var (w, d) = architecture switch
                    {
                        Architecture.UNet => VelocityUNet.MnistCpu,
                        Architecture.Sit => (128, 4),
                        _ => (256, 3),
                    };
                    var netSpec = new VelocityNetSpec(model.InputShape, w, d, Activation.Silu, 32, model.Classes, architecture);
                    if (!shown.Contains(netSpec)) shown.Add(netSpec);
                    nn.Module<Tensor, Tensor, Tensor?, Tensor> net;
                    lock (GlobalRng.Lock) { manual_seed(seed); net = VelocityNets.Create(netSpec); }
                    net.eval();
                    foreach (var p in net.parameters()) p.requires_grad = false;
                    var cases = model.Classes > 0
                        ? new[] { ("conditional", guidance), ("conditional-unguided", 0.0) }
                        : new[] { ("unconditional", 0.0) };
                    foreach (var t in threads)
                    {
                        set_num_threads(t);
                        foreach (var (name, weight) in cases)
                            settings.Add(Measure(name, t, weight, teacher, net, netSpec, rounds, studentRepeats, teacherRepeats, steps, seed));
                    }
                    net.Dispose();
                }
            }
        }
        finally { set_num_threads(before); }
        return new LatencyFigures(teachers.Keys.ToDictionary(k => k, k => k), shown, rounds, studentRepeats, teacherRepeats, settings,
            StudentNetBenchmark.LoadAverage());
    }

    private static LatencySetting Measure(string name, int threads, double weight, TeacherModel teacher,
        nn.Module<Tensor, Tensor, Tensor?, Tensor> net, VelocityNetSpec netSpec, int rounds, int studentRepeats, int teacherRepeats,
        int[] steps, long seed)
    {
        using var g = new Generator((ulong)seed);
        using var label = netSpec.Classes > 0 ? tensor(new long[] { 3 }) : null;
        double? teacherGuidance = netSpec.Classes > 0 ? weight : null;
        var teacherRounds = new List<double>();
        var studentRounds = steps.ToDictionary(s => s, _ => new List<double>());
        var nfe = new Dictionary<int, int>();
        for (int r = 0; r < rounds; r++)
        {
            foreach (var s in steps)
            {
                var solver = new SolverSpec(SolverMethod.Euler, s, TimeGridKind.Uniform).Validate();
                studentRounds[s].Add(Timing.MedianSeconds(() =>
                {
                    using var scope = NewDisposeScope();
                    var result = StudentSampler.Sample(net, netSpec.InputShape, 1, solver, g, CPU, label, weight);
                    nfe[s] = result.Nfe;
                }, studentRepeats, r == 0 ? 2 : 0));
            }
            teacherRounds.Add(Timing.MedianSeconds(() =>
            {
                using var scope = NewDisposeScope();
                Teacher.Sample(teacher, 1, g, label, teacherGuidance);
            }, teacherRepeats, r == 0 ? 1 : 0));
        }
        var largest = steps.Max();
        var ratios = Enumerable.Range(0, rounds).Select(r => teacherRounds[r] / studentRounds[largest][r]).ToList();
        var students = steps.Select(s => new StudentLatency(s, nfe[s], MedianOf(studentRounds[s]), studentRounds[s])).ToList();
        var spec = teacher.Spec;
        return new LatencySetting(name, netSpec.Architecture.ToString().ToLowerInvariant(), threads, weight, (int)(spec.Blocks * (spec.Tokens - 1)), MedianOf(teacherRounds), teacherRounds,
            students, ratios, ratios.Min());
    }

    private static double MedianOf(IEnumerable<double> values) => Timing.Median(values.OrderBy(v => v).ToArray());
}
