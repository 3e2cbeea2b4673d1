module Nfm.Tests.SitTests

open System
open Expecto
open TorchSharp
open Nfm.Descriptions
open Nfm.Nets
open Nfm.Regress
open Nfm.Training
open Nfm.Tests.NetHelpers

/// A SiT spec for images [c, h, w] with the given hidden width, blocks and classes.
let private sit (shape: int64 list) (width: int) (depth: int) (classes: int) =
    VelocityNetSpec(Array.ofList shape, width, depth, Classes = classes, Architecture = Architecture.Sit)

let private shape (t: torch.Tensor) = t.shape |> List.ofArray

[<Tests>]
let tests =
    testList "sit" [
        test "output shape equals input shape; 4 x 4 patches on 28 x 28 (49 tokens), 2 x 2 on 6 x 6, 1 x 1 on 5 x 5" {
            for (h, p) in [ 28L, 4L; 6L, 2L; 5L, 1L ] do
                use net = new VelocitySit(sit [ 1L; h; h ] 32 1 0)
                Expect.equal net.Patch p (sprintf "%d x %d: patch %d" h h p)
                let v = net.forward(torch.randn(3L, 1L, h, h), torch.rand(3L), null)
                Expect.equal (shape v) [ 3L; 1L; h; h ] "shape kept"
            use rgb = new VelocitySit(sit [ 3L; 8L; 8L ] 64 2 0)
            perturb rgb 1UL
            Expect.equal (shape (rgb.forward(torch.randn(2L, 3L, 8L, 8L), torch.rand(2L), null))) [ 2L; 3L; 8L; 8L ] "three channels"
        }
        test "a fresh network predicts zero velocity (adaLN-Zero), and its input reaches the output once trained away from zero" {
            use net = VelocityNets.Create(sit [ 1L; 8L; 8L ] 32 2 3)
            let v = net.forward(torch.randn(4L, 1L, 8L, 8L), torch.rand(4L), torch.tensor([| 0L; 1L; 2L; -1L |]))
            Expect.equal (v.abs().max().item<float32>()) 0.0f "zero at initialisation"
            // A change in one patch of the input moves the velocity mostly in that patch once the network is trained
            // away from zero: tokens are where their pixels are.
            perturb net 2UL
            let x = torch.randn(1L, 1L, 8L, 8L)
            let t = torch.rand(1L)
            let before = net.forward(x, t, null)
            let x2 = x.clone()
            x2.index_put_(torch.tensor(5.0f), [| torch.TensorIndex.Single 0L; torch.TensorIndex.Single 0L; torch.TensorIndex.Single 1L; torch.TensorIndex.Single 1L |]) |> ignore
            Expect.isFalse ((net.forward(x2, t, null)).allclose(before, 1e-6, 1e-6)) "a pixel changes the output"
        }
        test "class-conditional: no labels and the null label mean the null class, real labels change the output, rows follow their own" {
            torch.manual_seed 3L |> ignore
            use net = VelocityNets.Create(sit [ 1L; 8L; 8L ] 32 2 3)
            perturb net 4UL
            let x = torch.randn(4L, 1L, 8L, 8L)
            let t = torch.rand(4L)
            let none = net.forward(x, t, null)
            let nulls = net.forward(x, t, torch.full(4L, Labels.Null, dtype = torch.int64))
            let zeros = net.forward(x, t, torch.zeros(4L, dtype = torch.int64))
            Expect.isTrue (none.allclose(nulls, 0.0, 0.0)) "the null label = no labels"
            Expect.isFalse (none.allclose(zeros, 1e-6, 1e-6)) "label 0 differs from the null class"
            let mixed = net.forward(x, t, torch.tensor([| 0L; -1L; 0L; -1L |]))
            Expect.isTrue (mixed[0].allclose(zeros[0], 1e-5, 1e-5) && mixed[1].allclose(none[1], 1e-5, 1e-5)) "each row follows its own label"
            Expect.isFalse ((net.forward(x, torch.zeros(4L), null)).allclose(net.forward(x, torch.ones(4L), null), 1e-6, 1e-6)) "time changes the output"
        }
        test "guided sampling: one call of twice the rows equals v_c + w (v_c - v_u) from two calls, chunked or not" {
            torch.manual_seed 5L |> ignore
            use net = VelocityNets.Create(sit [ 1L; 8L; 8L ] 32 2 3)
            perturb net 6UL
            net.eval()
            let x = torch.randn(6L, 1L, 8L, 8L)
            let labels = torch.tensor([| 0L; 1L; 2L; 0L; 1L; 2L |])
            use _ = torch.no_grad ()
            let v = (Nfm.Sampling.StudentSampler.Field(net, labels, 0.5)).Invoke(x, 0.3)
            let tt = torch.full(6L, 0.3, dtype = torch.float32)
            let vc = net.forward(x, tt, labels)
            let vu = net.forward(x, tt, torch.full(6L, Labels.Null, dtype = torch.int64))
            Expect.isTrue (v.allclose(vc + (vc - vu) * 0.5, 1e-5, 1e-5)) "the guided field"
            let solver = SolverSpec(SolverMethod.Euler, 3, TimeGridKind.Uniform)
            let many = torch.randn(100L, 1L, 8L, 8L)
            let y = torch.arange(100L, dtype = torch.int64).remainder(Scalar.op_Implicit 3L)
            let chunked = Nfm.Sampling.StudentSampler.FromNoise(net, many, solver, y, 0.5)
            let whole = Nfm.Integrate.Integrator.Integrate(Nfm.Sampling.StudentSampler.Field(net, y, 0.5), many, solver)
            Expect.isTrue (chunked.X.allclose(whole.X, 1e-4, 1e-4)) "chunks of 32 guided rows = one pass"
            Expect.equal chunked.Nfe 6 "two network evaluations per step"
        }
        test "a SiT student trains, saves and loads: the same velocity after the checkpoint, and the loss falls" {
            let g = new torch.Generator(11UL)
            let data = torch.where(torch.rand([| 128L; 1L; 8L; 8L |], generator = g).lt(torch.tensor 0.2f), torch.tensor(1.0f), torch.tensor(-1.0f))
            let training = TrainingSpec(Steps = 30, Batch = 16, LearningRate = 3e-3, EmaDecay = 0.9, Seed = 12L)
            let student = Student.Create(StudentSpec(sit [ 1L; 8L; 8L ] 32 2 0, PathSpec(), training, CouplingSpec.Independent, "random", DeviceSpec()))
            let before = fixedLoss student.Net data
            let trained = StudentTraining.Run(student, data, null, Nfm.Couple.Couplings.Independent)
            Expect.isLessThan (fixedLoss trained.Net data) (0.9 * before) "the loss falls"
            let path = IO.Path.Combine(IO.Path.GetTempPath(), sprintf "nfm-sit-%s.ckpt" (Guid.NewGuid().ToString "N"))
            trained.Save path
            let loaded = Student.Load path
            IO.File.Delete path
            Expect.equal loaded.Spec.Net.Architecture Architecture.Sit "the architecture is recorded"
            Expect.equal loaded.Spec.Net trained.Spec.Net "the same description (value equality)"
            use _ = torch.no_grad ()
            let x, t = torch.randn(4L, 1L, 8L, 8L), torch.rand(4L)
            Expect.isTrue ((loaded.SamplingNet().forward(x, t, null)).allclose(trained.SamplingNet().forward(x, t, null), 0.0, 0.0)) "the same EMA velocity"
        }
        test "bfloat16 mixed precision: the forward pass within 3% of float32, and a bfloat16 training step runs" {
            torch.manual_seed 7L |> ignore
            use net = VelocityNets.Create(sit [ 1L; 8L; 8L ] 64 2 3)
            perturb net 8UL
            let x, t, y = torch.randn(8L, 1L, 8L, 8L), torch.rand(8L), torch.tensor([| 0L; 1L; 2L; 0L; 1L; 2L; 0L; 1L |])
            use _ = torch.no_grad ()
            let full = net.forward(x, t, y)
            let low =
                use _ = Nfm.MixedPrecision.Scope(Precision.BFloat16)
                net.forward(x, t, y)
            Expect.equal low.dtype torch.float32 "the velocity comes back in float32"
            let rel = ((low - full).norm().item<float32>()) / (full.norm().item<float32>())
            Expect.isLessThan rel 0.03f (sprintf "relative error %g" rel)
        }
        test "bad specs and shapes give clear errors" {
            Expect.throwsC (fun () -> VelocityNets.Create(sit [ 1L; 8L; 8L ] 48 2 0) |> ignore)
                (fun e -> Expect.stringContains e.Message "multiple of its head size 32" "width")
            Expect.throwsC (fun () -> VelocityNets.Create(sit [ 64L ] 32 2 0) |> ignore) (fun e -> Expect.stringContains e.Message "[C, H, W]" "vectors")
            use net = VelocityNets.Create(sit [ 1L; 8L; 8L ] 32 1 10)
            let t = torch.rand(2L)
            expectArgument "x" "got [2, 1, 12, 12]" (fun () -> net.forward(torch.randn(2L, 1L, 12L, 12L), t, null) |> ignore)
            expectArgument "t" "t must have shape [2]" (fun () -> net.forward(torch.randn(2L, 1L, 8L, 8L), torch.rand(3L), null) |> ignore)
            expectArgument "labels" "[0, 10) or be -1 (no label)" (fun () -> net.forward(torch.randn(2L, 1L, 8L, 8L), t, torch.tensor([| 0L; 11L |])) |> ignore)
        }
    ]
