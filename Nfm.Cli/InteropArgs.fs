/// Options of `nfm teacher import` and `nfm teacher export` (../shared CLI.md): ml-tarflow state_dicts in and out.
module Nfm.Cli.InteropArgs

open Argu

[<RequireQualifiedAccess>]
type TeacherImportArgs =
    | [<Mandatory>] State_Dict of file: string
    | [<Mandatory>] Out of file: string
    | Image_Size of int
    | Channels of int
    | Patch_Size of int
    | Head_Dim of int
    | Noise of float
    | Dequantisation of kind: string
    | Device of string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | State_Dict _ -> "ml-tarflow transformer_flow.Model state_dict: FILE.pt/.pth (torch.save) or FILE.safetensors."
            | Out _ -> "teacher checkpoint to write (.ckpt)."
            | Image_Size _ -> "image height = width H (ml-tarflow's --img_size); with the tensor shapes, any one of image size, channels and patch size fixes the others."
            | Channels _ -> "image channels C (ml-tarflow's --channel_size)."
            | Patch_Size _ -> "patch size p (ml-tarflow's --patch_size)."
            | Head_Dim _ -> "channels per attention head (default: the file's own, else 64, what ml-tarflow's Model uses)."
            | Noise _ -> "training noise sigma (ml-tarflow's --noise_std; default: the file's own, else 0.05); used by denoising and the NFM coupling."
            | Dequantisation _ -> "gaussian (default) or uniform (ml-tarflow's --noise_type)."
            | Device _ -> "cpu (default) or cuda."

[<RequireQualifiedAccess>]
type TeacherExportArgs =
    | [<Mandatory>] Teacher of file: string
    | [<Mandatory>] Out of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Teacher _ -> "teacher checkpoint (.ckpt)."
            | Out _ -> "state_dict to write in ml-tarflow's layout: FILE.safetensors (with the teacher's description) or FILE.pt/.pth."

[<RequireQualifiedAccess>]
type TeacherReleaseArgs =
    | [<Mandatory>] From of dir: string
    | [<Mandatory>] Out of dir: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | From _ -> "a finished comparison's output folder (results.json, experiment.json and the teacher's checkpoint: teacher-best.ckpt when its budget chose one by held-out NLL, else teacher.ckpt)."
            | Out _ -> "release folder to write: teacher.safetensors (EMA weights, ml-tarflow layout), card.json and README.md (the model card)."
