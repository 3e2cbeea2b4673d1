using System.Text.Json.Serialization;

namespace Nfm.Descriptions;

/// <summary>How training data are dequantised (made continuous) before the teacher sees them.</summary>
public enum Dequantisation
{
    /// <summary>Add Gaussian noise of standard deviation <see cref="TeacherSpec.NoiseSigma"/> (TarFlow's noise augmentation).</summary>
    Gaussian,
    /// <summary>Add uniform noise over one 8-bit bin of [-1, 1] (width 2/256), then the Gaussian noise if sigma &gt; 0.</summary>
    Uniform,
}

/// <summary>
/// The TarFlow teacher: an autoregressive transformer flow (METHOD.md section 1).
/// Mirrors ml-tarflow's hyper-parameters so that a checkpoint maps onto a model of this shape.
/// </summary>
/// <param name="InputShape">One data row: [D] for a vector, [C, H, W] for an image.</param>
/// <param name="TokenSize">Values per token d for a vector; patch size p for an image (d = C p^2).</param>
/// <param name="Width">Channels C of the transformer inside each block.</param>
/// <param name="Blocks">Number of flow blocks K (even blocks read tokens in order, odd ones reversed).</param>
/// <param name="LayersPerBlock">Transformer layers L inside each block.</param>
/// <param name="HeadDim">Channels per attention head; heads = Width / HeadDim.</param>
/// <param name="Expansion">MLP hidden width = Expansion * Width.</param>
/// <param name="Affine">true: affine steps (scale and shift, ml-tarflow's nvp); false: shift only (a = 0, volume preserving).</param>
/// <param name="Classes">Number of classes for class conditioning; 0 = unconditional.</param>
/// <param name="NoiseSigma">Standard deviation of the training noise augmentation (also the denoising step's sigma).</param>
/// <param name="Dequantisation">How training data are made continuous.</param>
public sealed record TeacherSpec(
    long[] InputShape,
    int TokenSize,
    int Width,
    int Blocks,
    int LayersPerBlock,
    int HeadDim = 64,
    int Expansion = 4,
    bool Affine = true,
    int Classes = 0,
    double NoiseSigma = 0.05,
    Dequantisation Dequantisation = Dequantisation.Gaussian)
{
    /// <summary>True when the input is an image [C, H, W] cut into patches.</summary>
    [JsonIgnore]
    public bool IsImage => InputShape.Length == 3;

    /// <summary>Number of tokens T.</summary>
    [JsonIgnore]
    public long Tokens => IsImage
        ? (InputShape[1] / TokenSize) * (InputShape[2] / TokenSize)
        : InputShape[0] / TokenSize;

    /// <summary>Values per token d (C p^2 for an image).</summary>
    [JsonIgnore]
    public long TokenDim => IsImage ? InputShape[0] * TokenSize * TokenSize : TokenSize;

    /// <summary>Dimension D of one data row (product of the input shape).</summary>
    [JsonIgnore]
    public long Dimension => InputShape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Attention heads per layer.</summary>
    [JsonIgnore]
    public int Heads => Width / HeadDim;

    /// <summary>True when the model carries a class embedding.</summary>
    [JsonIgnore]
    public bool IsConditional => Classes > 0;

    /// <summary>
    /// The teacher this project trains by default for data rows of <paramref name="inputShape"/>: for images
    /// ml-tarflow's MNIST shape (patches of 4, width 128, 4 blocks of 4 layers, noise 0.1, uniform dequantisation), for
    /// vectors a small deep flow (one value per token, width 64, 8 blocks of 2 layers, head width 32, noise 0.05).
    /// </summary>
    public static TeacherSpec ForData(long[] inputShape, int classes = 0, bool affine = true) =>
        (inputShape.Length == 3
            ? new TeacherSpec(inputShape, 4, 128, 4, 4, 64, 4, affine, classes, 0.1, Dequantisation.Uniform)
            : new TeacherSpec(inputShape, 1, 64, 8, 2, 32, 4, affine, classes, 0.05, Dequantisation.Gaussian)).Validate();

    /// <summary>The default training batch for rows of <paramref name="inputShape"/>: 64 images or 256 vectors.</summary>
    public static int DefaultBatch(long[] inputShape) => inputShape.Length == 3 ? 64 : 256;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first field out of its allowed range.</summary>
    public TeacherSpec Validate()
    {
        if (InputShape is null || (InputShape.Length != 1 && InputShape.Length != 3))
            throw new ArgumentException("InputShape must be [D] (vector) or [C, H, W] (image)", nameof(InputShape));
        if (InputShape.Any(s => s < 1))
            throw new ArgumentException($"InputShape entries must be >= 1, got [{string.Join(", ", InputShape)}]", nameof(InputShape));
        if (TokenSize < 1)
            throw new ArgumentException($"TokenSize must be >= 1, got {TokenSize}", nameof(TokenSize));
        if (IsImage)
        {
            if (InputShape[1] % TokenSize != 0 || InputShape[2] % TokenSize != 0)
                throw new ArgumentException(
                    $"TokenSize (patch size {TokenSize}) must divide the image size {InputShape[1]} x {InputShape[2]}", nameof(TokenSize));
        }
        else if (InputShape[0] % TokenSize != 0)
            throw new ArgumentException($"TokenSize {TokenSize} must divide the vector dimension {InputShape[0]}", nameof(TokenSize));
        if (Width < 1)
            throw new ArgumentException($"Width must be >= 1, got {Width}", nameof(Width));
        if (HeadDim < 1)
            throw new ArgumentException($"HeadDim must be >= 1, got {HeadDim}", nameof(HeadDim));
        if (Width % HeadDim != 0)
            throw new ArgumentException($"Width {Width} must be divisible by HeadDim {HeadDim}", nameof(Width));
        if (Blocks < 1)
            throw new ArgumentException($"Blocks must be >= 1, got {Blocks}", nameof(Blocks));
        if (LayersPerBlock < 0)
            throw new ArgumentException($"LayersPerBlock must be >= 0, got {LayersPerBlock}", nameof(LayersPerBlock));
        if (Expansion < 1)
            throw new ArgumentException($"Expansion must be >= 1, got {Expansion}", nameof(Expansion));
        if (Classes < 0)
            throw new ArgumentException($"Classes must be >= 0 (0 = unconditional), got {Classes}", nameof(Classes));
        if (!double.IsFinite(NoiseSigma) || NoiseSigma < 0)
            throw new ArgumentException($"NoiseSigma must be finite and >= 0, got {NoiseSigma}", nameof(NoiseSigma));
        if (!Enum.IsDefined(Dequantisation))
            throw new ArgumentException($"Dequantisation must be Gaussian or Uniform, got {Dequantisation}", nameof(Dequantisation));
        return this;
    }

    /// <summary>Value equality, the input shape compared element by element.</summary>
    public bool Equals(TeacherSpec? other) =>
        other is not null
        && InputShape.AsSpan().SequenceEqual(other.InputShape)
        && (TokenSize, Width, Blocks, LayersPerBlock, HeadDim, Expansion, Affine, Classes, NoiseSigma, Dequantisation)
           == (other.TokenSize, other.Width, other.Blocks, other.LayersPerBlock, other.HeadDim, other.Expansion, other.Affine,
               other.Classes, other.NoiseSigma, other.Dequantisation);

    /// <inheritdoc />
    public override int GetHashCode() =>
        HashCode.Combine(InputShape.Aggregate(17L, (h, s) => h * 31 + s), TokenSize, Width, Blocks, LayersPerBlock, HeadDim,
            HashCode.Combine(Expansion, Affine, Classes, NoiseSigma, Dequantisation));
}
