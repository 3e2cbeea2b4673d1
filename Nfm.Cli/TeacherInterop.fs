/// `nfm teacher import` and `nfm teacher export`: ml-tarflow state_dicts to teacher checkpoints and back.
module Nfm.Cli.TeacherInterop

open System
open System.IO
open Argu
open Nfm.Cli.InteropArgs
open Nfm.Cli.Common
open Nfm.Descriptions
open Nfm.Invert

/// One line describing a teacher's sizes.
let describe (s: TeacherSpec) =
    sprintf "%d blocks x %d layers, width %d (head dim %d), %d tokens of %d values, %s%s"
        s.Blocks s.LayersPerBlock s.Width s.HeadDim s.Tokens s.TokenDim
        (if s.Affine then "affine" else "shift-only")
        (if s.IsConditional then sprintf ", %d classes" s.Classes else "")

/// The ml-tarflow constructor call that builds a model these weights load into.
let tarflowCall (s: TeacherSpec) =
    if s.IsImage then
        sprintf "transformer_flow.Model(in_channels=%d, img_size=%d, patch_size=%d, channels=%d, num_blocks=%d, layers_per_block=%d, nvp=%s, num_classes=%d)"
            s.InputShape[0] s.InputShape[1] s.TokenSize s.Width s.Blocks s.LayersPerBlock (if s.Affine then "True" else "False") s.Classes
    else "no ml-tarflow Model (vector data)"

let private dequantisation (name: string) =
    match name.Trim().ToLowerInvariant() with
    | "gaussian" -> Dequantisation.Gaussian
    | "uniform" -> Dequantisation.Uniform
    | _ -> fail (sprintf "--dequantisation must be gaussian or uniform, got '%s'" name)

let importCommand (args: ParseResults<TeacherImportArgs>) : int =
    let source = existing "state_dict" (args.GetResult TeacherImportArgs.State_Dict)
    let out = outputPath (args.GetResult TeacherImportArgs.Out)
    let optionalPositive name (v: int option) = v |> Option.map (positive name) |> Option.toNullable
    let options =
        ImportOptions(
            ImageSize = optionalPositive "image-size" (args.TryGetResult TeacherImportArgs.Image_Size),
            Channels = optionalPositive "channels" (args.TryGetResult TeacherImportArgs.Channels),
            PatchSize = optionalPositive "patch-size" (args.TryGetResult TeacherImportArgs.Patch_Size),
            HeadDim = optionalPositive "head-dim" (args.TryGetResult TeacherImportArgs.Head_Dim),
            NoiseSigma = (args.TryGetResult TeacherImportArgs.Noise |> Option.map (nonNegative "noise") |> Option.toNullable),
            Dequantisation = (args.TryGetResult TeacherImportArgs.Dequantisation |> Option.map dequantisation |> Option.toNullable),
            Device = args.GetResult(TeacherImportArgs.Device, "cpu"))
    let teacher = TarFlowStateDict.Import(source, options)
    teacher.Save out
    let s = teacher.Spec.Model
    printfn "imported %s: %s; input [%s], noise %g (%s); teacher id %s; saved %s"
        source (describe s) (String.Join(", ", s.InputShape)) s.NoiseSigma
        (s.Dequantisation.ToString().ToLowerInvariant()) (teacher.Identity()) out
    0

let exportCommand (args: ParseResults<TeacherExportArgs>) : int =
    let source = existing "teacher checkpoint" (args.GetResult TeacherExportArgs.Teacher)
    let out = outputPath (args.GetResult TeacherExportArgs.Out)
    let ext = Path.GetExtension(out).ToLowerInvariant()
    if ext <> ".safetensors" && ext <> ".pt" && ext <> ".pth" then
        fail (sprintf "--out must end in .safetensors, .pt or .pth, got '%s'" out)
    let teacher = TrainedTeacher.Load source
    TarFlowStateDict.Export(teacher, out)
    let s = teacher.Spec.Model
    printfn "exported %s (%s) to %s" source (describe s) out
    match TarFlowStateDict.CompatibilityNotes s with
    | notes when notes.Count = 0 -> printfn "loads with model.load_state_dict in %s" (tarflowCall s)
    | notes ->
        for n in notes do eprintfn "note: %s" n
        eprintfn "note: the weights use ml-tarflow's names and layout; build its MetaBlocks with these sizes to load them"
    0

let releaseCommand (args: ParseResults<TeacherReleaseArgs>) : int =
    let source = args.GetResult TeacherReleaseArgs.From
    if not (Directory.Exists source) then fail (sprintf "--from: comparison folder '%s' not found" source)
    let out = args.GetResult TeacherReleaseArgs.Out
    let card = Nfm.FSharp.Release.teacher source out
    printfn "released %s: %s (%d bytes), test NLL %.3f nats (%.4f bits/dim), %s %.2f; card %s"
        (card["identity"].GetValue<string>()) (Path.Combine(out, Nfm.FSharp.Release.weightsFile)) (card["weights_bytes"].GetValue<int64>())
        (card["test_nll_nats"].GetValue<float>()) (card["test_bpd"].GetValue<float>()) (card["metric"].GetValue<string>())
        (card["value"].GetValue<float>()) (Path.Combine(out, "README.md"))
    0
