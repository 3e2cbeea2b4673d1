using System.Text.Json.Nodes;
using Nfm.Checkpoints;
using Nfm.Couple;
using Nfm.Descriptions;
using Nfm.Nets;
using TorchSharp;
using static TorchSharp.torch;
using Nfm.Training;

namespace Nfm.Regress;

/// <summary>A trained (or training) student: its description, network, EMA and the state needed to resume.</summary>
public sealed record Student(StudentSpec Spec, nn.Module<Tensor, Tensor, Tensor?, Tensor> Net, TrainingState State)
{
    /// <summary>Checkpoint kind written for students.</summary>
    public const string Kind = "student";

    // The sampling network of each training state, built once: a state is immutable (every step makes a new one), so
    // its EMA weights are copied once however often the student samples, and the copy lives as long as the state.
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TrainingState, nn.Module<Tensor, Tensor, Tensor?, Tensor>> SamplingNets = new();

    /// <summary>
    /// The network to sample with: the EMA weights (or the trained ones when EMA is off) in eval mode, their gradients
    /// off. Built once per training state and shared by every caller (do not train or dispose it).
    /// </summary>
    public nn.Module<Tensor, Tensor, Tensor?, Tensor> SamplingNet()
    {
        if (State.Ema is null) { Net.eval(); return Net; }
        lock (SamplingNets)
        {
            if (SamplingNets.TryGetValue(State, out var cached)) return cached;
            nn.Module<Tensor, Tensor, Tensor?, Tensor> net;
            // Building the layers draws from libtorch's global generator: under its lock, like every other build.
            lock (GlobalRng.Lock) net = VelocityNets.Create(Spec.Net);
            net.to(Spec.Device.ToDevice());
            State.Ema.CopyTo(net);
            net.eval();
            foreach (var p in net.parameters()) p.requires_grad = false;
            SamplingNets.Add(State, net);
            return net;
        }
    }

    /// <summary>
    /// The student's identity: SHA-256 (hex, first 16 characters) of its network description and sampling weights (EMA
    /// when kept), so that figures measured on it can be recognised later.
    /// </summary>
    public string Identity()
    {
        var net = SamplingNet();
        return Checkpoints.Identity.Of(Json.Write(Spec.Net), net.named_parameters().Select(p => (p.name, (Tensor)p.parameter)));
    }

    /// <summary>
    /// Reflow from this student: fresh noise integrated by its EMA velocity field (a conditional student at the batch's
    /// labels) with <paramref name="solver"/> (Heun, 16 uniform steps by default) gives the data side.
    /// </summary>
    public Coupling ReflowCoupling(SolverSpec? solver = null)
    {
        var net = SamplingNet();
        var netSpec = Spec.Net;
        var inner = Couple.ReflowCoupling.Create(
            labels => Sampling.StudentSampler.Field(net, netSpec.Classes > 0 ? labels : null), solver);
        return (batch, g) =>
        {
            if (batch.X1.numel() != batch.Count * netSpec.Dim)
                throw new ArgumentException($"reflow student expects rows of shape {Shapes.Show(netSpec.InputShape)}, data rows have shape {Shapes.Show(batch.X1)}");
            return inner(batch, g);
        };
    }

    /// <summary>The checkpoint value: description, weights, optimiser, EMA, RNG state and the step.</summary>
    public Checkpoint ToCheckpoint(IReadOnlyDictionary<string, string>? extraMeta = null) =>
        State.ToCheckpoint(Kind, Json.Write(Spec), extraMeta);

    /// <summary>Writes the checkpoint atomically.</summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? extraMeta = null) => Checkpoint.Save(path, ToCheckpoint(extraMeta));

    /// <summary>A fresh student for <paramref name="spec"/>, weights initialised from the spec's seed.</summary>
    public static Student Create(StudentSpec spec)
    {
        spec.Validate();
        var device = spec.Device.ToDevice();
        nn.Module<Tensor, Tensor, Tensor?, Tensor> net;
        lock (GlobalRng.Lock)
        {
            torch.manual_seed(spec.Training.Seed);
            net = VelocityNets.Create(spec.Net);
        }
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
        return s with { State = s.State.Restore(c) };
    }
}

/// <summary>
/// Student training: draw a batch of data rows, couple them with noise, regress (on <see cref="TrainingLoop"/>).
/// Batches, noise, times and label dropout all come from the state's generator.
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
        long nullClass = Labels.Null;
        double dropout = spec.Net.Classes > 0 ? spec.LabelDropout : 0.0;
        var net = student.Net;
        Tensor LossOfStep(TrainingState s)
        {
            var idx = TrainingLoop.BatchIndices(s, n, device);
            var pairs = coupling(new Batch(dev.index_select(0, idx), devLabels?.index_select(0, idx), idx), s.Generator);
            return FlowMatching.Loss(net, pairs, spec.Path, s.Generator, dropout, nullClass, spec.Training.Precision);
        }
        Action<TrainingState>? save = checkpointPath is null ? null : s => (student with { State = s }).Save(checkpointPath);
        var final = TrainingLoop.Run(student.State, LossOfStep, save, progress, cancel);
        return student with { State = final };
    }
}
