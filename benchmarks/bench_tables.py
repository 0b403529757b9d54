"""The paper's Tables 1 and 2 on held-out synthetic pairs (issue 11).

Table 1: depth error (px) against the stereo angle (2, 4, 6, 8, 10, 12 degrees),
without and with the refinement of DESIGN 3.5, with the shipped weights. Two
figures per angle, over ``--n`` pairs from ``TEST_SEEDS`` (already rectified,
``--size`` square, rectification skipped so the depth origin is the true one):

- ``pixel``: mean ``|z - z_gt|`` over the ground-truth left dislocation pixels
  (matching alone; the paper's measure);
- ``lines``: the depth error of the whole pipeline's 3D lines
  (:func:`napari_stereo_tem.evaluation.line_set_distance`, ``depth_mean``: detected
  lines, each point's depth against the true line nearest in ``(x, y)``), and the
  symmetric mean 3D distance.

Table 2: the loss-term ablation. One matcher is trained per loss setting
(disp, disp+var, disp+warp, disp+var+warp, warp) with
:func:`napari_stereo_tem.training.matcher.train_matcher`, every row with the
same seed, data and budget (``--budget`` steps), then scored on ``--table2-n``
held-out 8-degree pairs: EPE and the share of dislocation pixels off by more
than 1/3/5 px (raw network disparity, ground-truth masks, as in the paper).
The paper trained for far longer; a small budget ranks the settings only roughly.

Run::

    python benchmarks/bench_tables.py --table1 --n 4
    python benchmarks/bench_tables.py --table2 --budget 300 --json benchmarks/results/table2.json
    python benchmarks/bench_tables.py --table2 --from-json benchmarks/results/table2.json   # print a saved run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ANGLES = (2, 4, 6, 8, 10, 12)
#: Table 2 rows: name -> (g_disp, g_var, g_warp).
LOSSES = {"disp+var+warp": (1.0, 0.1, 1.0), "disp+var": (1.0, 0.1, 0.0), "disp+warp": (1.0, 0.0, 1.0),
          "disp": (1.0, 0.0, 0.0), "warp": (0.0, 0.0, 1.0)}
PAPER_T1 = {"raw": (18.3, 21.5, 15.0, 14.6, 22.2, 28.4), "refined": (18.0, 20.1, 14.7, 13.2, 21.8, 29.9)}
PAPER_T2_GAN = {"disp+var+warp": (40.1, 8.3, 3.5, 1.112), "disp+var": (40.3, 8.5, 3.5, 1.120),
                "disp+warp": (41.0, 8.6, 3.8, 1.238), "disp": (52.1, 9.4, 4.4, 1.852), "warp": (81.6, 55.3, 30.2, 5.034)}


def _pairs(n, angle, size, seed):
    from napari_stereo_tem.synth import make_stereo_pair
    from napari_stereo_tem.synth.seeds import draw_seeds

    found = 0
    for s in draw_seeds("test", 4 * n + 4, seed=seed):
        sample = make_stereo_pair(int(s), shape=(size, size), stereo_angle_deg=float(angle))
        if sample.lines_3d and (sample.mask_left == 1).any():  # a small crop can hold no line at all
            found += 1
            yield sample
            if found == n:
                return


def table1(*, n, size, weights="default", detector="default", angles=ANGLES, threads=2):
    from napari_stereo_tem.evaluation import line_set_distance
    from napari_stereo_tem.stereo.matching import load_matcher
    from napari_stereo_tem.stereo.projection import depth_from_disparity
    from napari_stereo_tem.stereo.pipeline import lines_from_disparity, reconstruct
    from napari_stereo_tem.models.store import load_detector

    matcher, det = load_matcher(weights), load_detector(detector)
    rows = {}
    for angle in angles:
        acc = {k: [] for k in ("pix_raw", "pix_ref", "line_raw", "line_ref", "sym_raw", "sym_ref")}
        for sample in _pairs(n, angle, size, seed=11):
            rec = reconstruct(sample.left, sample.right, stereo_angle_deg=float(angle), rectify=False,
                              detector=det, matcher=matcher, n_threads=threads)
            m = (sample.mask_left == 1) & np.isfinite(sample.disparity_left)
            z_gt = depth_from_disparity(sample.disparity_left[m], angle)
            acc["pix_raw"].append(np.abs(depth_from_disparity(rec.disparity[m], angle) - z_gt))
            # the refined disparity lives on detected pixels: score it where those meet the truth
            zr = depth_from_disparity(rec.disparity_refined[m], angle)
            acc["pix_ref"].append(np.abs(zr - z_gt)[np.isfinite(zr)])
            raw_lines = lines_from_disparity(rec.labels_left == 1, np.where(rec.labels_left == 1, rec.disparity,
                                                                            np.nan), float(angle))
            for key, lines in (("raw", raw_lines), ("ref", rec.lines)):
                d = line_set_distance(lines, sample.lines_3d)
                acc[f"line_{key}"].append(d["depth_mean"])
                acc[f"sym_{key}"].append(d["mean"])
        rows[str(angle)] = {
            "pixel_raw": float(np.mean(np.concatenate(acc["pix_raw"]))),
            "pixel_refined": float(np.mean(np.concatenate(acc["pix_ref"]))) if any(len(a) for a in acc["pix_ref"])
            else float("nan"),
            "lines_raw": float(np.nanmean(acc["line_raw"])), "lines_refined": float(np.nanmean(acc["line_ref"])),
            "sym3d_raw": float(np.nanmean(acc["sym_raw"])), "sym3d_refined": float(np.nanmean(acc["sym_ref"]))}
        print(f"  table1 {angle:>2} deg: {json.dumps({k: round(v, 2) for k, v in rows[str(angle)].items()})}",
              file=sys.stderr, flush=True)
    return {"n_pairs": n, "size": size, "matcher": getattr(matcher, "version", weights),
            "detector": getattr(det, "version", detector), "rows": rows}


def train_row(name, *, budget, work, seed=0, threads=1, crop=(96, 128)):
    from napari_stereo_tem.progress import drive
    from napari_stereo_tem.training.matcher import train_matcher

    g_disp, g_var, g_warp = LOSSES[name]
    out = Path(work) / f"ablation_{name.replace('+', '_')}"
    t0 = time.perf_counter()
    res = drive(train_matcher(out_path=out, steps=int(budget), batch_size=4, crop=crop, seed=seed,
                              g_disp=g_disp, g_var=g_var, g_warp=g_warp, angle_range=(8.0, 8.0),
                              scene_shape=(256, 256), pool_size=8, refresh_every=4, val_every=int(budget),
                              n_val=2, n_threads=threads, command=f"bench_tables.py table2 row {name}"),
                on_progress=lambda p: p.stage == "train" and p.done % 50 == 0 and print(
                    f"    {name} step {p.done}/{p.total} {time.strftime('%H:%M:%S')}", file=sys.stderr, flush=True))
    return Path(res["out_path"]), time.perf_counter() - t0


def score_matcher(path, *, n, size):
    from napari_stereo_tem.stereo.matching import disparity_metrics, load_matcher, predict_disparity
    from napari_stereo_tem.training.matcher import prepare_pair

    model = load_matcher(str(path))
    preds, truths = [], []
    for sample in _pairs(n, 8.0, size, seed=12):
        p = prepare_pair(sample)
        d, _ = predict_disparity(p["left"], p["right"], model)
        m = p["mask_left"] & np.isfinite(p["disparity"])
        preds.append(d[m])
        truths.append(p["disparity"][m])
    return disparity_metrics(np.concatenate(preds)[None], np.concatenate(truths)[None])


def table2(*, budget, n, size, work=None, threads=1, rows=tuple(LOSSES), save=None):
    """Train and score each row; ``save(out)`` is called after every row (partial results survive)."""
    out = {"budget_steps": int(budget), "n_pairs": n, "size": size, "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(work or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name in rows:
            path, seconds = train_row(name, budget=budget, work=folder, threads=threads)
            metrics = score_matcher(path, n=n, size=size)
            out["rows"][name] = {**metrics, "train_s": seconds}
            print(f"  table2 {name:<14} {json.dumps({k: round(v, 3) for k, v in out['rows'][name].items()})}",
                  file=sys.stderr, flush=True)
            if save is not None:
                save(out)
    return out


def markdown_table1(t1) -> str:
    head = "| | " + " | ".join(f"{a} deg" for a in ANGLES) + " |\n|---|" + "---|" * len(ANGLES) + "\n"
    rows = [("paper, raw 3D", PAPER_T1["raw"]), ("paper, refined 3D", PAPER_T1["refined"])]
    for key, label in (("pixel_raw", "ours, pixel depth error, raw"), ("pixel_refined", "ours, pixel, refined"),
                       ("lines_raw", "ours, 3D lines depth error, raw"), ("lines_refined", "ours, 3D lines, refined"),
                       ("sym3d_raw", "ours, 3D lines symmetric distance, raw"),
                       ("sym3d_refined", "ours, 3D lines symmetric, refined")):
        rows.append((label, [t1["rows"].get(str(a), {}).get(key, float("nan")) for a in ANGLES]))
    return head + "".join(f"| {label} | " + " | ".join(f"{v:.2f}" if v == v else "n/a" for v in vals) + " |\n"
                          for label, vals in rows)


def markdown_table2(t2) -> str:
    text = "| loss | >1 px % | >3 px % | >5 px % | EPE px | paper (GaN) EPE | train s |\n|---|---|---|---|---|---|---|\n"
    for name, r in t2["rows"].items():
        text += (f"| {name} | {r['gt1']:.1f} | {r['gt3']:.1f} | {r['gt5']:.1f} | {r['epe']:.3f} | "
                 f"{PAPER_T2_GAN[name][3]:.3f} | {r.get('train_s', float('nan')):.0f} |\n")
    return text


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table1", action="store_true")
    parser.add_argument("--table2", action="store_true")
    parser.add_argument("--n", type=int, default=4, help="Table 1: test pairs per angle")
    parser.add_argument("--size", type=int, default=256, help="square image side of the test pairs")
    parser.add_argument("--weights", default="default", help="matcher version or path for Table 1")
    parser.add_argument("--detector", default="default")
    parser.add_argument("--budget", type=int, default=300, help="Table 2: training steps per row")
    parser.add_argument("--table2-n", type=int, default=6, help="Table 2: held-out pairs")
    parser.add_argument("--rows", default=",".join(LOSSES), help="Table 2 rows to train")
    parser.add_argument("--work", default=None, help="Table 2: keep the trained weights here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--from-json", default=None, help="Table 2: print a saved run instead of training")
    parser.add_argument("--quick", action="store_true", help="Table 1 with 1 pair per angle at 128 px")
    args = parser.parse_args(argv)
    if not (args.table1 or args.table2):
        args.table1 = args.table2 = True
    if args.quick:
        args.n, args.size, args.budget, args.table2_n = 1, 128, min(args.budget, 20), 2
    import torch

    torch.set_num_threads(args.threads)
    result = {}
    if args.table1:
        from napari_stereo_tem.models.store import list_versions

        if args.weights == "default" and not any(v.startswith("matcher") for v in list_versions()):
            print("Table 1 skipped: no shipped matcher weights")
            result["table1"] = None
        else:
            t0 = time.perf_counter()
            result["table1"] = table1(n=args.n, size=args.size, weights=args.weights, detector=args.detector,
                                      threads=args.threads)
            result["table1"]["wall_s"] = time.perf_counter() - t0
            print("\nTable 1: depth error (px) vs stereo angle\n")
            print(markdown_table1(result["table1"]))
    if args.table2:
        if args.from_json:
            result["table2"] = json.loads(Path(args.from_json).read_text())["table2"]
            print(f"(Table 2 read from {args.from_json}, made by `{result['table2'].get('command', '?')}` "
                  f"in {result['table2'].get('wall_s', float('nan')) / 60:.0f} min)")
        else:
            t0 = time.perf_counter()
            command = "python benchmarks/bench_tables.py " + " ".join(sys.argv[1:] if argv is None else argv)

            def save(partial):
                if args.json:
                    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                    Path(args.json).write_text(json.dumps({"table2": {**partial, "command": command, "partial": True,
                                                                      "wall_s": time.perf_counter() - t0}}, indent=1))
            result["table2"] = table2(budget=args.budget, n=args.table2_n, size=args.size, work=args.work,
                                      threads=min(args.threads, 2), rows=tuple(args.rows.split(",")), save=save)
            result["table2"]["wall_s"] = time.perf_counter() - t0
            result["table2"]["command"] = command
        if result["table2"].get("partial"):
            print("(a partial run: only the rows below were finished)")
        print(f"\nTable 2: loss ablation, {result['table2']['budget_steps']} steps per row, "
              f"{result['table2']['n_pairs']} held-out 8-degree pairs\n")
        print(markdown_table2(result["table2"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print("RESULT " + json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
