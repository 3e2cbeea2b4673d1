using System.Text.Json.Nodes;
using Nfm.Checkpoints;
using Nfm.Descriptions;
using Nfm.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Invert;

/// <summary>A teacher with its run description and, when it was trained here, the state to resume training.</summary>
public sealed record TrainedTeacher(TeacherRunSpec Spec, TeacherModel Model, TrainingState State)
{
    /// <summary>Checkpoint kind written for teachers.</summary>
    public const string Kind = "teacher";

    /// <summary>A fresh teacher: weights initialised from the run's seed (output projections zero, as TarFlow).</summary>
    public static TrainedTeacher Create(TeacherRunSpec spec)
    {
        spec.Validate();
        var device = spec.Device.ToDevice();
        var init = new Generator((ulong)spec.Training.Seed);
        TeacherModel model;
        // The layers' constructors draw from libtorch's global generator before the weights are drawn from init.
        lock (GlobalRng.Lock) model = new TeacherModel(spec.Model, init);
        model.to(device);
        return new TrainedTeacher(spec, model, TrainingState.Start(model, spec.Training, device));
    }

    // The inference model of each training state, built once (a state is immutable: every step makes a new one).
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TrainingState, TeacherModel> InferenceModels = new();

    /// <summary>
    /// The model to encode and decode with: EMA weights when the run kept them, else the trained ones, in eval mode.
    /// The EMA copy is built once per training state and shared by every caller (do not train or dispose it).
    /// </summary>
    public TeacherModel InferenceModel()
    {
        if (State.Ema is null) { Model.eval(); return Model; }
        lock (InferenceModels)
        {
            if (InferenceModels.TryGetValue(State, out var cached)) return cached;
            TeacherModel m;
            lock (GlobalRng.Lock) m = new TeacherModel(Spec.Model);
            m.to(Spec.Device.ToDevice());
            State.Ema.CopyTo(m);
            // Buffers (masks, prior variance) are not averaged: copy them as they are.
            using (no_grad())
                foreach (var (name, b) in Model.named_buffers()) m.get_buffer(name)!.copy_(b);
            m.eval();
            foreach (var p in m.parameters()) p.requires_grad = false;
            InferenceModels.Add(State, m);
            return m;
        }
    }

    /// <summary>
    /// Frees the EMA copy built for the current state, for a loop over many states (checkpoint selection) whose memory
    /// must stay flat; a later <see cref="InferenceModel"/> builds it again. Only for callers that hold no reference to it.
    /// </summary>
    public void ReleaseInferenceModel()
    {
        lock (InferenceModels)
            if (InferenceModels.TryGetValue(State, out var m)) { InferenceModels.Remove(State); m.Dispose(); }
    }

    /// <summary>
    /// The teacher's identity: SHA-256 (hex, first 16 characters) of its description and inference weights.
    /// Pair files record it, so a student refuses pairs made by another teacher.
    /// </summary>
    public string Identity() =>
        Checkpoints.Identity.Of(Json.Write(Spec.Model), InferenceModel().named_parameters().Select(p => (p.name, (Tensor)p.parameter)));

    /// <summary>Writes the checkpoint atomically (description, weights, optimiser, EMA, RNG, step).</summary>
    public void Save(string path, IReadOnlyDictionary<string, string>? extraMeta = null) =>
        Checkpoint.Save(path, State.ToCheckpoint(Kind, Json.Write(Spec), extraMeta));

    /// <summary>Loads a verified teacher checkpoint.</summary>
    public static TrainedTeacher Load(string path) => FromCheckpoint(null, Checkpoint.Load(path, Kind));

    /// <summary>Rebuilds a teacher from a checkpoint under its own or a (compatible, e.g. longer) spec.</summary>
    public static TrainedTeacher FromCheckpoint(TeacherRunSpec? spec, Checkpoint c)
    {
        var saved = c.DescriptionAs<TeacherRunSpec>();
        var t = Create(spec ?? saved);
        return t with { State = t.State.Restore(c) };
    }
}

/// <summary>
/// Teacher training by maximum likelihood on noise-augmented data (on <see cref="TrainingLoop"/>): batches, noise and
/// label dropout come from the state's generator, so a resumed run continues the same sequence.
/// </summary>
public static class TeacherTraining
{
    /// <summary>Trains from the teacher's current step to its spec's step count; <paramref name="progress"/> runs after
    /// each step, <paramref name="saved"/> after each checkpoint is written (e.g. to score it on held-out rows).</summary>
    public static TrainedTeacher Run(TrainedTeacher teacher, Tensor data, Tensor? labels, string? checkpointPath = null,
        Action<TrainingProgress>? progress = null, CancellationToken cancel = default, Action<TrainedTeacher>? saved = null)
    {
        var spec = teacher.Spec;
        long n = data.shape[0];
        if (n == 0) throw new ArgumentException("the training data has no rows");
        teacher.Model.CheckData(data.narrow(0, 0, 1), "data");
        bool conditional = spec.Model.IsConditional;
        if (conditional && labels is null) throw new ArgumentException("a class-conditional teacher needs labels with the data");
        if (labels is not null) teacher.Model.CheckLabels(labels, n);
        var device = spec.Device.ToDevice();
        using var dev = data.to(device);
        using var devLabels = conditional ? labels!.to(device) : null;
        var model = teacher.Model;
        Tensor LossOfStep(TrainingState s)
        {
            var idx = TrainingLoop.BatchIndices(s, n, device);
            var x = Teacher.Augment(spec.Model, dev.index_select(0, idx), s.Generator);
            var y = devLabels is null ? null : Teacher.DropLabels(devLabels.index_select(0, idx), s.Generator, spec.LabelDropout);
            return Teacher.Loss(model, x, y, spec.Training.Precision);
        }
        Action<TrainingState>? save = checkpointPath is null ? null : s =>
        {
            var t = teacher with { State = s };
            t.Save(checkpointPath);
            saved?.Invoke(t);
        };
        var final = TrainingLoop.Run(teacher.State, LossOfStep, save, progress, cancel);
        return teacher with { State = final };
    }
}
