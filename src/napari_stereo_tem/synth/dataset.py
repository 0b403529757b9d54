"""Build a synthetic training set on disk: train/val/test splits from disjoint seed ranges.

Layout (also written to ``DIR/README.md`` and, machine-readable, ``DIR/layout.json``)::

    DIR/
      layout.json          format version, pair options, seeds of every split
      README.md            this description
      train/index.csv      name,seed   (one row per scene)
      train/<name>/        one stereo sample (see napari_stereo_tem.synth.stereo):
                           left.tif right.tif mask_left.tif mask_right.tif
                           disparity_left.tif disparity_right.tif lines_3d.csv params.json
      val/...              same, seeds from VAL_SEEDS
      test/...             same, seeds from TEST_SEEDS (held out: training never reads them)

``<name>`` is ``<index:06d>_s<seed>``. Train and val scenes draw their seeds from
:data:`~.seeds.TRAIN_SEEDS` and :data:`~.seeds.VAL_SEEDS`, test scenes from
:data:`~.seeds.TEST_SEEDS`. Each scene is written into a hidden temporary
folder and renamed when complete, so an interrupted build leaves only complete
scenes; running the same build again skips them (the same seed gives the same
bytes).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..checks import InputError
from ..progress import Progress, ProgressGenerator
from .seeds import SPLITS, draw_seeds
from .stereo import GENERATOR_VERSION, make_stereo_pair

__all__ = ["build_training_set", "split_counts", "LAYOUT_VERSION"]

#: Version of the folder layout described in the module docstring.
LAYOUT_VERSION = 1


def split_counts(n_scenes: int, splits=(0.8, 0.1, 0.1)) -> dict[str, int]:
    """Scenes per split (largest remainder, summing to ``n_scenes``)."""
    fractions = np.asarray(splits, dtype=float)
    if fractions.shape != (3,) or np.any(fractions < 0) or not np.isfinite(fractions).all() or fractions.sum() <= 0:
        raise InputError(f"splits must be three non-negative fractions (train, val, test), got {splits}")
    if int(n_scenes) < 1:
        raise InputError(f"n_scenes must be at least 1, got {n_scenes}")
    exact = fractions / fractions.sum() * int(n_scenes)
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: int(n_scenes) - counts.sum()]:
        counts[i] += 1
    return dict(zip(SPLITS, (int(c) for c in counts)))


def _json_options(options: dict) -> dict:
    clean = {}
    for key, value in options.items():
        if isinstance(value, np.ndarray):
            clean[key] = {"patch_shape": list(value.shape)}
        elif isinstance(value, tuple):
            clean[key] = list(value)
        else:
            clean[key] = value
    return clean


def build_training_set(directory, n_scenes: int, *, seed: int = 0, splits=(0.8, 0.1, 0.1),
                       **pair_options) -> ProgressGenerator[Path]:
    """Write ``n_scenes`` synthetic stereo samples into ``directory`` (a progress generator).

    Parameters
    ----------
    directory : str or Path
        Created if needed; see the module docstring for the layout.
    n_scenes : int
        Total number of scenes over the three splits.
    seed : int
        Seed of the seed draw: the same ``seed`` and counts give the same scenes.
    splits : (train, val, test)
        Fractions of ``n_scenes``.
    **pair_options
        Passed to :func:`~.stereo.make_stereo_pair` (``shape``, ``stereo_angle_deg``, ...).

    Yields
    ------
    Progress
        One per scene, stage ``"synth"``.

    Returns
    -------
    Path
        ``directory``.
    """
    folder = Path(directory)
    counts = split_counts(n_scenes, splits)
    seeds = {split: draw_seeds(split, count, seed=seed) for split, count in counts.items()}
    layout = {"layout_version": LAYOUT_VERSION, "generator_version": GENERATOR_VERSION,
              "n_scenes": int(n_scenes), "seed": int(seed), "splits": dict(zip(SPLITS, map(float, splits))),
              "counts": counts, "pair_options": _json_options(pair_options),
              "seed_ranges": {k: [v.start, v.stop] for k, v in SPLITS.items()}, "seeds": seeds,
              "files": ["left.tif", "right.tif", "mask_left.tif", "mask_right.tif", "disparity_left.tif",
                        "disparity_right.tif", "lines_3d.csv", "params.json"]}
    layout_path = folder / "layout.json"
    if layout_path.exists():
        old = json.loads(layout_path.read_text())
        if {k: old.get(k) for k in layout} != json.loads(json.dumps(layout)):
            raise InputError(f"{folder} already holds a different training set; choose an empty folder")
    folder.mkdir(parents=True, exist_ok=True)
    layout_path.write_text(json.dumps(layout, indent=1))
    (folder / "README.md").write_text("# Synthetic stereo training set (napari-stereo-tem)\n\n" + __doc__)
    total, done = int(n_scenes), 0
    for split, split_seeds in seeds.items():
        sub = folder / split
        sub.mkdir(exist_ok=True)
        rows = ["name,seed"]
        for index, scene_seed in enumerate(split_seeds):
            name = f"{index:06d}_s{scene_seed}"
            rows.append(f"{name},{scene_seed}")
            target = sub / name
            if not (target / "params.json").exists():
                tmp = sub / f".{name}.partial"
                shutil.rmtree(tmp, ignore_errors=True)
                make_stereo_pair(scene_seed, **pair_options).save(tmp)
                shutil.rmtree(target, ignore_errors=True)
                tmp.rename(target)
            done += 1
            yield Progress(done, total, "synth", {"split": split})
        (sub / "index.csv").write_text("\n".join(rows) + "\n")
    return folder
