namespace Nfm.FSharp

open TorchSharp
open FsCheck
open FsCheck.FSharp
open Nfm.Couple

/// A generated batch for coupling laws: rows, dimension, label count and the seeds of the data and of the coupling.
type CouplingCase =
    { Rows: int; Dim: int; Classes: int; DataSeed: int64; CouplingSeed: int64 }
    /// Data [Rows, Dim] ~ N(0, 4) and labels in [0, Classes), float32 on the CPU.
    member c.Batch() =
        use g = new torch.Generator(uint64 c.DataSeed)
        let x = torch.randn([| int64 c.Rows; int64 c.Dim |], generator = g) * 2.0
        let y = torch.randint(int64 c.Classes, [| int64 c.Rows |], generator = g, dtype = torch.int64)
        Batch(x, y)

/// Laws every coupling keeps, as FsCheck properties: a user who writes a coupling checks it with one call
/// (CouplingLaws.check). The same functions back the project's own coupling properties.
module CouplingLaws =

    /// Generated cases: 1 to 64 rows, 1 to 6 dimensions, 1 to 4 classes, any seeds.
    let cases : Arbitrary<CouplingCase> =
        gen {
            let! rows = Gen.choose (1, 64)
            let! dim = Gen.choose (1, 6)
            let! classes = Gen.choose (1, 4)
            let! s1 = Gen.choose (0, System.Int32.MaxValue)
            let! s2 = Gen.choose (0, System.Int32.MaxValue)
            return { Rows = rows; Dim = dim; Classes = classes; DataSeed = int64 s1; CouplingSeed = int64 s2 }
        }
        |> Arb.fromGen

    /// Equal shapes and equal values (both null counts as equal).
    let same (a: torch.Tensor) (b: torch.Tensor) =
        match a, b with
        | null, null -> true
        | null, _ | _, null -> false
        | a, b -> a.shape = b.shape && a.eq(b).all().item<bool>()

    /// The coupling applied with a generator seeded from the case.
    let apply (c: Coupling) (case: CouplingCase) (batch: Batch) =
        use g = new torch.Generator(uint64 case.CouplingSeed)
        c.Invoke(batch, g)

    /// Every data row comes back exactly once, in its place, with its label; x0 has x1's shape and is finite.
    let keepsRows (c: Coupling) (case: CouplingCase) : bool =
        let batch = case.Batch()
        let out = apply c case batch
        out.X1.shape = batch.X1.shape && same out.X1 batch.X1 && same out.Labels batch.Labels
        && out.X0.shape = batch.X1.shape && out.X0.isfinite().all().item<bool>()

    /// The same generator state gives the same pairs.
    let reproducible (c: Coupling) (case: CouplingCase) : bool =
        let batch = case.Batch()
        same (apply c case batch).X0 (apply c case batch).X0

    /// Two couplings give identical pairs on the same batch and generator state.
    let equivalent (a: Coupling) (b: Coupling) (case: CouplingCase) : bool =
        let batch = case.Batch()
        let pa, pb = apply a case batch, apply b case batch
        same pa.X0 pb.X0 && same pa.X1 pb.X1 && same pa.Labels pb.Labels

    /// Each law as a named property over generated cases.
    let properties (c: Coupling) : (string * Property) list =
        [ "keeps every data row once, with its label", Prop.forAll cases (keepsRows c)
          "reproducible from the generator state", Prop.forAll cases (reproducible c) ]

    /// Checks a coupling's laws on <paramref name="count"/> generated batches each; throws on the first failure.
    let checkWith (count: int) (c: Coupling) =
        for name, p in properties c do
            Check.One(Config.QuickThrowOnFailure.WithMaxTest(count).WithName(name).WithQuietOnSuccess(true), p)

    /// Checks a coupling's laws on 200 generated batches each.
    let check (c: Coupling) = checkWith 200 c
