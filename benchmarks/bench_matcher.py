"""Stereo matcher figures on held-out synthetic pairs (issue 6): accuracy, baseline, depth error, speed, RAM.

Usage::

    python benchmarks/bench_matcher.py                      # accuracy at 8 deg + SGBM + timing (2 threads)
    python benchmarks/bench_matcher.py --table1             # also depth error vs stereo angle
    python benchmarks/bench_matcher.py --weights PATH ...   # another matcher version
    python benchmarks/bench_matcher.py --ablation DIR --n 5 # Table 2 over the models in DIR

Pairs come from ``TEST_SEEDS`` only (never seen in training), 512x512, already
rectified (the generator renders on rows). Disparity figures are scored on the
ground-truth left dislocation pixels: EPE (mean |d - d_gt|, px) and the share of
pixels off by more than 1/3/5 px. "refined" snaps to the right dislocation
pixels (ground-truth masks, to isolate matching from detection; with
``--detector`` also with detected masks) and drops pixels without a candidate
(``coverage`` = share kept). StereoSGBM runs on the same images and is scored on
the same pixels. Timings: the whole ``reconstruct`` on one 512x512 pair in a
fresh process with 2 torch threads (median of warm runs; the first run, which
compiles skan's numba kernels, is reported apart), peak RSS of that process.
``cpu_s`` is the process CPU time (all threads): on a shared machine the wall
time also holds the time spent waiting for a core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np


def _pairs(n, angle, shape, seed=0):
    from napari_stereo_tem.synth import make_stereo_pair
    from napari_stereo_tem.synth.seeds import draw_seeds
    from napari_stereo_tem.training.matcher import prepare_pair

    for s in draw_seeds("test", n, seed=seed):
        sample = make_stereo_pair(int(s), shape=shape, stereo_angle_deg=angle)
        yield s, sample, prepare_pair(sample)


def _mean(rows, key):
    vals = [r[key] for r in rows if r["n"]]
    return float(np.mean(vals)) if vals else float("nan")


def _pooled(preds, truths, masks):
    from napari_stereo_tem.stereo.matching import disparity_metrics

    pred = np.concatenate([p[m] for p, m in zip(preds, masks)])
    truth = np.concatenate([t[m] for t, m in zip(truths, masks)])
    return disparity_metrics(pred[None], truth[None])


def accuracy(model, *, n, angle, shape, detector=None, table=True):
    from napari_stereo_tem.stereo.matching import predict_disparity, refine_disparity, sgbm_disparity

    acc = {k: ([], [], []) for k in ("raw", "refined_centre", "refined_pixel", "sgbm", "sgbm_on_refined",
                                      "refined_detected")}
    t_match = []
    for s, sample, p in _pairs(n, angle, shape):
        t0 = time.perf_counter()
        d, _ = predict_disparity(p["left"], p["right"], model)
        t_match.append(time.perf_counter() - t0)
        truth, mask = p["disparity"], p["mask_left"] & np.isfinite(p["disparity"])
        ref_c = refine_disparity(d, p["mask_left"], p["mask_right"], mode="centre")
        ref_p = refine_disparity(d, p["mask_left"], p["mask_right"], mode="pixel")
        sg = sgbm_disparity(p["left"], p["right"], disparity_range=model.matcher.disparity_range)
        rows = {"raw": d, "refined_centre": ref_c, "refined_pixel": ref_p, "sgbm": sg,
                "sgbm_on_refined": np.where(np.isfinite(ref_c), sg, np.nan)}
        if detector is not None:
            from napari_stereo_tem.stereo.detection import predict_probability

            pl = predict_probability(sample.left, detector, contrast="bright_field")
            pr = predict_probability(sample.right, detector, contrast="bright_field")
            rows["refined_detected"] = refine_disparity(d, pl >= 0.5, pr >= 0.5, weights_left=pl, weights_right=pr)
        for key, pred in rows.items():
            acc[key][0].append(pred)
            acc[key][1].append(truth)
            acc[key][2].append(mask)
    out = {"n_pairs": n, "angle_deg": angle, "shape": list(shape),
           "match_s_median_in_loop": float(np.median(t_match))}
    for key, (preds, truths, masks) in acc.items():
        if preds:
            out[key] = _pooled(preds, truths, masks)
    return out


def table1(model, *, n, shape, angles=(2, 4, 6, 8, 10, 12)):
    """Mean |z - z_gt| (px) at the ground-truth left dislocation pixels, raw and refined, per angle."""
    from napari_stereo_tem.stereo.matching import predict_disparity, refine_disparity
    from napari_stereo_tem.stereo.projection import depth_from_disparity

    rows = {}
    for angle in angles:
        err_raw, err_ref, kept = [], [], []
        for s, sample, p in _pairs(n, float(angle), shape, seed=1):
            d, _ = predict_disparity(p["left"], p["right"], model)
            ref = refine_disparity(d, p["mask_left"], p["mask_right"])
            m = p["mask_left"] & np.isfinite(p["disparity"])
            z_gt = depth_from_disparity(p["disparity"][m], angle)
            err_raw.append(np.abs(depth_from_disparity(d[m], angle) - z_gt))
            zr = depth_from_disparity(ref[m], angle)
            ok = np.isfinite(zr)
            err_ref.append(np.abs(zr[ok] - z_gt[ok]))
            kept.append(ok.mean() if len(ok) else np.nan)
        rows[f"{angle}"] = {"depth_err_raw_px": float(np.mean(np.concatenate(err_raw))),
                            "depth_err_refined_px": float(np.mean(np.concatenate(err_ref))),
                            "refined_coverage_pct": float(100 * np.nanmean(kept))}
    return rows


def timing_child(weights, detector_name, threads, repeats):
    """Run in a fresh process: time reconstruct() on one 512x512 test pair; print JSON."""
    import resource

    import torch

    torch.set_num_threads(threads)
    from napari_stereo_tem.stereo.matching import load_matcher
    from napari_stereo_tem.stereo.pipeline import reconstruct
    from napari_stereo_tem.synth import make_stereo_pair
    from napari_stereo_tem.synth.seeds import draw_seeds

    matcher = load_matcher(weights)
    if detector_name == "standin":
        from napari_stereo_tem.nets.unet import DislocationUNet

        detector = DislocationUNet(base_channels=16, n_classes=2).eval()  # same cost as detector_v1, untrained
        detector.version = "untrained stand-in (same architecture as detector_v1)"
    else:
        from napari_stereo_tem.models.store import load_detector

        detector = load_detector(detector_name)
    sample = make_stereo_pair(int(draw_seeds("test", 1, seed=5)[0]), shape=(512, 512), stereo_angle_deg=8.0)
    runs = []
    for _ in range(repeats + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        r = reconstruct(sample.left, sample.right, stereo_angle_deg=8.0, detector=detector, matcher=matcher,
                        rectify=True, n_threads=threads)
        runs.append({"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, **r.timings})
    warm = runs[1:]
    med = {k: float(np.median([w[k] for w in warm])) for k in warm[0]}
    print(json.dumps({"first_run": runs[0], "warm_median": med, "n_lines": len(r.lines),
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "threads": threads, "detector": str(getattr(detector, "version", detector_name))}))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="default", help="matcher version or path (default matcher_v1)")
    parser.add_argument("--detector", default=None, help="detector version for refinement on detected masks "
                                                         "and for the timing (default: detector_v1 if present)")
    parser.add_argument("--n", type=int, default=10, help="test pairs (default 10)")
    parser.add_argument("--angle", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--table1", action="store_true", help="depth error vs angle (2..12 deg)")
    parser.add_argument("--table1-n", type=int, default=4)
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ablation", default=None, metavar="DIR",
                        help="Table 2: score every matcher *.safetensors in DIR (trained with "
                             "`stereo-tem train matcher --g-disp/--g-var/--g-warp ...`) on --n test pairs")
    parser.add_argument("--timing-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.ablation:
        from pathlib import Path

        from napari_stereo_tem.stereo.matching import load_matcher

        print(f"{'model':>16} {'loss weights':>36} | raw: >1px% >3px% >5px% EPE | refined: EPE >3px% coverage%")
        for path in sorted(Path(args.ablation).glob("*.safetensors")):
            model = load_matcher(str(path))
            acc = accuracy(model, n=args.n, angle=args.angle, shape=(512, 512))
            r, f = acc["raw"], acc["refined_centre"]
            print(f"{path.stem:>16} {json.dumps(model.metadata.get('loss_weights')):>36} | "
                  f"{r['gt1']:5.1f} {r['gt3']:5.1f} {r['gt5']:5.1f} {r['epe']:.3f} | "
                  f"{f['epe']:.3f} {f['gt3']:5.1f} {f['coverage']:5.1f}", flush=True)
        return 0

    if args.timing_child:
        timing_child(args.weights, args.detector, args.threads, args.repeats)
        return 0

    import torch

    torch.set_num_threads(args.threads)
    from napari_stereo_tem.checks import InputError
    from napari_stereo_tem.stereo.matching import load_matcher

    model = load_matcher(args.weights)
    detector_name = args.detector
    detector = None
    try:
        from napari_stereo_tem.models.store import load_detector

        detector = load_detector(detector_name or "default")
        detector_name = detector_name or "default"
    except InputError:
        detector_name = "standin"
    print(f"matcher {model.version}: {json.dumps(model.metadata.get('metric', {}))}")
    report = {"matcher": model.version, "detector": detector_name}
    if not args.no_accuracy:
        report["accuracy"] = accuracy(model, n=args.n, angle=args.angle, shape=(512, 512), detector=detector)
        for key, val in report["accuracy"].items():
            print(f"{key:>22}: {val}")
    if args.table1:
        report["table1"] = table1(model, n=args.table1_n, shape=(512, 512))
        for key, val in report["table1"].items():
            print(f"table1 {key:>3} deg: {val}")
    if not args.no_timing:
        cmd = [sys.executable, __file__, "--timing-child", "--weights", args.weights, "--detector", detector_name,
               "--threads", str(args.threads), "--repeats", str(args.repeats)]
        text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        report["timing"] = json.loads(text)
        print("timing:", json.dumps(report["timing"], indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
