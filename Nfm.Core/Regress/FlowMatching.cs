using Nfm.Couple;
using Nfm.Descriptions;
using TorchSharp;
using static TorchSharp.torch;
using Nfm.Training;

namespace Nfm.Regress;

/// <summary>
/// The flow-matching regression: mean over rows and values of ||v(x_t, t [, c]) - (x1 - x0)||^2 on the linear path.
/// </summary>
public static class FlowMatching
{
    /// <summary>The loss on one coupled batch; times are drawn with <paramref name="generator"/>. With
    /// <paramref name="labelDropout"/> &gt; 0 and labels present, that fraction of labels becomes the null class
    /// <paramref name="nullClass"/> (classifier-free guidance training). With <paramref name="precision"/> bfloat16 the
    /// network's matrix products run in bfloat16 (<see cref="MixedPrecision"/>: only the network, not the coupling,
    /// which ran before); its velocity and the loss are float32 either way.</summary>
    public static Tensor Loss(nn.Module<Tensor, Tensor, Tensor?, Tensor> net, CoupledBatch pairs, PathSpec path,
        Generator generator, double labelDropout = 0.0, long nullClass = 0, Precision precision = Precision.Float32)
    {
        var x1 = pairs.X1;
        using var t = ProbabilityPath.SampleTimes(path, x1.shape[0], generator, x1.device, x1.dtype);
        var ps = ProbabilityPath.Sample(pairs.X0, x1, t);
        using var labels = DropLabels(pairs.Labels, labelDropout, nullClass, generator);
        Tensor v;
        using (MixedPrecision.Scope(precision)) v = net.forward(ps.Xt, t, labels);
        using var _ = v;
        var loss = nn.functional.mse_loss(v, ps.Ut);
        ps.Xt.Dispose(); ps.Ut.Dispose();
        return loss;
    }

    /// <summary>One training step (in the state's <see cref="TrainingSpec.Precision"/>): the loss on the batch, then <see cref="Optimisation.Apply"/>.</summary>
    public static StepOutcome TrainStep(TrainingState state, CoupledBatch pairs, PathSpec path, double labelDropout = 0.0, long nullClass = 0)
    {
        var net = (nn.Module<Tensor, Tensor, Tensor?, Tensor>)state.Model;
        using var loss = Loss(net, pairs, path, state.Generator, labelDropout, nullClass, state.Spec.Precision);
        return Optimisation.Apply(state, loss);
    }

    /// <summary>Replaces each label by <paramref name="nullClass"/> with probability <paramref name="p"/>.</summary>
    public static Tensor? DropLabels(Tensor? labels, double p, long nullClass, Generator generator)
    {
        if (labels is null) return null;
        if (p <= 0) return labels.alias();
        using var u = rand(labels.shape[0], device: labels.device, generator: generator);
        using var drop = u.lt(p);
        using var nul = full_like(labels, nullClass);
        return where(drop, nul, labels);
    }
}
