namespace Nfm.Descriptions;

/// <summary>
/// A student run, fully described: network, path, training, the coupling (written in JSON in the CLI's spelling, e.g.
/// <c>ot</c> or <c>teacher:PAIRS</c>), the data source, the device, and the label-dropout rate for class-conditional
/// students.
/// </summary>
public sealed record StudentSpec(VelocityNetSpec Net, PathSpec Path, TrainingSpec Training,
    [property: System.Text.Json.Serialization.JsonConverter(typeof(CouplingSpecTextConverter))] CouplingSpec Coupling, string Data,
    DeviceSpec Device, double LabelDropout = 0.1)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public StudentSpec Validate()
    {
        Net.Validate(); Path.Validate(); Training.Validate(); Device.Validate();
        if (Coupling is null) throw new ArgumentException("student.coupling must be given");
        Coupling.Validate();
        if (!(LabelDropout >= 0 && LabelDropout < 1)) throw new ArgumentException($"student.labelDropout must be in [0, 1), got {LabelDropout}");
        return this;
    }

    /// <summary>This spec with its training in another <see cref="Descriptions.Precision"/> (for callers without C#'s <c>with</c>, e.g. F#).</summary>
    public StudentSpec WithPrecision(Precision precision) => this with { Training = Training.WithPrecision(precision) };
}
