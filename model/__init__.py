"""asyncspec.model: the symbolic (z3) reading of the spec machines.

Nothing here restates the spec.  `symbolic` runs the spec's own Python on
z3 values, one run per feasible path (`Explorer`), and `machine` builds on
it: transition summaries of a machine's actions, inductive invariants
(with a counterexample to induction when one exists) and bounded model
checking from the initial state or from every state satisfying a formula.

So far (see tests/test_model.py): the waker machine's shape, reference
count, freed and run-queue invariants are proved inductive for its steps,
and the AtomicWaker's no-lost-wake-up property (WAK-AW-4) is proved for
every interleaving of a full register/take round from every well-formed
round start; the fiber layout's alignment facts are proved for every
64-bit address with the layout's own z3 reading (tests/test_fiber_spec.py).
"""
