"""Are the particles read as darker or brighter than the background the right way round (``polarity="auto"``)?

Each view of sparse and dense synthetic particle sets (doses 20 to 6000 e/px, weak contrast
included) is read as it is (dark particles, bright field) and inverted (bright particles, dark
field / HAADF) by :func:`napari_stereo_tem.particles.detection.resolve_polarity`; the printout counts
the wrong readings, per view and per set of four views.

Run::

    python benchmarks/bench_particle_polarity.py [--split test|val] [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
import time


def view_sets(split: str, seeds: int):
    """``(name, views)`` for the benchmark's particle sets."""
    from napari_stereo_tem.synth.particles import simulate_dense_particle_views, simulate_particle_views

    base = 5_180_000 if split == "val" else 9_180_000
    for seed in range(seeds):
        for name, options in (
                ("400 sparse, 2000 e/px", dict(n_particles=400, shape=(1280, 1280), beta_deg=2.0, dose=2000)),
                ("2500 in a thin slab, 2000 e/px", dict(n_particles=2500, shape=(1024, 1024), beta_deg=1.5,
                                                        slab_thickness_px=12, dose=2000)),
                ("60 sparse, 60 e/px", dict(n_particles=60, shape=(512, 512), dose=60)),
                ("60 sparse, 20 e/px", dict(n_particles=60, shape=(512, 512), dose=20))):
            yield name, simulate_particle_views(seed=base + seed, **options).views
        for dose in (20, 60, 600, 6000):
            yield f"400 dense, {dose} e/px", simulate_dense_particle_views(400, seed=base + 100 + seed, dose=dose).views
        for dose in (60, 600):
            yield (f"400 dense, weak contrast, {dose} e/px",
                   simulate_dense_particle_views(400, seed=base + 200 + 100 * (dose == 60) + seed, dose=dose,
                                                 contrast=0.04).views)


def main(argv=None) -> int:
    from napari_stereo_tem.particles.detection import resolve_polarity

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=["test", "val"])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    wrong_views = wrong_sets = n_views = n_sets = 0
    wrong_by_name: dict[str, int] = {}
    for name, views in view_sets(args.split, args.seeds):
        for truth, seen in (("dark", list(views)), ("bright", [v.max() - v for v in views])):
            n_sets += 1
            wrong_sets += resolve_polarity(seen, "auto") != truth
            for view in seen:
                n_views += 1
                wrong = resolve_polarity(view, "auto") != truth
                wrong_views += wrong
                wrong_by_name[name] = wrong_by_name.get(name, 0) + wrong
    print(f"polarity='auto' on {args.split} seeds: wrong on {wrong_views} of {n_views} views, "
          f"{wrong_sets} of {n_sets} sets of four views")
    for name, wrong in wrong_by_name.items():
        if wrong:
            print(f"  {name}: {wrong} views wrong")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
