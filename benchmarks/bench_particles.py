"""Nanoparticle workflow figures (issue 8): detection + matching accuracy, g(r) and its speed.

Run:  python benchmarks/bench_particles.py            (full: 400 and 1000 particles, beta 1.5/2/3)
      python benchmarks/bench_particles.py --quick    (smaller images, for a smoke test)

Synthetic sets (``synth.particles``, held-out seeds 9_000_000+): hard spheres of contact
diameter 14 px (core radii 3-6 px) in a slab 60 px thick, four views at azimuths
0/90/180/270, bright-field contrast 0.08 per px of projected thickness, Poisson shot noise
at ``--dose`` electrons per pixel. Field of view sized for the thesis's particle density
(about 1300 particles per 2048^2 image): 400 particles on 1280^2, 1000 on 2048^2.
Scores: 3 px 3D tolerance after one global depth offset; particles whose every view lies
at least 8 px inside the image count (particles cut by the field edge are not scored).

g(r) first peak: at that density a 60 px slab holds too few pairs at contact for a peak to
stand above the noise, so g(r) is compared on a dense thin film as well: 2500 particles on
1024^2 in a 12 px slab (g(r) 2 px bins, r_max 40 px), same noise and betas.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_stereo_tem.particles import radial_distribution, reconstruct_particles, score_particles
from napari_stereo_tem.particles.rdf import first_peak, shell_volume_inside
from napari_stereo_tem.synth.particles import hard_sphere_positions, simulate_particle_views


def brute_force_rdf(points, r_max, n_bins, bounds):
    """All n^2 distances (numpy, no tree) with the same edge correction."""
    edges = np.linspace(0, r_max, n_bins + 1)
    diff = points[:, None, :] - points[None, :, :]
    dist = np.sqrt(np.sum(diff ** 2, axis=2))[~np.eye(len(points), dtype=bool)]
    counts = np.histogram(dist[dist < r_max], bins=edges)[0].astype(float)
    rho = (len(points) - 1) / np.prod(bounds[:, 1] - bounds[:, 0])
    return counts / (rho * shell_volume_inside(points, edges, bounds))


def accuracy(n, size, beta, dose, slab, seed, refine=True):
    t0 = time.perf_counter()
    sample = simulate_particle_views(n, seed=seed, beta_deg=beta, shape=(size, size), dose=dose,
                                     slab_thickness_px=slab)
    t1 = time.perf_counter()
    rec = reconstruct_particles(list(sample.views), beta_deg=beta, refine=refine).reconstruction
    t2 = time.perf_counter()
    score = score_particles(rec.points, sample.positions, tolerance=3.0, shape=(size, size), beta_deg=beta,
                            margin=8.0)
    bounds = np.array([[0, size], [0, size], [-slab / 2, slab / 2]], float)
    r, g_true = radial_distribution(sample.positions, r_max=40.0, n_bins=20, box=bounds)  # 2 px bins
    z = rec.points[:, 2] - score["depth_offset"]
    rec_pts = np.column_stack([rec.points[:, :2], z])
    _, g_rec = radial_distribution(rec_pts, r_max=40.0, n_bins=20, box=bounds)
    return {"n": n, "size": size, "beta": beta, "recall": score["recall"], "precision": score["precision"],
            "rmse_3d": score["rmse_3d"], "rmse_z": score["rmse_z"], "counts": rec.counts,
            "peak_true": first_peak(r, g_true), "peak_rec": first_peak(r, g_rec), "bin": r[1] - r[0],
            "t_sim": t1 - t0, "t_run": t2 - t1, "split": rec.params.get("refinement", {}).get("split_in_two", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller images (a smoke test)")
    parser.add_argument("--dose", type=float, default=2000.0, help="electrons per pixel (default 2000)")
    parser.add_argument("--slab", type=float, default=60.0, help="slab of the two sparse sets, px (default 60)")
    parser.add_argument("--no-refine", dest="refine", action="store_false",
                        help="score the matched positions without the fit to the views")
    args = parser.parse_args()
    # (particles, image size, slab, whether g(r)'s first peak is judged: only on the thin film)
    sets = [(400, 1280, args.slab, False), (1000, 2048, args.slab, False), (2500, 1024, 12.0, True)]
    if args.quick:
        sets = [(100, 640, args.slab, False), (250, 1024, args.slab, False), (600, 512, 12.0, True)]
    betas = (1.5, 2.0, 3.0)

    print(f"== reconstruct_particles (detect, match{', fit to the views' if args.refine else ''}), "
          f"dose {args.dose:g} e/px ==")
    print("n     image slab  beta  recall  precision  rmse3d  rmse_z  4-view  3-view  split  g(r) peak true/rec (bin)  "
          "time")
    ok = True
    for n, size, slab, judge_rdf in sets:
        for beta in betas:
            res = accuracy(n, size, beta, args.dose, slab, seed=9_000_100 + n + int(10 * beta), refine=args.refine)
            c = res["counts"]
            within = abs(res["peak_true"] - res["peak_rec"]) <= res["bin"] + 1e-9
            ok &= res["recall"] >= 0.99 and res["precision"] >= 0.99 and res["rmse_3d"] <= 1.0
            ok &= within or not judge_rdf
            print(f"{n:<5d} {size:>5d} {slab:4.0f}  {beta:4.1f}  {res['recall']:.4f}  {res['precision']:.4f}     "
                  f"{res['rmse_3d']:.3f}   {res['rmse_z']:.3f}   {c['matched_all_views']:5d}  "
                  f"{c['matched_three_views']:5d}  {res['split']:5d}   {res['peak_true']:5.1f} / "
                  f"{res['peak_rec']:5.1f} ({res['bin']:.0f})          {res['t_run']:5.1f}s")

    print("\n== g(r): cKDTree vs brute force (n^2), thin slab, 30 bins ==")
    rng = np.random.default_rng(9_000_200)
    bounds = np.array([[0.0, 300.0], [0.0, 300.0], [-15.0, 15.0]])
    pts = bounds[:, 0] + rng.random((1500, 3)) * (bounds[:, 1] - bounds[:, 0])
    _, g_fast = radial_distribution(pts, r_max=60.0, n_bins=30, box=bounds)
    g_ref = brute_force_rdf(pts, 60.0, 30, bounds)
    diff = float(np.max(np.abs(g_fast - g_ref)))
    ok &= diff <= 1e-6
    print(f"max |g_fast - g_brute| per bin = {diff:.2e} (1500 points)")

    print("\n== g(r) speed: 15,000 hard spheres in 2048 x 2048 x 200 px, r_max 60 px, 60 bins ==")
    pts = hard_sphere_positions(15_000, box=(2048, 2048, 200), contact=14.0, seed=9_000_300)
    bounds = np.array([[0, 2048], [0, 2048], [-100, 100]], float)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        r, g = radial_distribution(pts, r_max=60.0, n_bins=60, box=bounds)
        times.append(time.perf_counter() - t)
    ok &= min(times) <= 0.5
    print(f"best of 5: {min(times):.3f} s (median {np.median(times):.3f} s); first peak at {first_peak(r, g):.1f} px")
    print("\nALL TARGETS MET" if ok else "\nSOME TARGETS MISSED (see above)")


if __name__ == "__main__":
    main()
