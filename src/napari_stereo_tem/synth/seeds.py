"""Seed ranges of the synthetic data: train, validation and a held-out test range.

Every synthetic scene is fully determined by one integer seed. The ranges are
disjoint, so a scene used to measure accuracy is never one a network saw in
training:

========== ======================= ==========================================
split      seeds                   used by
========== ======================= ==========================================
train      ``0 .. 4_999_999``      :func:`~.dataset.build_training_set`,
                                   training and fine-tuning
val        ``5_000_000 .. 8_999_999`` model selection during training
test       ``9_000_000 .. 9_999_999`` evaluation and benchmarks only; training
                                   code must never draw from it
========== ======================= ==========================================
"""

from __future__ import annotations

import numpy as np

from ..checks import InputError

__all__ = ["TRAIN_SEEDS", "VAL_SEEDS", "TEST_SEEDS", "SPLITS", "split_of_seed", "draw_seeds", "check_seed"]

#: Seeds for training scenes.
TRAIN_SEEDS = range(0, 5_000_000)
#: Seeds for validation scenes (model selection).
VAL_SEEDS = range(5_000_000, 9_000_000)
#: Held-out seeds for evaluation and benchmarks; training never touches them.
TEST_SEEDS = range(9_000_000, 10_000_000)

#: The three ranges by split name.
SPLITS: dict[str, range] = {"train": TRAIN_SEEDS, "val": VAL_SEEDS, "test": TEST_SEEDS}


def check_seed(seed) -> int:
    """Return ``seed`` as an int after checking it is a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def split_of_seed(seed: int) -> str:
    """Name of the split (``"train"``, ``"val"`` or ``"test"``) that ``seed`` belongs to."""
    for name, seeds in SPLITS.items():
        if int(seed) in seeds:
            return name
    raise InputError(f"seed {seed} lies outside every split; use 0 <= seed < {TEST_SEEDS.stop}")


def draw_seeds(split: str, n: int, *, seed: int = 0) -> list[int]:
    """Draw ``n`` distinct seeds of ``split``, reproducibly from ``seed``.

    Parameters
    ----------
    split : {"train", "val", "test"}
    n : int
        How many seeds (at most the size of the range).
    seed : int
        Seed of the draw itself.

    Returns
    -------
    list of int
        Distinct seeds, all inside ``SPLITS[split]``.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    seeds = SPLITS[split]
    n = int(n)
    if n < 0 or n > len(seeds):
        raise InputError(f"cannot draw {n} seeds from the {split} range of {len(seeds)}")
    rng = np.random.default_rng([int(seed), list(SPLITS).index(split)])
    # Sampling with a set keeps memory small for large ranges.
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < n:
        for value in rng.integers(seeds.start, seeds.stop, size=2 * (n - len(chosen)) + 8):
            value = int(value)
            if value not in seen:
                seen.add(value)
                chosen.append(value)
                if len(chosen) == n:
                    break
    return chosen
