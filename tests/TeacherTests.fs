module Nfm.Tests.TeacherTests

open System
open Expecto
open TorchSharp
open Nfm.Descriptions
open Nfm.Invert

/// A vector spec (D = 8 in 4 tokens of 2) with the given width, blocks, classes and affine flag.
let private vector (width: int) (blocks: int) (classes: int) (affine: bool) =
    TeacherSpec([| 8L |], 2, width, blocks, 2, HeadDim = 4, Classes = classes, Affine = affine)
let private vectorSpec = vector 8 2 3 true
let private imageSpec = TeacherSpec([| 3L; 8L; 4L |], 2, 8, 2, 1, HeadDim = 4)

/// Expects an ArgumentException whose parameter name is the field.
let private expectField (field: string) (f: unit -> objnull) =
    let e = Expect.throwsC (f >> ignore) id
    match e with
    | :? ArgumentException as a -> Expect.equal a.ParamName field $"parameter name in: {a.Message}"
    | other -> failtestf "expected ArgumentException naming %s, got %O" field other

let private shape (t: torch.Tensor) = t.shape |> List.ofArray

[<Tests>]
let tests =
    testList "teacher" [
        testList "spec" [
            test "derived sizes of a vector spec" {
                Expect.equal (vectorSpec.Tokens, vectorSpec.TokenDim, vectorSpec.Dimension, vectorSpec.Heads) (4L, 2L, 8L, 2) "T, d, D, heads"
            }
            test "derived sizes of an image spec" {
                Expect.equal (imageSpec.Tokens, imageSpec.TokenDim, imageSpec.Dimension) (8L, 12L, 96L) "T = 4*2, d = 3*2*2, D = 3*8*4"
            }
            test "validation names the field" {
                expectField "TokenSize" (fun () -> box (TeacherSpec([| 3L; 8L; 4L |], 3, 8, 2, 1, HeadDim = 4).Validate()))
                expectField "TokenSize" (fun () -> box (TeacherSpec([| 8L |], 3, 8, 2, 1, HeadDim = 4).Validate()))
                expectField "Width" (fun () -> box ((vector 6 2 0 true).Validate()))
                expectField "Blocks" (fun () -> box ((vector 8 0 0 true).Validate()))
                expectField "Classes" (fun () -> box ((vector 8 2 -1 true).Validate()))
                expectField "InputShape" (fun () -> box (TeacherSpec([| 2L; 2L |], 1, 8, 2, 1, HeadDim = 4).Validate()))
                expectField "NoiseSigma" (fun () -> box (TeacherSpec([| 8L |], 2, 8, 2, 1, HeadDim = 4, NoiseSigma = -1.0).Validate()))
            }
            test "JSON round trip keeps the spec" {
                let json = Json.Write imageSpec
                Expect.equal (Json.Read<TeacherSpec> json) imageSpec "same spec"
                Expect.isFalse (json.Contains "tokenDim") "derived sizes are not written"
                Expect.stringContains json "\"dequantisation\": \"gaussian\"" "enums as camelCase strings"
            }
        ]
        testList "patches" [
            test "patchify matches an unfold with stride p and round-trips" {
                let x = torch.randn([| 2L; 3L; 8L; 4L |], generator = new torch.Generator(1UL))
                let tokens = Patches.Patchify(x, 2L)
                let unfolded = torch.nn.functional.unfold(x, 2L, stride = 2L).transpose(1, 2)
                Expect.equal (shape tokens) [ 2L; 8L; 12L ] "[N, T, C p^2]"
                Expect.isTrue (tokens.allclose(unfolded, 0.0, 0.0)) "same layout as unfold"
                Expect.isTrue ((Patches.Unpatchify(tokens, 3L, 8L, 4L, 2L)).allclose(x, 0.0, 0.0)) "unpatchify inverts"
            }
            test "patchify rejects a patch that does not divide the image" {
                Expect.throwsT<ArgumentException> (fun () -> Patches.Patchify(torch.zeros(1L, 1L, 5L, 4L), 2L) |> ignore) "5 % 2"
            }
        ]
        testList "model" [
            test "state_dict keys and shapes mirror ml-tarflow" {
                use model = new TeacherModel(vectorSpec, new torch.Generator(0UL))
                let sd = model.state_dict()
                let expected =
                    [ for k in 0 .. 1 do
                        let b = $"blocks.{k}."
                        yield b + "proj_in.weight", [ 8L; 2L ]
                        yield b + "proj_in.bias", [ 8L ]
                        yield b + "pos_embed", [ 4L; 8L ]
                        yield b + "class_embed", [ 3L; 1L; 8L ]
                        for l in 0 .. 1 do
                            let a = $"{b}attn_blocks.{l}."
                            yield a + "attention.norm.weight", [ 8L ]
                            yield a + "attention.norm.bias", [ 8L ]
                            yield a + "attention.qkv.weight", [ 24L; 8L ]
                            yield a + "attention.qkv.bias", [ 24L ]
                            yield a + "attention.proj.weight", [ 8L; 8L ]
                            yield a + "attention.proj.bias", [ 8L ]
                            yield a + "mlp.norm.weight", [ 8L ]
                            yield a + "mlp.norm.bias", [ 8L ]
                            yield a + "mlp.main.0.weight", [ 32L; 8L ]
                            yield a + "mlp.main.0.bias", [ 32L ]
                            yield a + "mlp.main.2.weight", [ 8L; 32L ]
                            yield a + "mlp.main.2.bias", [ 8L ]
                        yield b + "proj_out.weight", [ 4L; 8L ]
                        yield b + "proj_out.bias", [ 4L ]
                        yield b + "attn_mask", [ 4L; 4L ]
                      yield "var", [ 4L; 2L ] ]
                Expect.equal (sd.Keys |> Seq.sort |> List.ofSeq) (expected |> List.map fst |> List.sort) "keys"
                for key, s in expected do Expect.equal (shape sd.[key]) s key
            }
            test "shift-only proj_out has d outputs" {
                use model = new TeacherModel(vector 8 2 3 false)
                Expect.equal (shape (model.state_dict().["blocks.0.proj_out.weight"])) [ 2L; 8L ] "[d, C]"
            }
            test "a new model is the identity map" {
                use model = new TeacherModel(imageSpec, new torch.Generator(3UL))
                let x = torch.randn([| 2L; 3L; 8L; 4L |], generator = new torch.Generator(4UL))
                let struct (z, logdet) = Teacher.Encode(model, x)
                Expect.isTrue (z.allclose(x, 0.0, 0.0)) "z = x"
                Expect.equal (shape logdet) [ 2L ] "[N]"
                Expect.equal (logdet.abs().max().item<float32>()) 0.0f "log|det| = 0"
            }
            test "shapes of encode, decode, sample, likelihood and loss" {
                use model = new TeacherModel(vectorSpec, new torch.Generator(5UL))
                let g = new torch.Generator(6UL)
                let x = torch.randn([| 5L; 8L |], generator = g)
                let labels = torch.tensor([| 0L; 1L; 2L; -1L; 1L |])
                let struct (z, logdet) = Teacher.Encode(model, x, labels)
                Expect.equal (shape z) [ 5L; 8L ] "z"
                Expect.equal (shape logdet) [ 5L ] "logdet"
                Expect.equal (shape (Teacher.Decode(model, z, labels))) [ 5L; 8L ] "decode"
                Expect.equal (shape (Teacher.Sample(model, 3L, g, torch.tensor([| 0L; 1L; 2L |]), guidance = 1.0, denoise = true))) [ 3L; 8L ] "sample"
                Expect.equal (shape (Teacher.LogLikelihood(model, x, labels))) [ 5L ] "log-likelihood"
                Expect.equal (shape (Teacher.BitsPerDim(model, x, labels))) [ 5L ] "bits per dim"
                Expect.equal (shape (Teacher.Loss(model, x, labels))) [] "scalar loss"
            }
            test "bad inputs are refused before libtorch sees them" {
                use model = new TeacherModel(vectorSpec)
                let x = torch.zeros(2L, 8L)
                expectField "x" (fun () -> box (Teacher.Encode(model, torch.zeros(2L, 6L))))
                expectField "x" (fun () -> box (Teacher.Encode(model, torch.zeros([| 2L; 8L |], dtype = torch.float64))))
                expectField "labels" (fun () -> box (Teacher.Encode(model, x, torch.tensor([| 0L; 3L |]))))
                expectField "labels" (fun () -> box (Teacher.Encode(model, x, torch.tensor([| 0L |]))))
                use unconditional = new TeacherModel(vector 8 2 0 true)
                expectField "labels" (fun () -> box (Teacher.Encode(unconditional, x, torch.tensor([| 0L; 1L |]))))
                expectField "guidance" (fun () -> box (Teacher.Decode(unconditional, x, guidance = 1.0)))
            }
            test "initialisation: zero proj_out, unit LayerNorm, Linear within 1/sqrt(fan_in), small embeddings, reproducible" {
                use model = new TeacherModel(vectorSpec, new torch.Generator(8UL))
                use again = new TeacherModel(vectorSpec, new torch.Generator(8UL))
                let sd, sd2 = model.state_dict(), again.state_dict()
                for KeyValue(key, t) in sd do
                    Expect.isTrue (t.allclose(sd2.[key], 0.0, 0.0)) $"{key} reproducible"
                    let maxAbs = t.abs().max().item<float32>() |> float
                    if key.Contains "proj_out." then Expect.equal maxAbs 0.0 key
                    elif key.Contains ".norm.weight" then Expect.isTrue (t.eq((1.0).ToScalar()).all().item<bool>()) key
                    elif key.Contains ".norm.bias" then Expect.equal maxAbs 0.0 key
                    elif key.EndsWith "_embed" then Expect.isTrue (maxAbs > 0.0 && maxAbs < 0.06) $"{key} ~ N(0, 0.01^2)"
                    elif key.EndsWith ".weight" || key.EndsWith ".bias" then
                        let fanIn = sd.[key.Substring(0, key.LastIndexOf '.') + ".weight"].shape.[1]
                        Expect.isTrue (maxAbs > 0.0 && maxAbs <= 1.0 / sqrt (float fanIn)) $"{key} within the bound"
            }
            test "loss = 0.5 mean(z^2) - mean(log|det|) / D" {
                use model = new TeacherModel(vectorSpec, new torch.Generator(9UL))
                use _ = torch.no_grad ()
                for p in model.parameters () do p.add_(torch.randn(p.shape, generator = new torch.Generator(10UL)) * 0.1) |> ignore
                let x = torch.randn([| 4L; 8L |], generator = new torch.Generator(11UL))
                let struct (z, logdet) = Teacher.Encode(model, x)
                let expected = 0.5 * (z * z).mean() - logdet.mean() / 8.0
                Expect.floatClose Accuracy.high (Teacher.Loss(model, x).item<float32>() |> float) (expected.item<float32>() |> float) "loss"
                Expect.isTrue (logdet.abs().max().item<float32>() > 0.0f) "the perturbed model is not volume preserving"
            }
            test "sampling decodes sqrt(var) times the generator's noise" {
                use model = new TeacherModel(vectorSpec, new torch.Generator(12UL))
                use _ = torch.no_grad ()
                for p in model.parameters () do p.add_(torch.randn(p.shape, generator = new torch.Generator(13UL)) * 0.1) |> ignore
                model.PriorVariance.fill_((2.0).ToScalar()) |> ignore
                let samples = Teacher.Sample(model, 3L, new torch.Generator(14UL))
                let eps = torch.randn([| 3L; 4L; 2L |], generator = new torch.Generator(14UL))
                let expected = Teacher.Decode(model, (eps * sqrt 2.0).reshape(3L, 8L))
                Expect.isTrue (samples.allclose(expected, 1e-6, 1e-6)) "same noise, same samples"
            }
            test "augmentation: Gaussian adds sigma noise, Uniform adds one 8-bit bin first" {
                let x = torch.zeros([| 20000L |])
                let gaussian = Teacher.Augment(TeacherSpec([| 8L |], 2, 8, 1, 1, HeadDim = 4, NoiseSigma = 0.05), x, new torch.Generator(15UL))
                let std = gaussian.std().item<float32>() |> float
                Expect.isTrue (abs (std - 0.05) < 0.002) $"std {std}"
                let uniform =
                    Teacher.Augment(TeacherSpec([| 8L |], 2, 8, 1, 1, HeadDim = 4, NoiseSigma = 0.0, Dequantisation = Dequantisation.Uniform),
                                    x, new torch.Generator(16UL))
                Expect.isTrue (uniform.ge((0.0).ToScalar()).all().item<bool>() && uniform.lt((2.0 / 256.0).ToScalar()).all().item<bool>()) "in [0, 2/256)"
            }
            test "label dropout drops about p of the labels to -1" {
                let labels = torch.zeros([| 10000L |], dtype = torch.int64)
                let dropped = Teacher.DropLabels(labels, new torch.Generator(7UL), 0.1)
                let rate = dropped.lt((0L).ToScalar()).to_type(torch.float64).mean().item<float>()
                Expect.isTrue (abs (rate - 0.1) < 0.015) $"rate {rate}"
                Expect.isTrue (dropped.ge((-1L).ToScalar()).all().item<bool>()) "only -1 or the label"
            }
        ]
        testList "ema" [
            test "a teacher trained with EMA decodes with the averaged weights and the trained buffers" {
                // Regression: the EMA copy asked for every buffer (the prior variance 'var', the attention masks) among
                // the averaged parameters and failed with "weights lack tensor 'var'".
                let model = TeacherSpec([| 2L |], 1, 8, 2, 1, HeadDim = 4)
                let training = TeacherRunSpec.DefaultTraining(20, 32, 1e-2, 3L, 0, 0.9)
                let spec = TeacherRunSpec(model, training, "checkerboard", DeviceSpec()).Validate()
                let data = (Nfm.Data.Toy2D.Sample("checkerboard", 256L, 0L)).X
                let t = TeacherTraining.Run(TrainedTeacher.Create spec, data, null)
                let inference = t.InferenceModel()
                Expect.isFalse (obj.ReferenceEquals(inference, t.Model)) "a separate model holds the average"
                let differs =
                    Seq.zip (t.Model.named_parameters()) (inference.named_parameters())
                    |> Seq.exists (fun (struct (_, a), struct (_, b)) -> not (a.allclose(b)))
                Expect.isTrue differs "averaged weights differ from the trained ones after 20 steps at decay 0.9"
                for (struct (name, a), struct (_, b)) in Seq.zip (t.Model.named_buffers()) (inference.named_buffers()) do
                    Expect.isTrue (a.equal(b).all().item<bool>()) (sprintf "buffer %s copied as it is" name)
                use _ = torch.no_grad()
                let x = data.narrow(0L, 0L, 64L)
                let struct (z, _) = Teacher.Encode(inference, x)
                let back = Teacher.Decode(inference, z)
                let err = (back - x).abs().max().item<float32>()
                Expect.isLessThan err 1e-4f "decode (encode x) = x with the averaged weights"
                // Built once per training state: every caller shares one copy, without gradients; releasing it frees
                // it, and the next call builds an equal one.
                Expect.isTrue (obj.ReferenceEquals(t.InferenceModel(), inference)) "the same copy on every call"
                Expect.isTrue (inference.parameters() |> Seq.forall (fun p -> not p.requires_grad)) "no gradients"
                t.ReleaseInferenceModel()
                let again = t.InferenceModel()
                Expect.isFalse (obj.ReferenceEquals(again, inference)) "a fresh copy after release"
                for (struct (_, a), struct (_, b)) in Seq.zip (again.named_parameters()) (t.InferenceModel().named_parameters()) do
                    Expect.isTrue (a.allclose(b)) "the same weights"
                let struct (z2, _) = Teacher.Encode(again, x)
                Expect.isTrue (z2.allclose(z, 1e-6, 1e-6)) "encodes as before"
            }

            test "a student samples with one EMA copy per training state, and a continued student gets a new one" {
                let spec = Nfm.FSharp.Student.spec { Nfm.FSharp.Student.settings with Width = 16; Depth = 2; Steps = 5; Batch = 32; Ema = 0.5 } "independent" (Nfm.Data.Toy2D.Sample("moons", 256L, 0L))
                let data = Nfm.Data.Toy2D.Sample("moons", 256L, 0L)
                let st = Nfm.Regress.StudentTraining.Run(Nfm.Regress.Student.Create spec, data.X, null, Nfm.FSharp.Couple.independent, null, null, System.Threading.CancellationToken.None)
                let net = st.SamplingNet()
                Expect.isTrue (obj.ReferenceEquals(st.SamplingNet(), net)) "the same copy on every call"
                Expect.isTrue (net.parameters() |> Seq.forall (fun p -> not p.requires_grad)) "no gradients"
                Expect.isFalse (obj.ReferenceEquals(net, st.Net)) "apart from the trained network"
                let longer = Nfm.FSharp.Student.spec { Nfm.FSharp.Student.settings with Width = 16; Depth = 2; Steps = 8; Batch = 32; Ema = 0.5 } "independent" data
                let path = IO.Path.Combine(IO.Path.GetTempPath(), sprintf "nfm-ema-%s.ckpt" (Guid.NewGuid().ToString "N"))
                st.Save path
                let resumed = Nfm.Regress.Student.FromCheckpoint(longer, Nfm.Checkpoints.Checkpoint.Load path)
                IO.File.Delete path
                let more = Nfm.Regress.StudentTraining.Run(resumed, data.X, null, Nfm.FSharp.Couple.independent, null, null, System.Threading.CancellationToken.None)
                Expect.isFalse (obj.ReferenceEquals(more.SamplingNet(), net)) "a new state, a new copy"
                Expect.isFalse (more.SamplingNet().parameters() |> Seq.zip (net.parameters()) |> Seq.forall (fun (a, b) -> a.allclose(b))) "with the newer average"
            }
        ]
    ]
