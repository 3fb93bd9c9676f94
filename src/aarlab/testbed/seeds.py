"""The seed policy in one place: which seeds verification uses, how many of them are ablated, where
per-result seeds are drawn from, and the offsets that keep an ablation's random draws apart from the
run it ablates.

Every module that needs one of these numbers imports it from here (the verifier, the server's worker
and per-result seed draw, the CLI, the orchestrator, the testbed's ablations).
"""

from __future__ import annotations

#: The first verification seed when seeds are given, not drawn (reproductions, benchmarks).
FIRST_VERIFY_SEED = 1001
#: How many verification seeds are re-run a second time per ablation (the rest run only normally).
ABLATION_SEEDS = 2
#: Per-result verification seeds come from a secret per-task pool of SEED_POOL_SIZE seeds drawn from
#: [SEED_POOL_LOW, SEED_POOL_HIGH): unpredictable to agents, and few enough that the trusted side
#: prepares each seed's teacher and ceiling once, ahead of the results that use it.
SEED_POOL_LOW, SEED_POOL_HIGH = 10_000, 2**31 - 1
SEED_POOL_SIZE = 32
#: Offset of the random stream that builds the student ablation of seed ``s`` (``s + STUDENT_OFFSET``).
STUDENT_ABLATION_OFFSET = 10_000
#: Offset of the random stream that builds the teacher ablations of seed ``s``.
TEACHER_ABLATION_OFFSET = 20_000


def verify_seeds(n: int, first: int = FIRST_VERIFY_SEED) -> tuple[int, ...]:
    """``n`` consecutive verification seeds from ``first`` (raises ``ValueError`` when ``n < 1``)."""
    if n < 1:
        raise ValueError(f"verification needs at least one seed, got {n}")
    return tuple(range(first, first + n))


def ablation_seed_count(n_seeds: int) -> int:
    """How many of ``n_seeds`` verification seeds also run every ablation."""
    return min(ABLATION_SEEDS, n_seeds)
