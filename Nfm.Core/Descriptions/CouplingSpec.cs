using System.Globalization;
using System.Text.Json.Serialization;

namespace Nfm.Descriptions;

/// <summary>How a Sinkhorn plan becomes one-to-one pairs.</summary>
public enum SinkhornPairing
{
    /// <summary>The permutation that collects the most plan mass (see <c>Nfm.Couple.Sinkhorn.Round</c>); deterministic.</summary>
    Round,
    /// <summary>A random permutation drawn from the plan without replacement (see <c>Nfm.Couple.Sinkhorn.Sample</c>).</summary>
    Sample,
}


/// <summary>The kinds of coupling between noise and data.</summary>
public enum CouplingKind
{
    /// <summary>Noise drawn apart from the data.</summary>
    Independent,
    /// <summary>Minibatch exact optimal transport (squared Euclidean cost).</summary>
    Ot,
    /// <summary>Minibatch entropic optimal transport.</summary>
    Sinkhorn,
    /// <summary>The teacher's own bijection (NFM): precomputed pairs, or a teacher checkpoint encoding on the fly.</summary>
    Teacher,
    /// <summary>Pairs (x0, ODE(x0)) from an already trained student (rectified flow).</summary>
    Reflow,
    /// <summary>A coupling written as code (F# combinators, a custom function), recorded by its name only.</summary>
    Custom,
}

/// <summary>
/// Which coupling a student trains on. Only the fields of its <see cref="Kind"/> are set, the others are null:
/// <list type="bullet">
/// <item><c>independent</c>, <c>ot</c>: no fields.</item>
/// <item><c>sinkhorn</c>: <c>Epsilon</c> (relative to the mean cost, see <see cref="SinkhornOptions"/>) and
/// <c>Pairing</c> (null means <see cref="SinkhornPairing.Sample"/>).</item>
/// <item><c>teacher</c>: either <c>PairsPath</c> (pairs written by <c>nfm couple</c>) or <c>TeacherPath</c> (a .ckpt
/// encoded on the fly, with optional <c>Eta</c>; null means the default of whoever builds the coupling).</item>
/// <item><c>reflow</c>: <c>StudentPath</c> (a .ckpt).</item>
/// <item><c>custom</c>: <c>Name</c>, what the code that builds the coupling calls it (it cannot be rebuilt from the
/// description).</item>
/// </list>
/// In JSON the unset fields are left out. The command line writes it as <c>independent | ot | sinkhorn:EPS[:round|:sample] | teacher:PAIRS |
/// teacher:T.ckpt[,eta=E] | reflow:S.ckpt</c> (<see cref="Parse"/>, <see cref="Format"/>).
/// </summary>
public sealed record CouplingSpec(
    CouplingKind Kind,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Epsilon = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] SinkhornPairing? Pairing = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? PairsPath = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? TeacherPath = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] double? Eta = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? StudentPath = null,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Name = null)
{
    /// <summary>A coupling written as code, recorded by its name.</summary>
    public static CouplingSpec Custom(string name) => new CouplingSpec(CouplingKind.Custom, Name: name).Validate();

    /// <summary>The description of a coupling a caller names: its command-line form when <paramref name="text"/> is
    /// one (<c>ot</c>, <c>teacher:PAIRS</c>, ...), else a <see cref="Custom"/> coupling of that name.</summary>
    public static CouplingSpec Named(string text)
    {
        try { return Parse(text); }
        catch (ArgumentException) { return Custom(text); }
    }

    /// <summary>Independent noise.</summary>
    public static CouplingSpec Independent { get; } = new(CouplingKind.Independent);

    /// <summary>Minibatch exact OT.</summary>
    public static CouplingSpec Ot { get; } = new(CouplingKind.Ot);

    /// <summary>Minibatch entropic OT.</summary>
    public static CouplingSpec Sinkhorn(double epsilon, SinkhornPairing pairing = SinkhornPairing.Sample) =>
        new CouplingSpec(CouplingKind.Sinkhorn, Epsilon: epsilon, Pairing: pairing).Validate();

    /// <summary>NFM pairs precomputed by <c>nfm couple</c>.</summary>
    public static CouplingSpec TeacherPairs(string pairsPath) =>
        new CouplingSpec(CouplingKind.Teacher, PairsPath: pairsPath).Validate();

    /// <summary>NFM pairs computed on the fly by a teacher checkpoint, with data noise <paramref name="eta"/>.</summary>
    public static CouplingSpec TeacherOnTheFly(string teacherPath, double? eta = null) =>
        new CouplingSpec(CouplingKind.Teacher, TeacherPath: teacherPath, Eta: eta).Validate();

    /// <summary>Reflow pairs from a student checkpoint.</summary>
    public static CouplingSpec Reflow(string studentPath) =>
        new CouplingSpec(CouplingKind.Reflow, StudentPath: studentPath).Validate();

    const string EtaMark = ",eta=";

    /// <summary>Throws <see cref="ArgumentException"/> naming the field and what it allows; returns this when valid.</summary>
    public CouplingSpec Validate()
    {
        static void Absent(object? value, string name, CouplingKind kind)
        {
            if (value is not null)
                throw new ArgumentException($"{name} must be null for a coupling of kind {kind}, got {value}", name);
        }
        static void NonEmpty(string? path, string name)
        {
            if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException($"{name} must be a non-empty path", name);
        }
        static bool IsCkpt(string path) => path.EndsWith(".ckpt", StringComparison.OrdinalIgnoreCase);

        if (!Enum.IsDefined(Kind))
            throw new ArgumentException($"Kind must be one of independent, ot, sinkhorn, teacher, reflow; got {(int)Kind}", nameof(Kind));
        if (Kind != CouplingKind.Sinkhorn) { Absent(Epsilon, nameof(Epsilon), Kind); Absent(Pairing, nameof(Pairing), Kind); }
        if (Kind != CouplingKind.Teacher) { Absent(PairsPath, nameof(PairsPath), Kind); Absent(TeacherPath, nameof(TeacherPath), Kind); Absent(Eta, nameof(Eta), Kind); }
        if (Kind != CouplingKind.Reflow) Absent(StudentPath, nameof(StudentPath), Kind);
        switch (Kind)
        {
            case CouplingKind.Sinkhorn:
                if (Epsilon is not { } eps || !(eps > 0) || !double.IsFinite(eps))
                    throw new ArgumentException($"Epsilon must be a finite number > 0 for sinkhorn, got {Epsilon?.ToString() ?? "null"}", nameof(Epsilon));
                if (Pairing is { } p && !Enum.IsDefined(p))
                    throw new ArgumentException($"Pairing must be round or sample, got {(int)p}", nameof(Pairing));
                break;
            case CouplingKind.Teacher:
                if ((PairsPath is null) == (TeacherPath is null))
                    throw new ArgumentException("a teacher coupling needs exactly one of PairsPath (precomputed pairs) and TeacherPath (a .ckpt)", nameof(PairsPath));
                if (PairsPath is not null)
                {
                    NonEmpty(PairsPath, nameof(PairsPath));
                    if (IsCkpt(PairsPath)) throw new ArgumentException($"PairsPath must not be a .ckpt (use TeacherPath), got {PairsPath}", nameof(PairsPath));
                    Absent(Eta, nameof(Eta), Kind);
                }
                else
                {
                    NonEmpty(TeacherPath, nameof(TeacherPath));
                    if (!IsCkpt(TeacherPath!)) throw new ArgumentException($"TeacherPath must end in .ckpt, got {TeacherPath}", nameof(TeacherPath));
                    if (TeacherPath!.Contains(EtaMark, StringComparison.Ordinal))
                        throw new ArgumentException($"TeacherPath must not contain '{EtaMark}', got {TeacherPath}", nameof(TeacherPath));
                    if (Eta is { } e && (!(e >= 0) || !double.IsFinite(e)))
                        throw new ArgumentException($"Eta must be a finite number >= 0, got {e}", nameof(Eta));
                }
                break;
            case CouplingKind.Custom:
                NonEmpty(Name, nameof(Name));
                break;
            case CouplingKind.Reflow:
                NonEmpty(StudentPath, nameof(StudentPath));
                if (!IsCkpt(StudentPath!)) throw new ArgumentException($"StudentPath must end in .ckpt, got {StudentPath}", nameof(StudentPath));
                break;
        }
        return this;
    }

    /// <summary>
    /// Read the command-line form (kind names are case-insensitive). <c>teacher:X</c> is an on-the-fly teacher when X
    /// ends in .ckpt and a pairs path otherwise. Throws <see cref="ArgumentException"/> naming what is wrong.
    /// </summary>
    public static CouplingSpec Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        const string Expected = "expected independent | ot | sinkhorn:EPS[:round|:sample] | teacher:PAIRS | teacher:T.ckpt[,eta=E] | reflow:S.ckpt";
        var s = text.Trim();
        int colon = s.IndexOf(':');
        var head = (colon < 0 ? s : s[..colon]).ToLowerInvariant();
        var rest = colon < 0 ? null : s[(colon + 1)..];
        static double Number(string v, string what)
        {
            if (!double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var x))
                throw new ArgumentException($"{what} must be a number, got '{v}'", "text");
            return x;
        }
        CouplingSpec spec = (head, rest) switch
        {
            ("independent", null) => Independent,
            ("ot", null) => Ot,
            ("sinkhorn", { } r) => r.Split(':') switch
            {
                [var e] => new CouplingSpec(CouplingKind.Sinkhorn, Epsilon: Number(e, "sinkhorn epsilon"), Pairing: SinkhornPairing.Sample),
                [var e, var p] => new CouplingSpec(CouplingKind.Sinkhorn, Epsilon: Number(e, "sinkhorn epsilon"),
                    Pairing: p.ToLowerInvariant() switch
                    {
                        "round" => SinkhornPairing.Round,
                        "sample" => SinkhornPairing.Sample,
                        _ => throw new ArgumentException($"sinkhorn pairing must be round or sample, got '{p}'", nameof(text)),
                    }),
                _ => throw new ArgumentException($"'{text}': {Expected}", nameof(text)),
            },
            ("teacher", { } r) => r.LastIndexOf(EtaMark, StringComparison.Ordinal) is var at and >= 0
                ? new CouplingSpec(CouplingKind.Teacher, TeacherPath: r[..at], Eta: Number(r[(at + EtaMark.Length)..], "teacher eta"))
                : r.EndsWith(".ckpt", StringComparison.OrdinalIgnoreCase)
                    ? new CouplingSpec(CouplingKind.Teacher, TeacherPath: r)
                    : new CouplingSpec(CouplingKind.Teacher, PairsPath: r),
            ("reflow", { } r) => new CouplingSpec(CouplingKind.Reflow, StudentPath: r),
            ("custom", { } r) => new CouplingSpec(CouplingKind.Custom, Name: r),
            _ => throw new ArgumentException($"'{text}': {Expected}", nameof(text)),
        };
        return spec.Validate();
    }

    /// <summary>The command-line form; <c>Parse(spec.Format())</c> gives back an equal spec (a null pairing reads back as sample).</summary>
    public string Format()
    {
        string N(double x) => x.ToString("R", CultureInfo.InvariantCulture);
        return Kind switch
        {
            CouplingKind.Independent => "independent",
            CouplingKind.Ot => "ot",
            CouplingKind.Sinkhorn => $"sinkhorn:{N(Epsilon ?? double.NaN)}:{(Pairing == SinkhornPairing.Round ? "round" : "sample")}",
            CouplingKind.Teacher when PairsPath is not null => $"teacher:{PairsPath}",
            CouplingKind.Teacher => Eta is { } e ? $"teacher:{TeacherPath}{EtaMark}{N(e)}" : $"teacher:{TeacherPath}",
            CouplingKind.Reflow => $"reflow:{StudentPath}",
            CouplingKind.Custom => $"custom:{Name}",
            _ => Kind.ToString(),
        };
    }
}

/// <summary>
/// Writes a <see cref="CouplingSpec"/> as its command-line form (<see cref="CouplingSpec.Format"/>) and reads that form
/// back (<see cref="CouplingSpec.Named"/>), so a student's description keeps the JSON it always had.
/// </summary>
public sealed class CouplingSpecTextConverter : JsonConverter<CouplingSpec>
{
    /// <inheritdoc />
    public override CouplingSpec Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options) =>
        reader.TokenType == System.Text.Json.JsonTokenType.String
            ? CouplingSpec.Named(reader.GetString()!)
            : throw new System.Text.Json.JsonException("a coupling must be written as its command-line form, e.g. \"ot\"");

    /// <inheritdoc />
    public override void Write(System.Text.Json.Utf8JsonWriter writer, CouplingSpec value, System.Text.Json.JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Format());
}
