"""The formal layer: a symbolic (z3) reading of the machines in `asyncspec.spec`.

The spec is written with the operators of `asyncspec.spec.logic` so that it
can be read with z3 terms as well as plain values; proofs and bounded model
checking live here.
"""
