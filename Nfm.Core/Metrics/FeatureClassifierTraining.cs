using Nfm.Data;
using Nfm.Training;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Nfm.Metrics;

/// <summary>
/// Training of the FD-MNIST feature classifier (on <see cref="TrainingLoop"/>): cross-entropy on batches drawn with
/// replacement, each digit shifted by whole pixels. Batches and shifts come from the run's generator and the weights
/// from its seed, so one spec always gives the same classifier on the same machine and libtorch build.
/// </summary>
public static class FeatureClassifierTraining
{
    /// <summary>Trains a fresh classifier for <paramref name="spec"/> on <paramref name="train"/> (MNIST digits with labels); returns it in eval mode.</summary>
    /// <exception cref="ArgumentException">No labels, no rows, rows that are not 28 x 28 digits, or labels outside 0..9.</exception>
    public static FeatureClassifier Run(FeatureClassifierSpec spec, Dataset train, Action<TrainingProgress>? progress = null,
        CancellationToken cancel = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(train);
        if (train.Labels is null) throw new ArgumentException($"training needs labels; the data set '{train.Name}' has none", nameof(train));
        if (train.Count == 0) throw new ArgumentException($"the data set '{train.Name}' has no rows", nameof(train));
        var images = FeatureClassifier.AsImages(train.X);
        long lo = train.Labels.min().item<long>(), hi = train.Labels.max().item<long>();
        if (lo < 0 || hi >= FeatureClassifierSpec.Classes)
            throw new ArgumentException($"labels must be in [0, {FeatureClassifierSpec.Classes - 1}], got [{lo}, {hi}]", nameof(train));

        var classifier = FeatureClassifier.Create(spec);
        var device = spec.Device.ToDevice();
        using var x = images.to(ScalarType.Float32).to(device);
        using var y = train.Labels.to(device);
        long n = train.Count;
        var net = classifier.Net;
        Tensor LossOfStep(TrainingState s)
        {
            var idx = TrainingLoop.BatchIndices(s, n, device);
            var batch = Shift(x.index_select(0, idx), spec.MaxShift, s.Generator);
            return functional.cross_entropy(net.forward(batch), y.index_select(0, idx));
        }
        TrainingLoop.Run(TrainingState.Start(net, spec.Training, device), LossOfStep, null, progress, cancel);
        net.eval();
        return classifier;
    }

    /// <summary>
    /// Each digit of <paramref name="x"/> [N, 1, H, W] (background -1) moved by whole pixels, independently per axis and
    /// row, in [-<paramref name="maxShift"/>, <paramref name="maxShift"/>]; pixels moved in are background.
    /// </summary>
    public static Tensor Shift(Tensor x, int maxShift, Generator generator)
    {
        if (maxShift == 0) return x.alias();
        using var scope = NewDisposeScope();
        long n = x.shape[0], h = x.shape[2], w = x.shape[3];
        var shifts = randint(-maxShift, maxShift + 1, [n, 2], dtype: x.dtype, device: x.device, generator: generator);
        // Affine grids work in [-1, 1] coordinates: one pixel is 2 / size. Nearest sampling at whole-pixel offsets copies pixels exactly.
        var theta = zeros(n, 2, 3, dtype: x.dtype, device: x.device);
        theta[.., 0, 0] = tensor(1.0, x.dtype, x.device);
        theta[.., 1, 1] = tensor(1.0, x.dtype, x.device);
        theta[.., 0, 2] = shifts[.., 0] * (2.0 / w);
        theta[.., 1, 2] = shifts[.., 1] * (2.0 / h);
        var grid = functional.affine_grid(theta, [n, 1, h, w], align_corners: false);
        // Zero padding: sample x + 1 (background 0) and shift back.
        var moved = functional.grid_sample(x + 1, grid, GridSampleMode.Nearest, GridSamplePaddingMode.Zeros, align_corners: false) - 1;
        return moved.MoveToOuterDisposeScope();
    }
}
