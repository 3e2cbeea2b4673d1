using System.Text.Json.Serialization;

namespace Nfm.Descriptions;

/// <summary>
/// The arithmetic of a training step. <see cref="Float32"/> computes everything in float32. <see cref="BFloat16"/> is
/// mixed precision: the matrix products (linear layers, attention, convolutions) run in bfloat16 on float32 master
/// weights; norms, their statistics, the log-determinant, the loss, the gradients' reduction and the optimiser stay
/// float32 (see <c>Nfm.MixedPrecision</c>). Only training steps are affected: encoding, likelihoods, sampling and
/// decoding always run in the model's own dtype.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<Precision>))]
public enum Precision
{
    /// <summary>float32 throughout (the default; a description written before this setting existed reads as this).</summary>
    [JsonStringEnumMemberName("float32")] Float32,
    /// <summary>bfloat16 matrix products on float32 master weights (mixed precision).</summary>
    [JsonStringEnumMemberName("bfloat16")] BFloat16,
}

/// <summary>The CLI's spelling of <see cref="Precision"/>.</summary>
public static class Precisions
{
    /// <summary>The accepted names, as a user types them.</summary>
    public const string Names = "float32, bfloat16";

    /// <summary>"float32" or "bfloat16" (also fp32, bf16; any case); throws <see cref="ArgumentException"/> naming the value otherwise.</summary>
    public static Precision Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" => Precision.Float32,
        "bfloat16" or "bf16" => Precision.BFloat16,
        _ => throw new ArgumentException($"unknown precision '{name}'; valid: {Names}"),
    };

    /// <summary>The name <see cref="Parse"/> reads back.</summary>
    public static string Name(this Precision p) => p switch
    {
        Precision.Float32 => "float32",
        Precision.BFloat16 => "bfloat16",
        _ => throw new ArgumentException($"unknown precision {(int)p}"),
    };
}
