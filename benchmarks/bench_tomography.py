"""The thesis's Fig. 3.8 on a synthetic specimen: stereo from 2 views against WBP and SART from n views.

One held-out dislocation specimen (:func:`napari_stereo_tem.evaluation.tomography.tomography_specimen`:
no distractors, foil 60 px) is rendered at 45 tilts over (-48, 50) degrees with Poisson
noise (1000 e/px per view); n = 2, 4, 8, 16, 45 views are sampled at regular index steps
and reconstructed slice by slice with scikit-image ``iradon`` (ramp-filtered back-projection,
WBP) and ``iradon_sart`` (3 sweeps). Lines are read from each tomogram and every method is
scored with the same 3D line metric (symmetric mean distance, px, global depth offset
removed). Stereo uses an 8-degree pair of the same specimen: from the true 2D lines and
disparities (an upper bound) and with the shipped networks (when their weights exist).

Run::

    python benchmarks/bench_tomography.py [--seed 9000123] [--seeds 3] [--size 128] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def markdown(rows) -> str:
    text = ("| method | views | symmetric mean (px) | median (px) | depth error (px) | pred->true | true->pred "
            "| seconds |\n|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        if "mean" not in r:
            text += f"| {r['method']} | {r['n_views']} | n/a ({r.get('note', '')}) | | | | | |\n"
            continue
        text += (f"| {r['method']} | {r['n_views']} | {r['mean']:.2f} | {r['median']:.2f} | {r['depth_mean']:.2f} "
                 f"| {r['mean_pred_to_true']:.2f} | {r['mean_true_to_pred']:.2f} | {r['seconds']:.1f} |\n")
    return text


def verdict(rows) -> dict:
    """Is stereo from 2 views lower than both WBP and SART for every n <= 8?"""
    tomo = [r for r in rows if r["method"] in ("wbp", "sirt") and r["n_views"] <= 8 and "mean" in r]
    best_tomo = min((r["mean"] for r in tomo), default=float("nan"))
    out = {"best_tomography_n_le_8": best_tomo}
    for r in rows:
        if r["method"].startswith("stereo") and "mean" in r:
            out[r["method"]] = {"mean": r["mean"], "beats_all_tomography_n_le_8": bool(r["mean"] < best_tomo)}
    return out


def _print_verdict(v) -> None:
    for method, item in v.items():
        if isinstance(item, dict):
            print(f"- {method}: {item['mean']:.2f} px vs the best WBP/SART with n <= 8: "
                  f"{v['best_tomography_n_le_8']:.2f} px -> "
                  f"{'stereo lower' if item['beats_all_tomography_n_le_8'] else 'stereo NOT lower'}")


def _mean_rows(per_seed) -> list:
    """Mean of each numeric field of each (method, n_views) row over specimens."""
    out = []
    for row in per_seed[0]:
        same = [r for rows in per_seed for r in rows if (r["method"], r["n_views"]) == (row["method"], row["n_views"])]
        merged = dict(row)
        for key, val in row.items():
            if isinstance(val, float):
                merged[key] = float(sum(r[key] for r in same) / len(same))
        out.append(merged)
    return out


def main(argv=None) -> dict:
    from napari_stereo_tem.evaluation.tomography import compare_tomography

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=9_000_123)
    parser.add_argument("--seeds", type=int, default=1, help="number of specimens (seed, seed + 1, ...); "
                        "with more than one, the mean table follows the per-specimen ones")
    parser.add_argument("--size", type=int, default=128, help="rows; columns are size + 1 (odd)")
    parser.add_argument("--views", default="2,4,8,16,45")
    parser.add_argument("--sirt-iterations", type=int, default=3)
    parser.add_argument("--angle", type=float, default=8.0, help="stereo angle, degrees")
    parser.add_argument("--dose", type=float, default=1000.0)
    parser.add_argument("--no-pipeline", action="store_true", help="skip the stereo pipeline row")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--matcher", default=None, help="matcher version or path (default the shipped one)")
    parser.add_argument("--quick", action="store_true", help="64-pixel specimen")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.size = 64
    t0 = time.perf_counter()
    runs = []
    for k in range(args.seeds):
        res = compare_tomography(args.seed + k, shape=(args.size, args.size + 1),
                                 n_views=tuple(int(v) for v in args.views.split(",")),
                                 sirt_iterations=args.sirt_iterations, stereo_angle_deg=args.angle, dose=args.dose,
                                 pipeline=not args.no_pipeline, n_threads=args.threads, matcher=args.matcher,
                                 foil_thickness=60.0 if args.size >= 96 else 30.0)
        res["verdict"] = verdict(res["rows"])
        runs.append(res)
        p = res["params"]
        print(f"Specimen seed {p['seed']}, {p['shape'][0]}x{p['shape'][1]} px, foil {p['foil_thickness']:g} px, "
              f"{p['n_true_lines']} true lines in view; series of {p['n_series']} over {p['tilt_range_deg']} deg, "
              f"dose {p['dose']:g} e/px per view; SART {p['sirt_iterations']} sweeps; stereo at "
              f"{p['stereo_angle_deg']:g} deg; scored {p['edge_margin']:g} px inside the edges, depth offset "
              f"{'removed' if p['remove_depth_offset'] else 'kept'}.\n")
        print(markdown(res["rows"]))
        _print_verdict(res["verdict"])
    out = runs[0] if len(runs) == 1 else {"rows": _mean_rows([r["rows"] for r in runs]),
                                           "per_seed": runs, "params": runs[0]["params"]}
    if len(runs) > 1:
        out["verdict"] = verdict(out["rows"])
        print(f"\nMean over the {len(runs)} specimens:\n")
        print(markdown(out["rows"]))
        _print_verdict(out["verdict"])
        wins = {m: sum(r["verdict"].get(m, {}).get("beats_all_tomography_n_le_8", False) for r in runs)
                for m in ("stereo (truth disparity)", "stereo (pipeline)")}
        print("- specimens where stereo is lower than every WBP/SART with n <= 8: "
              + ", ".join(f"{m} {w}/{len(runs)}" for m, w in wins.items()))
    out["wall_s"] = time.perf_counter() - t0
    print(f"\nwall time {out['wall_s']:.0f} s")
    res = out
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(res, handle, indent=1)
    print("RESULT " + json.dumps(res))
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
