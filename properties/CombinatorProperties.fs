module Nfm.Properties.CombinatorProperties

open Expecto
open FsCheck
open FsCheck.FSharp
open TorchSharp
open Nfm.FSharp
open Nfm.Descriptions
open Nfm.Invert
open Nfm.Properties.Generators

/// A fixed tiny teacher over 3-D rows (3 tokens of 1 value) with non-zero output projections.
let teacher =
    let spec = TeacherSpec([| 3L |], 1, 16, 2, 1, 8, 2, true, 0, 0.05)
    let m = new TeacherModel(spec, new torch.Generator(7UL))
    use _ = torch.no_grad()
    use g = new torch.Generator(11UL)
    for (name, p) in m.named_parameters() do
        if name.Contains "proj_out" then p.copy_(torch.randn(p.shape, generator = g) * 0.1) |> ignore
    m.eval()
    m

let threeD (case: CouplingCase) = { case with Dim = 3 }

/// Tolerance for float32 encodings compared after division by sigma_f.
let encodeTolerance = 1e-6

[<Tests>]
let tests =
    testList "coupling combinators" [
        testPropertyWithConfig config "mix 1 a b = a" (fun () ->
            Prop.forAll CouplingLaws.cases (CouplingLaws.equivalent (Couple.mix 1.0 Couple.ot Couple.independent) Couple.ot))
        testPropertyWithConfig config "mix 0 a b = b" (fun () ->
            Prop.forAll CouplingLaws.cases (CouplingLaws.equivalent (Couple.mix 0.0 Couple.ot Couple.independent) Couple.independent))
        testPropertyWithConfig config "perturb 0 c = c" (fun () ->
            Prop.forAll CouplingLaws.cases (CouplingLaws.equivalent (Couple.perturb 0.0 Couple.ot) Couple.ot))
        testPropertyWithConfig config "mix keeps every data row once with its label" (fun () ->
            Prop.forAll CouplingLaws.cases (CouplingLaws.keepsRows (Couple.mix 0.3 Couple.ot Couple.independent)))
        testPropertyWithConfig config "perturb keeps every data row once with its label" (fun () ->
            Prop.forAll CouplingLaws.cases (CouplingLaws.keepsRows (Couple.perturb 0.5 Couple.independent)))
        testPropertyWithConfig config "perLabel keeps every data row once with its label" (fun () ->
            let c = Couple.perLabel (fun l -> if l % 2L = 0L then Couple.ot else Couple.independent)
            Prop.forAll CouplingLaws.cases (CouplingLaws.keepsRows c))
        testPropertyWithConfig config "otWithin keeps every data row once with its label" (fun () ->
            Prop.forAll CouplingLaws.cases (CouplingLaws.keepsRows (Couple.otWithin Couple.independent)))
        testPropertyWithConfig config "otWithin's pairing costs no more than its inner coupling's" (fun () ->
            Prop.forAll CouplingLaws.cases (fun case ->
                let batch = case.Batch()
                let inner = CouplingLaws.apply Couple.independent case batch
                let outer = CouplingLaws.apply (Couple.otWithin Couple.independent) case batch
                let cost (p: Nfm.Couple.CoupledBatch) = (p.X0 - p.X1).square().sum().item<float32>() |> float
                cost outer <= cost inner * (1.0 + 1e-5) + 1e-4))
        testPropertyWithConfig config "ofFunction keeps every data row once with its label" (fun () ->
            let c = Couple.ofFunction (fun x1 _ g -> torch.randn(x1.shape, generator = g) * 0.5)
            Prop.forAll CouplingLaws.cases (CouplingLaws.keepsRows c))
        testPropertyWithConfig config "the teacher coupling with eta = 0 is deterministic and equals encode / sigma_f" (fun () ->
            Prop.forAll CouplingLaws.cases (fun case ->
                let case = threeD case
                let sigmaF = 1.7
                let c = Nfm.Couple.TeacherCoupling.OnTheFly(teacher, sigmaF, 0.0)
                let batch = case.Batch()
                let a = CouplingLaws.apply c case batch
                let b = CouplingLaws.apply c { case with CouplingSeed = case.CouplingSeed + 1L } batch
                let struct (z, _) = Teacher.Encode(teacher, batch.X1)
                CouplingLaws.same a.X0 b.X0 && (a.X0 - z / sigmaF).abs().max().item<float32>() |> float <= encodeTolerance
                && CouplingLaws.keepsRows c case))
    ]
