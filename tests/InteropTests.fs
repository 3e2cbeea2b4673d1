/// ml-tarflow state_dicts: import against PyTorch reference outputs (fixtures made by
/// scripts/make-tarflow-fixture.py), export -> import round trips, and the errors a user can meet.
module Nfm.Tests.InteropTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open TorchSharp
open Nfm.Checkpoints
open Nfm.Descriptions
open Nfm.Invert

/// Encode agreement with PyTorch in float32 (the weights are float32; the reference was computed in float64).
let private float32Tolerance = 1e-4
/// Encode agreement with PyTorch when the imported model runs in float64.
let private float64Tolerance = 1e-9
/// Decode(encode(x)) = x in float32.
let private inverseTolerance = 1e-4
/// Export then import: the same float32 weights, so the same arithmetic up to rounding noise.
let private roundTripTolerance = 1e-6

let private fixture (name: string) (file: string) = Path.Combine(Cli.repoRoot, "tests", "fixtures", "tarflow", name, file)

let private maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) =
    (a.``to``(torch.float64) - b.``to``(torch.float64)).abs().max().item<double>()

/// A fixture and the options that describe it (as its config.json records).
type private Case = { Name: string; Options: ImportOptions; Labelled: bool }

let private cases =
    [ { Name = "image"; Options = ImportOptions(ImageSize = 8, Channels = 1, PatchSize = 2, HeadDim = 32); Labelled = false }
      { Name = "conditional"; Options = ImportOptions(ImageSize = 4, Channels = 3, PatchSize = 2, HeadDim = 16); Labelled = true }
      { Name = "shift"; Options = ImportOptions(ImageSize = 4, Channels = 1, PatchSize = 2, HeadDim = 8); Labelled = false } ]

let private labelsOf (c: Case) =
    if c.Labelled then Nfm.Data.Npy.Read(fixture c.Name "labels.npy") else null

/// Encode of the fixture's x under the imported teacher: (z tokens, log|det|) against the PyTorch reference.
let private agreement (c: Case) (file: string) (dtype: torch.ScalarType) =
    let teacher = TarFlowStateDict.Import(fixture c.Name file, c.Options)
    let model = teacher.InferenceModel()
    model.``to``(dtype) |> ignore
    let x = Nfm.Data.Npy.Read(fixture c.Name "x.npy").``to``(dtype)
    use _ = torch.no_grad()
    let struct (z, logdet) = Teacher.Encode(model, x, labelsOf c)
    let zRef = Nfm.Data.Npy.Read(fixture c.Name "z_tokens.npy")
    let ldRef = Nfm.Data.Npy.Read(fixture c.Name "logdet.npy")
    maxAbsDiff (model.ToTokens z) zRef, maxAbsDiff logdet ldRef

/// A teacher with every weight random (output projections included, so no block is the identity).
let private randomTeacher (model: TeacherSpec) (seed: uint64) =
    let spec = TeacherRunSpec(model, TeacherRunSpec.DefaultTraining(1, 8, 1e-3, 0L), "test", DeviceSpec())
    let t = TrainedTeacher.Create spec
    use g = new torch.Generator(seed)
    use _ = torch.no_grad()
    for struct (name, p) in t.Model.named_parameters() do
        if name.Contains "proj_out." then p.copy_(torch.randn(p.shape, generator = g) * 0.1) |> ignore
        elif name.EndsWith "class_embed" || name.EndsWith "pos_embed" then p.copy_(torch.randn(p.shape, generator = g) * 0.3) |> ignore
    t

let private encodeBoth (a: TrainedTeacher) (b: TrainedTeacher) (x: torch.Tensor) (labels: torch.Tensor) =
    use _ = torch.no_grad()
    let struct (za, la) = Teacher.Encode(a.InferenceModel(), x, labels)
    let struct (zb, lb) = Teacher.Encode(b.InferenceModel(), x, labels)
    max (maxAbsDiff za zb) (maxAbsDiff la lb)

let private tempFile (ext: string) = Path.Combine(Cli.tempDir (), "model" + ext)

/// Rewrites a fixture's safetensors file with <paramref name="edit"/> applied to its tensors.
let private edited (name: string) (edit: Dictionary<string, torch.Tensor> -> unit) =
    let tensors = TorchSharp.PyBridge.Safetensors.LoadStateDict(fixture name "model.safetensors")
    edit tensors
    let path = tempFile ".safetensors"
    use fs = File.Create path
    SafetensorsFile.Write(fs, ResizeArray tensors)
    path

/// Expects an exception of type 'E whose message contains every fragment.
let private expectMessage<'E when 'E :> exn> (f: unit -> unit) (fragments: string list) =
    let e = Expect.throwsC f id
    match e with
    | :? 'E ->
        for fragment in fragments do Expect.stringContains e.Message fragment "the message names the problem"
        Expect.isFalse (e.Message.Contains '\n') "one line"
    | other -> failtestf "expected %s, got %O" typeof<'E>.Name other

let private imageOptions = ImportOptions(ImageSize = 8, Channels = 1, PatchSize = 2, HeadDim = 32)

[<Tests>]
let tests =
    testList "interop" [
        testList "ml-tarflow fixtures" [
            for c in cases do
                for file in [ "model.pt"; "model.safetensors" ] do
                    test $"{c.Name} {file}: encode agrees with PyTorch in float32" {
                        let dz, dl = agreement c file torch.float32
                        Expect.isLessThan dz float32Tolerance $"max |z - z_torch| = {dz}"
                        Expect.isLessThan dl (float32Tolerance * 10.0) $"max |logdet - logdet_torch| = {dl} (a sum over all D values)"
                    }
                test $"{c.Name}: encode agrees with PyTorch in float64" {
                    let dz, dl = agreement c "model.pt" torch.float64
                    Expect.isLessThan dz float64Tolerance $"max |z - z_torch| = {dz}"
                    Expect.isLessThan dl float64Tolerance $"max |logdet - logdet_torch| = {dl}"
                }
                test $"{c.Name}: decode inverts encode, and decodes PyTorch's z to x" {
                    let teacher = TarFlowStateDict.Import(fixture c.Name "model.safetensors", c.Options)
                    let model = teacher.InferenceModel()
                    let x = Nfm.Data.Npy.Read(fixture c.Name "x.npy")
                    use _ = torch.no_grad()
                    let struct (z, _) = Teacher.Encode(model, x, labelsOf c)
                    let back = Teacher.Decode(model, z, labelsOf c)
                    Expect.isLessThan (maxAbsDiff back x) inverseTolerance "decode(encode(x)) = x"
                    let zTorch = model.FromTokens(Nfm.Data.Npy.Read(fixture c.Name "z_tokens.npy").``to``(torch.float32))
                    Expect.isLessThan (maxAbsDiff (Teacher.Decode(model, zTorch, labelsOf c)) x) inverseTolerance "decode(z_torch) = x"
                }
            test "sizes are inferred from the shapes" {
                let s = (TarFlowStateDict.Import(fixture "conditional" "model.pt", cases[1].Options)).Spec.Model
                Expect.equal (List.ofArray s.InputShape, s.TokenSize, s.Width, s.Blocks, s.LayersPerBlock) ([ 3L; 4L; 4L ], 2, 32, 3, 1) "geometry and sizes"
                Expect.equal (s.Classes, s.Affine, s.Expansion, s.HeadDim) (3, true, 4, 16) "classes, affine, expansion, head dim"
                let shift = (TarFlowStateDict.Import(fixture "shift" "model.pt", cases[2].Options)).Spec.Model
                Expect.isFalse shift.Affine "proj_out with d outputs is shift-only"
            }
            test "any one image option fixes the geometry" {
                for o in [ ImportOptions(ImageSize = 8, HeadDim = 32); ImportOptions(Channels = 1, HeadDim = 32); ImportOptions(PatchSize = 2, HeadDim = 32) ] do
                    let s = (TarFlowStateDict.Import(fixture "image" "model.pt", o)).Spec.Model
                    Expect.equal (List.ofArray s.InputShape, s.TokenSize) ([ 1L; 8L; 8L ], 2) $"from {o}"
            }
            test "the prior variance buffer is imported" {
                let t = TarFlowStateDict.Import(fixture "conditional" "model.safetensors", cases[1].Options)
                let saved = TorchSharp.PyBridge.Safetensors.LoadStateDict(fixture "conditional" "model.safetensors")
                Expect.equal (maxAbsDiff t.Model.PriorVariance saved["var"]) 0.0 "var copied as it is"
                Expect.isGreaterThan (maxAbsDiff t.Model.PriorVariance (torch.ones_like saved["var"])) 0.1 "a learned var, not ones"
            }
            test ".pt and .safetensors give the same teacher" {
                let a = TarFlowStateDict.Import(fixture "image" "model.pt", imageOptions)
                let b = TarFlowStateDict.Import(fixture "image" "model.safetensors", imageOptions)
                Expect.equal (a.Identity()) (b.Identity()) "same description and weights"
            }
            test "noise and dequantisation come from the options" {
                let o = ImportOptions(PatchSize = 2, HeadDim = 32, NoiseSigma = 0.1, Dequantisation = Dequantisation.Uniform)
                let s = (TarFlowStateDict.Import(fixture "image" "model.pt", o)).Spec.Model
                Expect.equal (s.NoiseSigma, s.Dequantisation) (0.1, Dequantisation.Uniform) "as given"
            }
            test "wrapper prefixes (DistributedDataParallel's module.) are removed" {
                let path =
                    edited "image" (fun d ->
                        for k in List.ofSeq d.Keys do
                            let t = d[k]
                            d.Remove k |> ignore
                            d["module." + k] <- t)
                let a = TarFlowStateDict.Import(path, imageOptions)
                let b = TarFlowStateDict.Import(fixture "image" "model.pt", imageOptions)
                Expect.equal (a.Identity()) (b.Identity()) "same teacher"
            }
        ]
        testList "export then import" [
            let image = TeacherSpec([| 2L; 8L; 8L |], 2, 32, 3, 2, HeadDim = 16, Classes = 4, NoiseSigma = 0.07)
            test "safetensors: same encode, same identity, no options needed" {
                let t = randomTeacher image 5UL
                let path = tempFile ".safetensors"
                TarFlowStateDict.Export(t, path)
                let back = TarFlowStateDict.Import(path, ImportOptions())
                Expect.equal back.Spec.Model t.Spec.Model "the description travels in the metadata"
                Expect.equal (back.Identity()) (t.Identity()) "same description and weights"
                let x = torch.randn([| 3L; 2L; 8L; 8L |], generator = new torch.Generator(6UL))
                let labels = torch.tensor([| 0L; 3L; -1L |])
                let d = encodeBoth t back x labels
                Expect.isLessThan d roundTripTolerance $"max difference {d}"
                let struct (z, _) = Teacher.Encode(t.InferenceModel(), x, labels)
                Expect.isGreaterThan (maxAbsDiff z x) 0.1 "the random teacher is not the identity"
            }
            test ".pt: same encode when the options describe the model" {
                let t = randomTeacher image 7UL
                let path = tempFile ".pt"
                TarFlowStateDict.Export(t, path)
                let back = TarFlowStateDict.Import(path, ImportOptions(ImageSize = 8, Channels = 2, HeadDim = 16, NoiseSigma = 0.07))
                Expect.equal (back.Identity()) (t.Identity()) "same description and weights"
                let x = torch.randn([| 2L; 2L; 8L; 8L |], generator = new torch.Generator(8UL))
                Expect.isLessThan (encodeBoth t back x (torch.tensor([| 1L; 2L |]))) roundTripTolerance "same encode"
            }
            test "a vector teacher round-trips through safetensors metadata" {
                let t = randomTeacher (TeacherSpec([| 6L |], 2, 16, 4, 1, HeadDim = 8, Affine = false)) 9UL
                let path = tempFile ".safetensors"
                TarFlowStateDict.Export(t, path)
                let back = TarFlowStateDict.Import(path, ImportOptions())
                Expect.equal (back.Identity()) (t.Identity()) "same description and weights"
                let x = torch.randn([| 5L; 6L |], generator = new torch.Generator(10UL))
                Expect.isLessThan (encodeBoth t back x null) roundTripTolerance "same encode"
            }
            test "the exported keys are ml-tarflow's" {
                let t = randomTeacher (TeacherSpec([| 1L; 4L; 4L |], 2, 16, 2, 1, HeadDim = 8)) 11UL
                let path = tempFile ".safetensors"
                TarFlowStateDict.Export(t, path)
                let keys = TorchSharp.PyBridge.Safetensors.LoadStateDict(path).Keys |> Set.ofSeq
                let reference = TorchSharp.PyBridge.Safetensors.LoadStateDict(fixture "shift" "model.safetensors").Keys |> Set.ofSeq
                let ofBlock0 = Set.filter (fun (k: string) -> not (k.StartsWith "blocks.1.")) reference
                Expect.equal (keys |> Set.filter (fun k -> not (k.StartsWith "blocks.1."))) ofBlock0 "same names as the PyTorch fixture"
            }
            test "compatibility notes: none for an ml-tarflow shape, one per difference otherwise" {
                Expect.isEmpty (TarFlowStateDict.CompatibilityNotes(TeacherSpec([| 3L; 8L; 8L |], 2, 128, 2, 1))) "head dim 64, expansion 4, square image"
                Expect.equal (TarFlowStateDict.CompatibilityNotes(image).Count) 1 "head dim 16"
                Expect.equal (TarFlowStateDict.CompatibilityNotes(TeacherSpec([| 8L |], 2, 64, 2, 1, Expansion = 2)).Count) 2 "vector, expansion 2"
            }
        ]
        testList "errors" [
            test "a missing key is named" {
                let path = edited "image" (fun d -> d.Remove "blocks.1.attn_blocks.0.mlp.norm.bias" |> ignore)
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(path, imageOptions) |> ignore)
                    [ "missing keys"; "blocks.1.attn_blocks.0.mlp.norm.bias" ]
            }
            test "an unexpected key is named" {
                let path = edited "image" (fun d -> d["blocks.0.extra_scale"] <- torch.ones(3L))
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(path, imageOptions) |> ignore)
                    [ "unexpected keys"; "blocks.0.extra_scale" ]
            }
            test "a shape that contradicts the options names the tensor and both shapes" {
                let o = ImportOptions(ImageSize = 8, Channels = 1, PatchSize = 4, HeadDim = 32)
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(fixture "image" "model.pt", o) |> ignore)
                    [ "blocks.0.pos_embed"; "[16, 64]"; "[4, 64]"; "patch size 4" ]
                let o2 = ImportOptions(ImageSize = 8, Channels = 4, PatchSize = 2, HeadDim = 32)
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(fixture "image" "model.pt", o2) |> ignore)
                    [ "blocks.0.proj_in.weight"; "[64, 4]"; "[64, 16]"; "channels 4" ]
            }
            test "a tensor of the wrong shape in the file is named" {
                let path = edited "image" (fun d -> d["blocks.1.attn_blocks.1.attention.qkv.bias"] <- torch.zeros(100L))
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(path, imageOptions) |> ignore)
                    [ "blocks.1.attn_blocks.1.attention.qkv.bias"; "[100]"; "[192]" ]
            }
            test "a head dim that does not divide the width" {
                expectMessage<ArgumentException> (fun () -> TarFlowStateDict.Import(fixture "image" "model.pt", ImportOptions(PatchSize = 2, HeadDim = 48)) |> ignore)
                    [ "width 64"; "head dim 48" ]
            }
            test "no geometry for a plain ml-tarflow file" {
                expectMessage<ArgumentException> (fun () -> TarFlowStateDict.Import(fixture "image" "model.pt", ImportOptions(HeadDim = 32)) |> ignore)
                    [ "16 tokens of 4 values"; "image size" ]
            }
            test "an option the shapes cannot satisfy" {
                expectMessage<ArgumentException> (fun () -> TarFlowStateDict.Import(fixture "image" "model.pt", ImportOptions(Channels = 3, HeadDim = 32)) |> ignore)
                    [ "channels 3"; "16 tokens"; "4 values" ]
            }
            test "options out of range" {
                expectMessage<ArgumentException> (fun () -> TarFlowStateDict.Import(fixture "image" "model.pt", ImportOptions(PatchSize = 0)) |> ignore) [ "patch size" ]
                expectMessage<ArgumentException> (fun () -> TarFlowStateDict.Import(fixture "image" "model.pt", ImportOptions(PatchSize = 2, NoiseSigma = -1.0)) |> ignore) [ "noise sigma" ]
            }
            test "a mask that is not causal" {
                let path = edited "image" (fun d -> d["blocks.0.attn_mask"] <- torch.ones(16L, 16L))
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(path, imageOptions) |> ignore) [ "blocks.0.attn_mask"; "causal" ]
            }
            test "non-finite weights" {
                let path = edited "image" (fun d -> d["blocks.0.proj_in.bias"] <- torch.full(64L, Double.NaN))
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(path, imageOptions) |> ignore) [ "blocks.0.proj_in.bias"; "non-finite" ]
            }
            test "a file that is not a state_dict" {
                let path = tempFile ".pt"
                File.WriteAllText(path, "not a zip")
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(path, imageOptions) |> ignore) [ path; "state_dict" ]
                let st = tempFile ".safetensors"
                File.WriteAllBytes(st, [| 1uy; 2uy; 3uy |])
                expectMessage<InvalidDataException> (fun () -> TarFlowStateDict.Import(st, imageOptions) |> ignore) [ st ]
            }
            test "a missing file" {
                Expect.throwsT<FileNotFoundException> (fun () -> TarFlowStateDict.Import("/nonexistent/m.pt", imageOptions) |> ignore) "named"
            }
            test "export refuses another extension" {
                let t = randomTeacher (TeacherSpec([| 4L |], 2, 8, 1, 1, HeadDim = 4)) 1UL
                expectMessage<ArgumentException> (fun () -> TarFlowStateDict.Export(t, tempFile ".bin")) [ ".safetensors" ]
            }
        ]
    ]
