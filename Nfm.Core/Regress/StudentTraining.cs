using System.Text.Json.Nodes;
using Nfm.Checkpoints;
using Nfm.Couple;
using Nfm.Descriptions;
using Nfm.Nets;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Regress;

/// <summary>A trained (or training) student: its description, network, EMA and the state needed to resume.</summary>
public sealed record Student(StudentSpec Spec, VelocityMlp Net, TrainingState State)
{
    /// <summary>Checkpoint kind written for students.</summary>
    public const string Kind = "student";

    /// <summary>A network carrying the EMA weights (or the raw weights when EMA is off), for sampling.</summary>
    public VelocityMlp SamplingNet()
    {
        if (State.Ema is null) return Net;
        var net = new VelocityMlp(Spec.Net);
        net.to(Spec.Device.ToDevice());
        State.Ema.CopyTo(net);
        net.eval();
        return net;
    }

    /// <summary>The checkpoint value: weights, optimiser, EMA, RNG state and the step.</summary>
    public Checkpoint ToCheckpoint(IReadOnlyDictionary<string, string>? extraMeta = null)
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (n, p) in Net.named_parameters()) tensors["model." + n] = p;
        if (State.Ema is not null) foreach (var (n, t) in State.Ema.Weights) tensors["ema." + n] = t;
        foreach (var (n, t) in State.Optimizer.State()) tensors["opt." + n] = t;
        tensors["rng.state"] = State.Generator.get_state();
        var meta = new Dictionary<string, string>
        {
            ["step"] = State.Step.ToString(),
            ["skippedSteps"] = State.SkippedSteps.ToString(),
        };
        if (extraMeta is not null) foreach (var (k, v) in extraMeta) meta[k] = v;
        return new Checkpoint(Kind, JsonNode.Parse(Json.Write(Spec))!, meta, tensors);
    }

    /// <summary>Writes the checkpoint atomically.</summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? extraMeta = null) => Checkpoint.Save(path, ToCheckpoint(extraMeta));

    /// <summary>A fresh student for <paramref name="spec"/>, weights initialised from the spec's seed.</summary>
    public static Student Create(StudentSpec spec)
    {
        spec.Validate();
        var device = spec.Device.ToDevice();
        torch.manual_seed(spec.Training.Seed);
        var net = new VelocityMlp(spec.Net);
        net.to(device);
        return new Student(spec, net, TrainingState.Start(net, spec.Training, device));
    }

    /// <summary>Loads a student checkpoint (verified), ready to sample or to resume training.</summary>
    public static Student Load(string path)
    {
        var c = Checkpoint.Load(path, Kind);
        var spec = c.DescriptionAs<StudentSpec>();
        return FromCheckpoint(spec, c);
    }

    /// <summary>Rebuilds a student from a checkpoint under a (possibly extended) spec, e.g. more steps when resuming.</summary>
    public static Student FromCheckpoint(StudentSpec spec, Checkpoint c)
    {
        var s = Create(spec);
        Parameters.Copy(c.WithPrefix("model."), s.Net);
        if (s.State.Ema is not null) s.State.Ema.Load(c.WithPrefix("ema."));
        s.State.Optimizer.LoadState(c.WithPrefix("opt."));
        s.State.Generator.set_state(c.Tensors["rng.state"]);
        var state = s.State with
        {
            Step = long.Parse(c.Meta["step"]),
            SkippedSteps = int.Parse(c.Meta.GetValueOrDefault("skippedSteps", "0")),
        };
        return s with { State = state };
    }
}

/// <summary>What the training loop reports after each step.</summary>
public readonly record struct TrainingProgress(long Step, long TotalSteps, double Loss, bool Skipped);

/// <summary>
/// The student training loop: draw a batch of data rows, couple them with noise, regress, repeat; checkpoints every
/// <see cref="TrainingSpec.SaveEvery"/> steps and at the end; stops early and saves when cancelled.
/// All randomness (batches, noise, times, label dropout) comes from the state's generator, whose state is checkpointed,
/// so an interrupted-and-resumed run follows the same sequence as an uninterrupted one.
/// </summary>
public static class StudentTraining
{
    /// <summary>Trains <paramref name="student"/> from its current step to its spec's step count.</summary>
    public static Student Run(Student student, Tensor data, Tensor? labels, Coupling coupling, string? checkpointPath = null,
        Action<TrainingProgress>? progress = null, CancellationToken cancel = default)
    {
        var spec = student.Spec;
        long n = data.shape[0];
        if (n == 0) throw new ArgumentException("the training data has no rows");
        if (labels is not null && labels.shape[0] != n) throw new ArgumentException($"labels have {labels.shape[0]} rows, data has {n}");
        var device = spec.Device.ToDevice();
        using var dev = data.to(device);
        using var devLabels = labels?.to(device);
        var state = student.State;
        long nullClass = spec.Net.Classes;
        double dropout = spec.Net.Classes > 0 ? spec.LabelDropout : 0.0;
        student.Net.train();
        while (state.Step < spec.Training.Steps && !cancel.IsCancellationRequested)
        {
            using (var scope = NewDisposeScope())
            {
                var idx = randint(0, n, new long[] { spec.Training.Batch }, dtype: int64, device: device, generator: state.Generator);
                var batch = new Batch(dev.index_select(0, idx), devLabels?.index_select(0, idx));
                var pairs = coupling(batch, state.Generator);
                var outcome = FlowMatching.TrainStep(state, pairs, spec.Path, dropout, nullClass);
                state = outcome.State;
                progress?.Invoke(new TrainingProgress(state.Step, spec.Training.Steps, outcome.Loss, outcome.Skipped));
            }
            student = student with { State = state };
            if (checkpointPath is not null && spec.Training.SaveEvery > 0 && state.Step % spec.Training.SaveEvery == 0 && state.Step < spec.Training.Steps)
                student.Save(checkpointPath);
        }
        if (checkpointPath is not null) student.Save(checkpointPath);
        return student;
    }
}
