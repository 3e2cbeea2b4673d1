using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Training;

/// <summary>
/// Everything a training run carries from one step to the next. The record is immutable; the module, optimiser,
/// EMA and generator it points to are the mutable TorchSharp objects that a step updates in place.
/// <see cref="LastLoss"/> is the loss of the last step taken and <see cref="TrainSeconds"/> the wall-clock seconds of
/// training so far, summed over every process that continued the run; both travel in the checkpoint, so a run that is
/// only loaded (already at its step count) still reports how it was trained. A checkpoint written before they were
/// recorded gives NaN for both: unknown, never a guess.
/// </summary>
public sealed record TrainingState(nn.Module Model, AdamW Optimizer, Ema? Ema, TrainingSpec Spec, Generator Generator,
    long Step = 0, int BadStepsInARow = 0, int SkippedSteps = 0, double LastLoss = double.NaN, double TrainSeconds = 0)
{
    /// <summary>
    /// A fresh state: AdamW over the model's parameters, EMA when the spec asks for it, generator seeded from the spec.
    /// The parameters move into one buffer (<see cref="FlatParameters"/>) unless <paramref name="flatParameters"/> is
    /// false; place the model on its device before this call.
    /// </summary>
    public static TrainingState Start(nn.Module model, TrainingSpec spec, Device device, bool flatParameters = true)
    {
        spec.Validate();
        var named = model.named_parameters().Select(p => (p.name, p.parameter));
        var opt = new AdamW(named, spec.Beta1, spec.Beta2, weightDecay: spec.WeightDecay, flat: flatParameters);
        var ema = spec.EmaDecay > 0 ? new Ema(model, spec.EmaDecay, opt.Flat) : null;
        var gen = new Generator((ulong)spec.Seed, device);
        return new TrainingState(model, opt, ema, spec, gen);
    }

    /// <summary>The resumable state as named tensors: "model.*", "ema.*", "opt.*" and "rng.state".</summary>
    public Dictionary<string, Tensor> ToTensors()
    {
        var tensors = new Dictionary<string, Tensor>();
        foreach (var (n, p) in Model.named_parameters()) tensors["model." + n] = p;
        foreach (var (n, b) in Model.named_buffers()) tensors["model." + n] = b;
        if (Ema is not null) foreach (var (n, t) in Ema.Weights) tensors["ema." + n] = t;
        foreach (var (n, t) in Optimizer.State()) tensors["opt." + n] = t;
        tensors["rng.state"] = Generator.get_state();
        return tensors;
    }

    /// <summary>Step counters, the last loss and the training seconds as checkpoint metadata.</summary>
    public Dictionary<string, string> ToMeta() => new()
    {
        ["step"] = Step.ToString(),
        ["skippedSteps"] = SkippedSteps.ToString(),
        ["lastLoss"] = LastLoss.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        ["trainSeconds"] = TrainSeconds.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
    };

    static double MetaNumber(Checkpoints.Checkpoint c, string key) =>
        c.Meta.TryGetValue(key, out var v)
        && double.TryParse(v, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d)
            ? d : double.NaN;

    /// <summary>The checkpoint of a run in this state: its kind, its description (JSON), the counters plus
    /// <paramref name="extraMeta"/> as metadata, and <see cref="ToTensors"/>. Every trainer saves through this.</summary>
    public Checkpoints.Checkpoint ToCheckpoint(string kind, string descriptionJson, IReadOnlyDictionary<string, string>? extraMeta = null)
    {
        var meta = ToMeta();
        if (extraMeta is not null) foreach (var (k, v) in extraMeta) meta[k] = v;
        return new Checkpoints.Checkpoint(kind, System.Text.Json.Nodes.JsonNode.Parse(descriptionJson)!, meta, ToTensors());
    }

    /// <summary>This state with weights, EMA, optimiser, RNG and counters restored from a checkpoint's tensors and metadata.</summary>
    public TrainingState Restore(Checkpoints.Checkpoint c)
    {
        Parameters.Copy(c.WithPrefix("model."), Model);
        Ema?.Load(c.WithPrefix("ema."));
        Optimizer.LoadState(c.WithPrefix("opt."));
        if (!c.Tensors.TryGetValue("rng.state", out var rng)) throw new InvalidDataException("checkpoint lacks the RNG state 'rng.state'");
        Generator.set_state(rng);
        return this with
        {
            Step = long.Parse(c.Meta["step"]),
            SkippedSteps = int.Parse(c.Meta.GetValueOrDefault("skippedSteps", "0")),
            LastLoss = MetaNumber(c, "lastLoss"),
            TrainSeconds = MetaNumber(c, "trainSeconds"),
        };
    }
}

/// <summary>The result of one training step: the next state, the loss, and whether the update was skipped.</summary>
public sealed record StepOutcome(TrainingState State, double Loss, double GradNorm, bool Skipped);

/// <summary>Raised when training meets more non-finite losses or gradients in a row than the spec allows.</summary>
public sealed class NonFiniteTrainingException(string message) : Exception(message);

/// <summary>The optimisation half of a training step, shared by every trainer: backward, clip, guard, update, EMA.</summary>
public static class Optimisation
{
    /// <summary>
    /// Backpropagates <paramref name="loss"/>, clips the global gradient norm, and applies AdamW at the scheduled
    /// learning rate, then updates the EMA. A non-finite loss or gradient skips the update (reported in the outcome);
    /// after <see cref="TrainingSpec.MaxBadSteps"/> in a row it throws <see cref="NonFiniteTrainingException"/>.
    /// </summary>
    public static StepOutcome Apply(TrainingState s, Tensor loss)
    {
        s.Optimizer.ZeroGrad();
        double l = loss.detach().cpu().to(ScalarType.Float64).item<double>();
        double norm = double.NaN;
        if (double.IsFinite(l))
        {
            loss.backward();
            double clip = s.Spec.GradClip > 0 ? s.Spec.GradClip : double.PositiveInfinity;
            norm = s.Optimizer.ClipGradNorm(clip);
        }
        if (!double.IsFinite(l) || !double.IsFinite(norm))
        {
            s.Optimizer.ZeroGrad();
            int bad = s.BadStepsInARow + 1;
            if (bad >= s.Spec.MaxBadSteps)
                throw new NonFiniteTrainingException(
                    $"training stopped at step {s.Step}: {bad} non-finite losses or gradients in a row (last loss {l}, gradient norm {norm})");
            return new StepOutcome(s with { Step = s.Step + 1, BadStepsInARow = bad, SkippedSteps = s.SkippedSteps + 1, LastLoss = l }, l, norm, true);
        }
        s.Optimizer.Step(LearningRate.At(s.Spec, s.Step));
        s.Ema?.Update(s.Model, s.Optimizer.Steps);
        return new StepOutcome(s with { Step = s.Step + 1, BadStepsInARow = 0, LastLoss = l }, l, norm, false);
    }
}
