using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Training;

/// <summary>
/// What a training loop reports after each step: the step reached, the loss, whether the update was skipped (a
/// non-finite loss or gradient), the learning rate the step used, the gradient norm before clipping (NaN when the loss
/// was not finite) and the run's skipped steps so far.
/// </summary>
public readonly record struct TrainingProgress(long Step, long TotalSteps, double Loss, bool Skipped,
    double LearningRate = double.NaN, double GradNorm = double.NaN, long SkippedSteps = 0);

/// <summary>
/// The loop every trainer shares: from the state's step to the spec's step count, each step inside its own dispose
/// scope computes a loss (the trainer's part, drawing all randomness from the state's generator) and applies
/// <see cref="Optimisation.Apply"/>; it saves every <c>SaveEvery</c> steps and at the end, and stops early (saving)
/// when cancelled. Because the generator's state is checkpointed, a resumed run draws the same sequence. The state's
/// <c>TrainSeconds</c> grows by this call's wall-clock time before every save and on return, when it took a step.
/// </summary>
public static class TrainingLoop
{
    /// <summary>Runs the loop and returns the final state.</summary>
    public static TrainingState Run(TrainingState state, Func<TrainingState, Tensor> lossOfStep, Action<TrainingState>? save = null,
        Action<TrainingProgress>? progress = null, CancellationToken cancel = default)
    {
        state.Model.train();
        var spec = state.Spec;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        double before = state.TrainSeconds;
        long first = state.Step;
        // A call that takes no step (a finished run, only loaded) adds no time.
        TrainingState Timed(TrainingState s) => s.Step == first ? s : s with { TrainSeconds = before + watch.Elapsed.TotalSeconds };
        while (state.Step < spec.Steps && !cancel.IsCancellationRequested)
        {
            using (var scope = NewDisposeScope())
            {
                var loss = lossOfStep(state);
                double lr = LearningRate.At(spec, state.Step);
                var outcome = Optimisation.Apply(state, loss);
                state = outcome.State;
                progress?.Invoke(new TrainingProgress(state.Step, spec.Steps, outcome.Loss, outcome.Skipped, lr, outcome.GradNorm,
                    state.SkippedSteps));
            }
            if (save is not null && spec.SaveEvery > 0 && state.Step % spec.SaveEvery == 0 && state.Step < spec.Steps)
                save(state = Timed(state));
        }
        state = Timed(state);
        save?.Invoke(state);
        state.Model.eval();
        return state;
    }

    /// <summary>A batch of row indices in [0, n), drawn with replacement from the state's generator.</summary>
    public static Tensor BatchIndices(TrainingState state, long n, Device device) =>
        randint(0, n, new long[] { state.Spec.Batch }, dtype: int64, device: device, generator: state.Generator);
}
