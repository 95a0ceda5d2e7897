"""asyncspec.model: the symbolic (z3) reading of the spec machines.

Nothing here restates the spec.  `symbolic` runs the spec's own Python on
z3 values, one run per feasible path (`Explorer`); `machine` builds on it:
transition summaries of a machine's actions, inductive invariants (with a
counterexample to induction when one exists), step properties, bounded
model checking, and monitors (ghost state beside a machine's, for
properties of runs); `trace` holds a run z3 found as plain data (steps
with their observations: the conformance suite makes it a counterexample
file); `prove` runs the table behind `asyncspec prove`, whose rows are
each area's proof file, `proofs/<area>.py`.

The model reads the spec only: it imports nothing of the conformance
suite.  What is proved, and how, is that table (README: "What is proved").
"""
