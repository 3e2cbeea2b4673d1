namespace Nfm.Descriptions;

/// <summary>Nonlinearity of a network's hidden layers.</summary>
public enum Activation { Silu, Gelu, Relu, Tanh }

/// <summary>Which network computes the velocity.</summary>
public enum Architecture
{
    /// <summary>An MLP over the flattened sample (any shape; the default for vectors).</summary>
    Mlp,
    /// <summary>A small convolutional U-Net (images [C, H, W]).</summary>
    UNet,
    /// <summary>A diffusion transformer in the SiT/DiT style (images [C, H, W]): patch tokens, time and label through
    /// adaLN-Zero, no convolutions; Width = hidden size, Depth = blocks.</summary>
    Sit,
}

/// <summary>
/// The velocity network v(x, t [, c]) with a sinusoidal time embedding (and a learned class embedding when
/// <see cref="Classes"/> &gt; 0; index <c>Classes</c> is the null label). <see cref="Architecture"/> picks an MLP over the
/// flattened input or a small U-Net for images (where <see cref="Width"/> is the base channel count and
/// <see cref="Depth"/> the number of resolutions).
/// </summary>
/// <param name="InputShape">Shape of one sample without the batch axis: [D] or [C, H, W].</param>
/// <param name="Width">Hidden width.</param>
/// <param name="Depth">Number of hidden layers.</param>
/// <param name="Activation">Hidden nonlinearity.</param>
/// <param name="TimeFeatures">Size of the sinusoidal time embedding (even).</param>
/// <param name="Classes">Number of classes for conditioning, 0 = unconditional.</param>
public sealed record VelocityNetSpec(long[] InputShape, int Width = 256, int Depth = 3,
    Activation Activation = Activation.Silu, int TimeFeatures = 32, int Classes = 0, Architecture Architecture = Architecture.Mlp)
{
    /// <summary>Values per sample.</summary>
    public long Dim => InputShape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Value equality, the input shape compared value by value (a record compares an array by reference).</summary>
    public bool Equals(VelocityNetSpec? other) =>
        other is not null && (ReferenceEquals(InputShape, other.InputShape) ||
                              (InputShape is not null && other.InputShape is not null && InputShape.SequenceEqual(other.InputShape)))
        && Width == other.Width && Depth == other.Depth && Activation == other.Activation && TimeFeatures == other.TimeFeatures
        && Classes == other.Classes && Architecture == other.Architecture;

    /// <summary>A hash consistent with <see cref="Equals(VelocityNetSpec?)"/>.</summary>
    public override int GetHashCode()
    {
        var h = new HashCode();
        if (InputShape is not null) foreach (var s in InputShape) h.Add(s);
        h.Add(Width); h.Add(Depth); h.Add(Activation); h.Add(TimeFeatures); h.Add(Classes); h.Add(Architecture);
        return h.ToHashCode();
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public VelocityNetSpec Validate()
    {
        if (InputShape is null || InputShape.Length == 0 || InputShape.Any(s => s <= 0))
            throw new ArgumentException("net.inputShape must be a non-empty list of positive sizes");
        if (Width < 1 || Width > 65536) throw new ArgumentException($"net.width must be in [1, 65536], got {Width}");
        if (Depth < 1 || Depth > 64) throw new ArgumentException($"net.depth must be in [1, 64], got {Depth}");
        if (TimeFeatures < 2 || TimeFeatures % 2 != 0) throw new ArgumentException($"net.timeFeatures must be an even number >= 2, got {TimeFeatures}");
        if (Classes < 0) throw new ArgumentException($"net.classes must be >= 0, got {Classes}");
        if ((Architecture == Architecture.UNet || Architecture == Architecture.Sit) && InputShape.Length != 3)
            throw new ArgumentException($"net.architecture {Architecture.ToString().ToLowerInvariant()} needs image rows [C, H, W], got [{string.Join(", ", InputShape)}]");
        if (Architecture == Architecture.Sit && Width % Nets.VelocitySit.HeadDim != 0)
            throw new ArgumentException($"net.width of a sit student must be a multiple of its head size {Nets.VelocitySit.HeadDim}, got {Width}");
        return this;
    }
}

/// <summary>How flow-matching times t in (0, 1) are drawn during training.</summary>
public enum TimeSampling { Uniform, LogitNormal }

/// <summary>
/// The probability path: linear interpolation x_t = (1 - t) x0 + t x1 with target velocity x1 - x0
/// (t = 0 noise, t = 1 data); times uniform or logit-normal(mean, std), i.e. t = sigmoid(mean + std * n).
/// </summary>
public sealed record PathSpec(TimeSampling Sampling = TimeSampling.Uniform, double LogitMean = 0.0, double LogitStd = 1.0)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public PathSpec Validate()
    {
        if (!double.IsFinite(LogitMean)) throw new ArgumentException("path.logitMean must be finite");
        if (!(LogitStd > 0) || !double.IsFinite(LogitStd)) throw new ArgumentException($"path.logitStd must be > 0, got {LogitStd}");
        return this;
    }
}

/// <summary>
/// How a network is trained: AdamW (betas, weight decay), learning rate with linear warm-up then constant or cosine decay,
/// batch size, steps, gradient clipping by global norm (0 = off), EMA decay (0 = off), seed, checkpoint cadence and the
/// arithmetic of a step (<see cref="Descriptions.Precision"/>; a description saved without it reads as float32).
/// </summary>
public sealed record TrainingSpec(int Steps = 1000, int Batch = 256, double LearningRate = 1e-3, int WarmupSteps = 0,
    bool Cosine = false, double WeightDecay = 0.0, double Beta1 = 0.9, double Beta2 = 0.999, double GradClip = 1.0,
    double EmaDecay = 0.999, long Seed = 0, int SaveEvery = 0, int MaxBadSteps = 10, Precision Precision = Precision.Float32)
{
    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid field.</summary>
    public TrainingSpec Validate()
    {
        if (Steps < 1) throw new ArgumentException($"training.steps must be >= 1, got {Steps}");
        if (Batch < 1) throw new ArgumentException($"training.batch must be >= 1, got {Batch}");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentException($"training.learningRate must be > 0, got {LearningRate}");
        if (WarmupSteps < 0) throw new ArgumentException($"training.warmupSteps must be >= 0, got {WarmupSteps}");
        if (WeightDecay < 0) throw new ArgumentException($"training.weightDecay must be >= 0, got {WeightDecay}");
        if (!(Beta1 >= 0 && Beta1 < 1) || !(Beta2 >= 0 && Beta2 < 1)) throw new ArgumentException("training.beta1 and beta2 must be in [0, 1)");
        if (GradClip < 0) throw new ArgumentException($"training.gradClip must be >= 0 (0 = off), got {GradClip}");
        if (!(EmaDecay >= 0 && EmaDecay < 1)) throw new ArgumentException($"training.emaDecay must be in [0, 1), got {EmaDecay}");
        if (SaveEvery < 0) throw new ArgumentException($"training.saveEvery must be >= 0 (0 = only at the end), got {SaveEvery}");
        if (MaxBadSteps < 1) throw new ArgumentException($"training.maxBadSteps must be >= 1, got {MaxBadSteps}");
        if (!Enum.IsDefined(Precision)) throw new ArgumentException($"training.precision must be {Precisions.Names}, got {(int)Precision}");
        return this;
    }

    /// <summary>This spec with another <see cref="Precision"/> (for callers without C#'s <c>with</c>, e.g. F#).</summary>
    public TrainingSpec WithPrecision(Precision precision) => this with { Precision = precision };
}

/// <summary>Where tensors live: <c>cpu</c> (default) or <c>cuda</c> / <c>cuda:N</c> (needs the CUDA native package).</summary>
public sealed record DeviceSpec(string Name = "cpu")
{
    /// <summary>Throws <see cref="ArgumentException"/> on a name other than cpu, cuda or cuda:N.</summary>
    public DeviceSpec Validate()
    {
        var n = Name.Trim().ToLowerInvariant();
        if (n == "cpu" || n == "cuda" || (n.StartsWith("cuda:") && int.TryParse(n[5..], out var i) && i >= 0)) return this;
        throw new ArgumentException($"device must be cpu, cuda or cuda:N, got '{Name}'");
    }

}
