using TorchSharp;
using TorchSharp.Modules;

namespace Nfm.Training;

/// <summary>
/// TensorBoard scalars and images for a run, through TorchSharp's own <c>SummaryWriter</c> (event files that
/// <c>tensorboard --logdir DIR</c> reads). Tags are prefixed with the run's name, so several trainings (the teacher and
/// each student of a comparison) share one folder and show as separate groups. Every event is appended and flushed
/// when it is written, so an interrupted run keeps what it logged.
/// </summary>
public sealed class TensorBoardLog
{
    private readonly SummaryWriter writer;
    private readonly object gate = new();

    /// <summary>Opens (creating) <paramref name="logDir"/> and a new event file in it.</summary>
    public TensorBoardLog(string logDir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(logDir);
        var parent = Path.GetDirectoryName(Path.GetFullPath(logDir));
        if (parent is not null && !Directory.Exists(parent))
            throw new ArgumentException($"cannot create the log folder '{logDir}': folder '{parent}' does not exist");
        writer = torch.utils.tensorboard.SummaryWriter(logDir);
        LogDir = writer.LogDir;
    }

    /// <summary>The folder the event files are written to.</summary>
    public string LogDir { get; }

    // TorchSharp writes the wall time as given: seconds since the Unix epoch is what TensorBoard expects.
    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>One scalar at a step (non-finite values are written as they are; TensorBoard shows them as gaps).</summary>
    public void Scalar(string tag, double value, long step)
    {
        lock (gate) writer.add_scalar(tag, (float)value, checked((int)step), Now());
    }

    /// <summary>A PNG file (e.g. a sample grid) as an image at a step.</summary>
    public void Image(string tag, string pngPath, long step)
    {
        if (!File.Exists(pngPath)) throw new FileNotFoundException($"image '{pngPath}' not found", pngPath);
        lock (gate) writer.add_img(tag, pngPath, checked((int)step), Now());
    }

    /// <summary>
    /// A progress callback for <see cref="TrainingLoop.Run"/> that logs <c>NAME/loss</c>, <c>NAME/learning_rate</c>,
    /// <c>NAME/grad_norm</c> and <c>NAME/skipped_steps</c> at every step.
    /// </summary>
    public Action<TrainingProgress> Training(string name)
    {
        // Tags made once: the callback runs at every step.
        string loss = $"{name}/loss", lr = $"{name}/learning_rate", norm = $"{name}/grad_norm", skipped = $"{name}/skipped_steps";
        return p =>
        {
            Scalar(loss, p.Loss, p.Step);
            Scalar(lr, p.LearningRate, p.Step);
            Scalar(norm, p.GradNorm, p.Step);
            Scalar(skipped, p.SkippedSteps, p.Step);
        };
    }
}
