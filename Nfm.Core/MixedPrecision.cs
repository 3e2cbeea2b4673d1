using Nfm.Descriptions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Nfm;

/// <summary>
/// Mixed precision written by hand (TorchSharp 0.107 has no autocast). Inside a <see cref="Scope"/> for
/// <see cref="Precision.BFloat16"/>, the matrix products of the networks (<see cref="Linear(TorchSharp.Modules.Linear, Tensor, bool)"/>,
/// <see cref="Conv2d"/>, and attention on <see cref="Low"/> inputs) cast their input and weight to bfloat16, multiply
/// there (libtorch accumulates in float32) and, unless the caller keeps the bfloat16 result for another product, cast
/// the result back to the master weights' dtype. Autograd flows through the casts, so gradients reach the float32
/// master weights in float32 and the optimiser never sees bfloat16. Everything else, LayerNorm and GroupNorm with
/// their statistics, residual sums, the flow's shifts and log-determinant, and the loss, stays in float32.
/// Outside a scope (the default, and always for encoding, likelihoods and decoding) every helper is the plain
/// float32 call of the module, so float32 training is bit for bit what it was without this class.
/// The setting is per thread, like PyTorch's autocast: two trainers on two threads do not see each other's.
/// </summary>
public static class MixedPrecision
{
    [ThreadStatic] static bool active;

    /// <summary>True inside a bfloat16 <see cref="Scope"/> on this thread.</summary>
    public static bool Active => active;

    /// <summary>The dtype the matrix products use inside a bfloat16 scope.</summary>
    public const ScalarType Compute = ScalarType.BFloat16;

    /// <summary>Runs the matrix products in <paramref name="precision"/> until disposed (scopes nest; disposing restores the outer setting).</summary>
    public static Restore Scope(Precision precision)
    {
        var outer = active;
        active = precision == Precision.BFloat16;
        return new Restore(outer);
    }

    /// <summary>Puts the setting back as it was before a <see cref="Scope"/>.</summary>
    public readonly struct Restore(bool outer) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose() => active = outer;
    }

    /// <summary><paramref name="x"/> in the compute dtype inside a bfloat16 scope (an alias when it already is); <paramref name="x"/> itself outside.</summary>
    public static Tensor Low(Tensor x) => active && x.dtype != Compute ? x.to(Compute) : x;

    /// <summary><paramref name="y"/> back in <paramref name="master"/>'s dtype (a no-op when it already is).</summary>
    static Tensor Back(Tensor y, Tensor master) => y.dtype == master.dtype ? y : y.to(master.dtype);

    /// <summary>
    /// x W^T + b of a linear layer. Outside a scope: <c>layer.call(x)</c> (hooks run). Inside: in bfloat16, the result
    /// cast back to the weight's dtype unless <paramref name="keepLow"/> (for a product that feeds another product,
    /// e.g. the queries, keys and values of attention or the hidden layer of an MLP).
    /// </summary>
    public static Tensor Linear(Linear layer, Tensor x, bool keepLow = false)
    {
        if (!active) return layer.call(x);
        return Linear(x, layer.weight!, layer.bias, keepLow);
    }

    /// <summary>x W^T + b with explicit weights (e.g. a slice of a layer's weight); see <see cref="Linear(TorchSharp.Modules.Linear, Tensor, bool)"/>.</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, bool keepLow = false)
    {
        if (!active) return nn.functional.linear(x, weight, bias);
        var y = nn.functional.linear(Low(x), Low(weight), bias is null ? null : Low(bias));
        return keepLow ? y : Back(y, weight);
    }

    /// <summary>A 2-D convolution layer: <c>layer.call(x)</c> outside a scope; inside, in bfloat16 with the result back in the weight's dtype.</summary>
    public static Tensor Conv2d(Conv2d layer, Tensor x)
    {
        if (!active) return layer.call(x);
        var w = layer.weight!;
        var b = layer.bias;
        if (layer.groups != 1 || x.dim() != 4)
            return Back(nn.functional.conv2d(Low(x), Low(w), b is null ? null : Low(b),
                strides: layer.stride, padding: layer.padding, dilation: layer.dilation, groups: layer.groups), w);
        // As a bfloat16 matrix product over the unfolded patches (im2col), not libtorch's bfloat16 convolution: on an
        // AMD EPYC with AVX-512 BF16 (libtorch 2.10) that kernel returned results 30% to 50% off the float32
        // convolution for 3 or 8 input channels (relative error 0.47 for 3 -> 8 channels, 3 x 3, stride 2), while the
        // matrix product is as close as every other bfloat16 product here.
        long n = x.shape[0], h = x.shape[2], wd = x.shape[3], cout = w.shape[0], kh = w.shape[2], kw = w.shape[3];
        long sh = layer.stride[0], sw = layer.stride.Length > 1 ? layer.stride[1] : sh;
        long ph = layer.padding[0], pw = layer.padding.Length > 1 ? layer.padding[1] : ph;
        long dh = layer.dilation[0], dw = layer.dilation.Length > 1 ? layer.dilation[1] : dh;
        long hOut = (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1, wOut = (wd + 2 * pw - dw * (kw - 1) - 1) / sw + 1;
        using var cols = nn.functional.unfold(Low(x), (kh, kw), (dh, dw), (ph, pw), (sh, sw));
        using var flat = Low(w).reshape(cout, -1);
        using var product = flat.matmul(cols);
        var y = (b is null ? product : product + Low(b).reshape(1, cout, 1)).reshape(n, cout, hOut, wOut);
        return Back(y, w);
    }

    /// <summary>
    /// Causal attention over queries, keys and values [N, heads, T, head_dim] (token t attends to 0..t), scaled by
    /// 1/sqrt(head_dim). Outside a scope: libtorch's fused scaled_dot_product_attention, as the teacher always used.
    /// Inside: the two products in bfloat16 with the scores' scale, mask and softmax in float32, the result left in
    /// bfloat16 for the output projection. Not the fused kernel in bfloat16: on this CPU (libtorch 2.10) its bfloat16
    /// path, forward and backward at the MNIST teacher's shapes [64, 2, 48, 64], took 3.7x the float32 kernel's time
    /// (293 ms against 79 ms per step on one thread), while this one took 49 ms.
    /// </summary>
    public static Tensor CausalAttention(Tensor q, Tensor k, Tensor v)
    {
        if (!active) return nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true);
        long t = q.shape[^2], s = k.shape[^2];
        var scores = matmul(Low(q), Low(k).transpose(-2, -1)).to(ScalarType.Float32) * (1.0 / Math.Sqrt(q.shape[^1]));
        // Query i (of t, aligned with the last t of s keys) sees keys 0 .. i + s - t, the lower triangle for t = s.
        using var hidden = ones(t, s, dtype: ScalarType.Bool, device: q.device).triu(s - t + 1);
        var weights = scores.masked_fill(hidden, double.NegativeInfinity).softmax(-1);
        return matmul(weights.to(Compute), Low(v));
    }

    /// <summary>
    /// Full (non-causal) attention over queries, keys and values [N, heads, T, head_dim], scaled by 1/sqrt(head_dim):
    /// the fused kernel outside a scope; inside, as <see cref="CausalAttention"/> without the mask.
    /// </summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v)
    {
        if (!active) return nn.functional.scaled_dot_product_attention(q, k, v);
        var scores = matmul(Low(q), Low(k).transpose(-2, -1)).to(ScalarType.Float32) * (1.0 / Math.Sqrt(q.shape[^1]));
        return matmul(scores.softmax(-1).to(Compute), Low(v));
    }

    /// <summary>
    /// A sequence of layers: <c>sequence.call(x)</c> outside a scope. Inside, linear layers run through
    /// <see cref="Linear(TorchSharp.Modules.Linear, Tensor, bool)"/> and the other layers (activations) as they are; hidden
    /// values stay in bfloat16 between products (an activation in bfloat16 loses nothing the next product keeps) and
    /// the last result comes back in float32.
    /// </summary>
    public static Tensor Sequential(Sequential sequence, Tensor x)
    {
        if (!active) return sequence.call(x);
        Tensor? master = null;
        var h = x;
        foreach (var m in sequence.children())
        {
            if (m is Linear linear) { h = Linear(linear, h, keepLow: true); master = linear.weight; }
            else h = ((nn.Module<Tensor, Tensor>)m).call(h);
        }
        return master is null ? h : Back(h, master);
    }
}
