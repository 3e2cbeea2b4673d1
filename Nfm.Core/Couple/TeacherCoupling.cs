using Nfm.Invert;
using TorchSharp;
using static TorchSharp.torch;

namespace Nfm.Couple;

/// <summary>
/// The NFM coupling: the frozen teacher's own bijection pairs each data point with its noise,
/// x0 = f(x1 + eta eps) / sigma_f, where f is the teacher's data-to-noise map (encode) and sigma_f^2 = E[f(x~)^2]
/// (one scalar over all values, estimated once over the training data). eta = 0 makes the pairing deterministic.
/// </summary>
public static class TeacherCoupling
{
    /// <summary>Rows encoded per pass when estimating sigma_f or precomputing pairs.</summary>
    public const int EncodeBatch = 256;

    /// <summary>x~ = x1 + eta eps, encoded and divided by sigma_f, under no_grad; labels go to a conditional teacher.</summary>
    public static Tensor Encode(TeacherModel teacher, Tensor x1, Tensor? labels, double eta, double sigmaF, Generator generator)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var xt = eta > 0 ? x1 + eta * randn(x1.shape, dtype: x1.dtype, device: x1.device, generator: generator) : x1;
        var (z, _) = Teacher.Encode(teacher, xt, teacher.Spec.IsConditional ? labels : null);
        return (z / sigmaF).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// sigma_f = sqrt(E[f(x1 + eta eps)^2]) over every value of every row of <paramref name="data"/> (one noise draw per row).
    /// </summary>
    public static double EstimateScale(TeacherModel teacher, Tensor data, Tensor? labels, double eta, Generator generator)
    {
        CheckEta(eta);
        double sum = 0; long count = 0;
        for (long start = 0; start < data.shape[0]; start += EncodeBatch)
        {
            using var scope = NewDisposeScope();
            long len = Math.Min(EncodeBatch, data.shape[0] - start);
            var z = Encode(teacher, data.narrow(0, start, len), labels?.narrow(0, start, len), eta, 1.0, generator);
            sum += z.to(ScalarType.Float64).square().sum().item<double>();
            count += z.numel();
        }
        if (count == 0) throw new ArgumentException("cannot estimate sigma_f on empty data");
        var s = Math.Sqrt(sum / count);
        if (!(s > 0) || !double.IsFinite(s)) throw new InvalidDataException($"the teacher's encodings have a non-finite or zero scale ({s})");
        return s;
    }

    /// <summary>The coupling encoding each batch on the fly.</summary>
    public static Coupling OnTheFly(TeacherModel teacher, double sigmaF, double eta)
    {
        CheckEta(eta);
        if (!(sigmaF > 0) || !double.IsFinite(sigmaF)) throw new ArgumentException($"sigma_f must be > 0, got {sigmaF}");
        return (batch, g) => new CoupledBatch(Encode(teacher, batch.X1, batch.Labels, eta, sigmaF, g), batch.X1, batch.Labels);
    }

    internal static void CheckEta(double eta)
    {
        if (!(eta >= 0) || !double.IsFinite(eta)) throw new ArgumentException($"eta must be finite and >= 0, got {eta}");
    }
}
