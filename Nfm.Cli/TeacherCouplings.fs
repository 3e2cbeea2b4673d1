/// Resolving teacher couplings (NFM) named on the command line.
module Nfm.Cli.TeacherCouplings

open Nfm.Cli.Common
open Nfm.Descriptions

let resolve (spec: CouplingSpec) : Nfm.Couple.Coupling =
    fail (sprintf "coupling '%s' needs the NFM teacher coupling" (spec.Format()))
