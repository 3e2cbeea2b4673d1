namespace Nfm.Descriptions;

/// <summary>
/// A teacher run, fully described: the model, its training (AdamW betas 0.9/0.95, cosine schedule with warm-up,
/// clipping, optional EMA), the data source, the device and the label-dropout rate of conditional models.
/// </summary>
public sealed record TeacherRunSpec(TeacherSpec Model, TrainingSpec Training, string Data, DeviceSpec Device, double LabelDropout = 0.1)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public TeacherRunSpec Validate()
    {
        Model.Validate(); Training.Validate(); Device.Validate();
        if (!(LabelDropout >= 0 && LabelDropout < 1)) throw new ArgumentException($"teacher.labelDropout must be in [0, 1), got {LabelDropout}");
        return this;
    }

    /// <summary>This run with its training in another <see cref="Precision"/> (for callers without C#'s <c>with</c>, e.g. F#).</summary>
    public TeacherRunSpec WithPrecision(Precision precision) => this with { Training = Training.WithPrecision(precision) };

    /// <summary>Training defaults for a teacher: AdamW (0.9, 0.95), cosine decay, warm-up, clip 1, no weight decay;
    /// float32 unless <paramref name="precision"/> says otherwise.</summary>
    public static TrainingSpec DefaultTraining(int steps, int batch, double lr, long seed, int saveEvery = 500, double emaDecay = 0.0,
        Precision precision = Precision.Float32) =>
        new(steps, batch, lr, WarmupSteps: Math.Min(1000, Math.Max(1, steps / 20)), Cosine: true, Beta1: 0.9, Beta2: 0.95,
            GradClip: 1.0, EmaDecay: emaDecay, Seed: seed, SaveEvery: saveEvery, Precision: precision);
}
