using System.Diagnostics;
using Nfm.Descriptions;
using Nfm.Invert;
using Nfm.Regress;
using Nfm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Bench;

/// <summary>One part of a teacher training step: its name, how often a step runs it, and milliseconds per step (fastest
/// time of one call, forward and backward where it has a backward, times the count).</summary>
public sealed record ProfileLine(string Part, int PerStep, double MillisecondsPerStep);

/// <summary>
/// Where the time of a teacher training step goes. <see cref="Phases"/> splits a real step (of
/// <see cref="TeacherTraining"/>'s kind: loss, backward, clip, AdamW) into its phases; <see cref="Operations"/> times
/// each operation of the transformer alone, at the step's shapes and in the step's precision (forward and backward),
/// multiplied by how often a step runs it. The operations' sum falls short of the phases' by what they leave out
/// (the flow's element-wise arithmetic, views, the autograd engine's own work).
/// </summary>
/// <paramref name="PerTensorStepMs"/> is the same step with the optimiser, clipping and EMA updating tensor by tensor
/// (<c>flatParameters: false</c>), timed in the same run: the saving of one parameter buffer.
public sealed record TeacherProfileFigures(string Name, Precision Precision, int Threads, int Batch, double StepMs,
    IReadOnlyList<ProfileLine> Phases, IReadOnlyList<ProfileLine> Operations, double PerTensorStepMs = double.NaN,
    IReadOnlyList<ProfileLine>? PerTensorPhases = null);

/// <summary>Profiles a teacher step (see <see cref="TeacherProfileFigures"/>).</summary>
public static class TeacherProfile
{
    /// <summary>Profiles <paramref name="spec"/> at <paramref name="batch"/> rows in <paramref name="precision"/> with the current libtorch threads.</summary>
    public static TeacherProfileFigures Run(string name, TeacherSpec spec, int batch, Precision precision, int repeats = 15, long seed = 0)
    {
        var training = TeacherRunSpec.DefaultTraining(1000, batch, 1e-4, seed, precision: precision);
        var teacher = TrainedTeacher.Create(new TeacherRunSpec(spec, training, "random", new DeviceSpec()));
        var model = teacher.Model;
        var state = teacher.State;
        model.train();
        using var g = new Generator((ulong)seed);
        using var x = rand([batch, .. spec.InputShape], generator: g) * 2 - 1;
        // Non-zero output projections, so that the backward reaches every layer as in a trained model.
        using (no_grad())
            foreach (var (pname, p) in model.named_parameters())
                if (pname.Contains("proj_out.")) p.copy_(randn(p.shape, generator: g) * 0.01);

        double Fastest(Action a) => Timing.FastestSeconds(a, repeats, warmup: 3) * 1000;
        double forward = Fastest(() => { using var s = NewDisposeScope(); Teacher.Loss(model, x, null, precision); });
        double forwardBackward = Fastest(() =>
        {
            using var s = NewDisposeScope();
            Teacher.Loss(model, x, null, precision).backward();
        });
        int tensors = model.parameters().Count(p => p.requires_grad);
        (double Step, List<ProfileLine> Phases) Optimiser(TrainingState st, string how)
        {
            double clip = Fastest(() => st.Optimizer.ClipGradNorm(1.0));
            double adam = Fastest(() => st.Optimizer.Step(1e-9));
            double zero = Fastest(() => st.Optimizer.ZeroGrad());
            double step = Fastest(() =>
            {
                using var s = NewDisposeScope();
                var loss = Teacher.Loss((TeacherModel)st.Model, x, null, precision);
                Optimisation.Apply(st, loss);
            });
            return (step, new List<ProfileLine>
            {
                new("forward (loss)", 1, forward),
                new("backward", 1, forwardBackward - forward),
                new($"zero grad ({how})", 1, zero),
                new($"clip grad norm ({how})", 1, clip),
                new($"AdamW ({tensors} tensors, {how})", 1, adam),
                new("rest of the step (guard, loss read, EMA, scopes)", 1, step - forwardBackward - zero - clip - adam),
            });
        }
        var (step, phases) = Optimiser(state, state.Optimizer.Flat is null ? "tensor by tensor" : "one buffer");
        // The same model updated tensor by tensor, for the comparison within this run.
        var otherModel = new TeacherModel(spec, new Generator((ulong)seed));
        Parameters.Copy(model.state_dict(), otherModel);
        otherModel.train();
        var perTensor = TrainingState.Start(otherModel, training, CPU, flatParameters: false);
        using (var s = NewDisposeScope()) Teacher.Loss((TeacherModel)perTensor.Model, x, null, precision).backward();
        var (perTensorStep, perTensorPhases) = Optimiser(perTensor, "tensor by tensor");
        return new TeacherProfileFigures(name, precision, get_num_threads(), batch, step, phases, Operations(spec, batch, precision, repeats),
            perTensorStep, perTensorPhases);
    }

    /// <summary>The transformer's operations alone, forward and backward, at the step's shapes.</summary>
    static List<ProfileLine> Operations(TeacherSpec spec, int batch, Precision precision, int repeats)
    {
        long t = Math.Max(spec.Tokens - 1, 1), c = spec.Width, e = spec.Expansion * c, rows = batch * t;
        int layers = spec.Blocks * spec.LayersPerBlock;
        long heads = spec.Heads, hd = spec.HeadDim;
        var lines = new List<ProfileLine>();
        void Time(string part, int perStep, long[] shape, Func<Tensor, Tensor> op, ScalarType dtype = ScalarType.Float32)
        {
            using var input = randn(shape, dtype: dtype).requires_grad_(true);
            double ms = Timing.FastestSeconds(() =>
            {
                using var s = NewDisposeScope();
                Tensor y;
                using (MixedPrecision.Scope(precision)) y = op(input);
                y.backward([ones_like(y)]);
                input.grad?.zero_();
            }, repeats, warmup: 3) * 1000;
            lines.Add(new ProfileLine(part, perStep, ms * perStep));
        }
        Tensor P(long o, long i) => (randn(o, i) * 0.05).requires_grad_(true);
        using var wqkv = P(3 * c, c); using var wproj = P(c, c); using var wup = P(e, c); using var wdown = P(c, e);
        using var bqkv = zeros(3 * c).requires_grad_(true); using var bc = zeros(c).requires_grad_(true);
        using var be = zeros(e).requires_grad_(true);
        using var lnw = ones(c).requires_grad_(true); using var lnb = zeros(c).requires_grad_(true);
        var low = precision == Precision.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
        Time("layer norm", 2 * layers, [rows, c], h => nn.functional.layer_norm(h, [c], lnw, lnb, 1e-5));
        Time("linear qkv (C to 3C)", layers, [rows, c], h => MixedPrecision.Linear(h, wqkv, bqkv));
        if (t > 1)
            Time("attention (as the model runs it)", layers, [batch, heads, t, hd],
                q => MixedPrecision.CausalAttention(q, q * 0.5, q * 0.25), low);
        if (t > 1 && Environment.GetEnvironmentVariable("NFM_PROFILE_ATTENTION") == "1")
        {
            Time("attention sdpa fp32", layers, [batch, heads, t, hd],
                q => nn.functional.scaled_dot_product_attention(q, q * 0.5, q * 0.25, is_casual: true));
            Time("attention sdpa bf16", layers, [batch, heads, t, hd],
                q => nn.functional.scaled_dot_product_attention(q, q * 0.5, q * 0.25, is_casual: true), ScalarType.BFloat16);
            using var mask = ones(t, t, dtype: ScalarType.Bool).tril().logical_not();
            Tensor Manual(Tensor q, ScalarType mm)
            {
                var (qq, kk, vv) = (q.to(mm), (q * 0.5).to(mm), (q * 0.25).to(mm));
                var scores = matmul(qq, kk.transpose(-2, -1)).to(ScalarType.Float32) * (1.0 / Math.Sqrt(hd));
                var w = scores.masked_fill(mask, double.NegativeInfinity).softmax(-1);
                return matmul(w.to(mm), vv);
            }
            Time("attention manual bmm fp32", layers, [batch, heads, t, hd], q => Manual(q, ScalarType.Float32));
            Time("attention manual bmm bf16, softmax fp32", layers, [batch, heads, t, hd], q => Manual(q, ScalarType.BFloat16));
        }
        if (Environment.GetEnvironmentVariable("NFM_PROFILE_CONV") == "1")
        {
            using var w16 = (randn(16, 16, 3, 3) * 0.05).requires_grad_(true);
            using var w64 = (randn(64, 64, 3, 3) * 0.05).requires_grad_(true);
            foreach (var (label, w, shape) in new[] { ("conv 16ch 28x28", w16, new long[] { 64, 16, 28, 28 }), ("conv 64ch 7x7", w64, new long[] { 64, 64, 7, 7 }) })
            {
                Time(label + " fp32", 1, shape, h => nn.functional.conv2d(h, w, padding: [1, 1]));
                Time(label + " bf16 NCHW", 1, shape, h => nn.functional.conv2d(h.to(ScalarType.BFloat16), w.to(ScalarType.BFloat16), padding: [1, 1]).to(ScalarType.Float32));
            }
        }
        Time("linear proj (C to C)", layers, [rows, c], h => MixedPrecision.Linear(h, wproj, bc));
        Time("linear MLP up (C to eC)", layers, [rows, c], h => MixedPrecision.Linear(h, wup, be, keepLow: true));
        Time("GELU (eC)", layers, [rows, e], h => nn.functional.gelu(h), low);
        Time("linear MLP down (eC to C)", layers, [rows, e], h => MixedPrecision.Linear(h, wdown, bc), low);
        Time("residual add", 2 * layers, [rows, c], h => h + h);
        return lines;
    }
}
