using Nfm.Descriptions;

namespace Nfm.Training;

/// <summary>Learning rate at a step: linear warm-up to the base rate, then constant or cosine decay to zero.</summary>
public static class LearningRate
{
    /// <summary>The rate for the 0-based <paramref name="step"/>.</summary>
    public static double At(TrainingSpec spec, long step)
    {
        double warm = spec.WarmupSteps > 0 ? Math.Min(1.0, (step + 1.0) / spec.WarmupSteps) : 1.0;
        if (!spec.Cosine) return spec.LearningRate * warm;
        double progress = Math.Clamp((step - spec.WarmupSteps) / (double)Math.Max(1, spec.Steps - spec.WarmupSteps), 0, 1);
        return spec.LearningRate * warm * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
