"""Particles from one 4D-STEM scan (issue 17): recall, precision and 3D error against the truth.

Run:  python benchmarks/bench_particles_4dstem.py              (5 seeds per setting)
      python benchmarks/bench_particles_4dstem.py --seeds 1    (a smoke test)
      python benchmarks/bench_particles_4dstem.py --settings "unequal distances" "equal, r 3"

Each seed: ``synth.fourdstem_particles.simulate_4dstem_particles`` -- 80 hard spheres (core radius
3-5 px, contact 12 px) in a slab 60 px thick, scan 128 x 128, detector 32 x 32 with the direct disc of
radius 12 px at 70 mrad, scan rotation 25 degrees; every bright-field detector pixel sees the
particles from its own direction, with Poisson noise at ``dose`` electrons per detector pixel per
probe position. The direct disc is found on the mean pattern (as ``stereo-tem particles --4dstem``
does, so the calibration carries its own error), four discs of radius 4 px are placed at 7 px from
its centre (``fourdstem.quadrants.quadrant_discs``), and
``fourdstem.quadrants.particles_from_4dstem`` makes the four virtual images in one pass and runs the
four-view particle workflow with beta and the azimuths from the disc positions. The settings
``unequal distances`` puts the four discs (radius 3 px) at 0.6, 0.75, 0.9 and 1.0 of 7 px from the
centre, so every view has its own beta (4.2 px: 1.40 deg ... 7 px: 2.34 deg); ``equal, r 3`` is the
same scan with the four discs of radius 3 px at 7 px, for comparison. Scores
(``particles.score_particles``): 3 px 3D tolerance after one global depth offset; particles whose
every view lies at least 6 px inside the scan count.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

SETTINGS = {"dose 20": {"dose": 20.0}, "dose 5": {"dose": 5.0},
            "equal, r 3": {"dose": 20.0, "disc_radius": 3.0},
            "unequal distances": {"dose": 20.0, "disc_radius": 3.0, "fractions": (0.6, 0.75, 0.9, 1.0)}}


def one(seed, *, dose, disc_radius=4.0, fractions=None):
    from napari_stereo_tem.fourdstem import Disc, calibrate, mean_pattern
    from napari_stereo_tem.fourdstem.quadrants import particles_from_4dstem, quadrant_discs
    from napari_stereo_tem.particles import score_particles
    from napari_stereo_tem.synth.fourdstem_particles import simulate_4dstem_particles

    rotation = 25.0
    scan = simulate_4dstem_particles(seed=seed, n_particles=80, scan_shape=(128, 128), detector_shape=(32, 32),
                                     disc_radius_px=12.0, convergence_mrad=70.0, dose=dose,
                                     scan_rotation_deg=rotation, slab_thickness_px=60.0)
    t0 = time.perf_counter()
    calibration = calibrate(mean_pattern(scan.data, executor="inline"), convergence_mrad=70.0)
    direct = calibration.direct
    if fractions is None:
        discs = quadrant_discs(direct, 7.0, disc_radius)
    else:  # quadrants at different distances from the centre: one beta per view
        discs = [Disc(direct.cy + 7.0 * f * np.sin(np.pi / 2 * i), direct.cx + 7.0 * f * np.cos(np.pi / 2 * i),
                      disc_radius) for i, f in enumerate(fractions)]
    out = particles_from_4dstem(scan.data, discs, direct, mrad_per_px=calibration.mrad_per_px,
                                scan_rotation_deg=rotation, radius_range=(2.0, 7.0))
    seconds = time.perf_counter() - t0
    rec = out.result.reconstruction
    score = score_particles(rec.points[rec.all_views], scan.positions, shape=(128, 128), beta_deg=out.beta_deg,
                            azimuths_deg=out.azimuths_deg, margin=6)
    true_beta = [float(np.rad2deg(np.hypot(d.cy - scan.centre[0], d.cx - scan.centre[1]) * scan.mrad_per_px * 1e-3))
                 for d in discs]
    return {**score, "seconds": seconds, "beta": np.atleast_1d(out.beta_deg), "true_beta": np.array(true_beta)}


def _angles(values):
    values = np.unique(np.round(values, 3))
    return ", ".join(f"{v:.3f}" for v in values)


def main():
    import torch

    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=9_340_000)
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    args = parser.parse_args()
    print("| setting | seed | recall | precision | 3D RMSE px | xy RMSE px | z RMSE px | beta used / true (deg) "
          "| n true | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.settings:
        setting = SETTINGS[name]
        rows = []
        for s in range(args.seeds):
            row = one(args.first_seed + s, **setting)
            rows.append(row)
            print(f"| {name} | {args.first_seed + s} | {row['recall']:.3f} | {row['precision']:.3f} | "
                  f"{row['rmse_3d']:.2f} | {row['rmse_xy']:.2f} | {row['rmse_z']:.2f} | "
                  f"{_angles(row['beta'])} / {_angles(row['true_beta'])} | {row['n_true']} | {row['seconds']:.1f} |",
                  flush=True)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in ("recall", "precision", "rmse_3d", "rmse_z")}
        worst = {k: float(np.min([r[k] for r in rows])) for k in ("recall", "precision")}
        print(f"| {name} | mean | {mean['recall']:.3f} (min {worst['recall']:.3f}) | {mean['precision']:.3f} "
              f"(min {worst['precision']:.3f}) | {mean['rmse_3d']:.2f} | | {mean['rmse_z']:.2f} | | | |", flush=True)


if __name__ == "__main__":
    main()
