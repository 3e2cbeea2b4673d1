using Nfm.Descriptions;
using Nfm.Integrate;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Sampling;

/// <summary>Samples of a student: noise x0 ~ N(0, I) integrated from t = 0 to t = 1 along the network's velocity.</summary>
public static class StudentSampler
{
    /// <summary>
    /// The velocity field of a network at a shared time t, with classifier-free guidance
    /// v = v_c + w (v_c - v_u) when <paramref name="guidance"/> is non-zero (v_u uses the null label
    /// <paramref name="nullClass"/>, <see cref="Labels.Null"/> by default). Guidance 0 is plain conditional (or unconditional) velocity.
    /// </summary>
    public static VelocityField Field(nn.Module<Tensor, Tensor, Tensor?, Tensor> net, Tensor? labels = null,
        double guidance = 0.0, long nullClass = Labels.Null) => (x, t) =>
    {
        if (guidance == 0 || labels is null)
        {
            using Scalar time = t;
            using var tt = full(x.shape[0], time, dtype: x.dtype, device: x.device);
            return net.forward(x, tt, labels);
        }
        // The conditional and the unconditional passes as one call of twice the rows: one network evaluation's
        // overhead instead of two (what dominates at batch 1).
        long n = x.shape[0];
        using var xx = cat(new[] { x, x }, 0);
        using Scalar time2 = t;
        using var t2 = full(2 * n, time2, dtype: x.dtype, device: x.device);
        using var nul = full_like(labels, nullClass);
        using var yy = cat(new[] { labels, nul }, 0);
        using var v = net.forward(xx, t2, yy);
        using var vc = v.narrow(0, 0, n);
        using var vu = v.narrow(0, n, n);
        // v_c + w (v_c - v_u), the scalars held (see FixedStepMethods.Axpy).
        using var gap = FixedStepMethods.Axpy(vc, vu, -1.0);
        return FixedStepMethods.Axpy(vc, gap, guidance);
    };

    /// <summary>
    /// Rows integrated together by a fixed-step solver. Every row's path depends on that row alone, and a network pass
    /// over a few dozen rows runs far faster per row than one over thousands: the MNIST U-Net took 11.8 s for one pass
    /// over 2,000 rows, 5.3 s in passes of 128, and 1.0 to 1.4 s in passes of 64 (2 threads, AVX-512 EPYC; 32 and 16
    /// were slower again), its activations no longer fitting in cache.
    /// </summary>
    public const int ChunkRows = 64;

    /// <summary>Integrates <paramref name="x0"/> with the network's velocity under no_grad; NFE counts network passes
    /// per sample (two per solver evaluation under guidance, run as one call). Fixed-step solvers integrate image rows in
    /// chunks of <see cref="ChunkRows"/> (half that under guidance); Dopri5's step control sees the whole batch, and a kept trajectory needs it too.</summary>
    public static IntegrationResult FromNoise(nn.Module<Tensor, Tensor, Tensor?, Tensor> net, Tensor x0, SolverSpec solver,
        Tensor? labels = null, double guidance = 0.0, long nullClass = Labels.Null, bool keepTrajectory = false)
    {
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(solver);
        using var _ = no_grad();
        long n = x0.dim() > 0 ? x0.shape[0] : 0;
        IntegrationResult r;
        // Under guidance each pass holds a chunk twice (conditional and unconditional rows): half the rows per chunk.
        bool guided = guidance != 0 && labels is not null;
        long chunk = guided ? ChunkRows / 2 : ChunkRows;
        if (keepTrajectory || solver.Method == SolverMethod.Dopri5 || n <= chunk || x0.dim() < 4)
            r = Integrator.Integrate(Field(net, labels, guidance, nullClass), x0, solver, keepTrajectory);
        else
        {
            var parts = new List<Tensor>();
            IntegrationResult? last = null;
            try
            {
                for (long start = 0; start < n; start += chunk)
                {
                    long len = Math.Min(chunk, n - start);
                    using var scope = NewDisposeScope();
                    var y = labels?.narrow(0, start, len);
                    last = Integrator.Integrate(Field(net, y, guidance, nullClass), x0.narrow(0, start, len), solver, false);
                    parts.Add(last.X.MoveToOuterDisposeScope());
                }
                r = last! with { X = cat(parts, 0) };
            }
            finally
            {
                foreach (var p in parts) p.Dispose();
            }
        }
        return guided ? r with { Nfe = r.Nfe * 2 } : r;
    }

    /// <summary>Draws <paramref name="count"/> noise rows of the network's input shape with <paramref name="generator"/>
    /// and integrates them.</summary>
    public static IntegrationResult Sample(nn.Module<Tensor, Tensor, Tensor?, Tensor> net, long[] inputShape, long count,
        SolverSpec solver, Generator generator, Device device, Tensor? labels = null, double guidance = 0.0, long nullClass = Labels.Null)
    {
        using var x0 = randn(new[] { count }.Concat(inputShape).ToArray(), device: device, generator: generator);
        return FromNoise(net, x0, solver, labels, guidance, nullClass);
    }
}
