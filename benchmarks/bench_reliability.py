"""Start-up and cancel figures of the reliability note.

1. Whole-process wall times, median of ``--repeats``: the import floor (a Python
   that imports torch, OpenCV, scikit-image and SciPy) against a cold
   ``stereo-tem reconstruct`` of the bundled 512x512 pair, with and without
   rectification, and the time per pair of ``reconstruct --pairs`` over the
   same pair ``--batch`` times.
2. Cancel latency per stage: the work runs in a thread under
   :func:`~napari_stereo_tem.progress.drive`; ``should_stop`` turns true
   ``--delay`` seconds after a stage has started, and the latency is the time
   from then until :class:`~napari_stereo_tem.progress.Cancelled` reaches the
   caller (median of ``--repeats``), for the stereo reconstruction and the
   particle pipeline.

Run::

    python benchmarks/bench_reliability.py [--repeats 5] [--delay 0.05[,0.5,...]] [--stage load] [--batch 5]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAIR = REPO / "sample_data" / "stereo"
FLOOR = "import torch, cv2, skimage, scipy, scipy.ndimage, skimage.morphology"


def _run(argv) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _medians(runs) -> tuple[float, float]:
    runs = list(runs)
    return statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)


def startup(repeats: int, batch: int) -> None:
    """Whole-process figures; the CPU time (which a busy machine inflates far less than the wall time) beside each."""
    cli = [sys.executable, "-m", "napari_stereo_tem.cli"]
    floor, floor_cpu = _medians(_run([sys.executable, "-c", FLOOR]) for _ in range(repeats))
    print(f"import floor (torch, cv2, skimage, scipy): {floor:.2f} s wall, {floor_cpu:.2f} s CPU "
          f"(median of {repeats})")
    with tempfile.TemporaryDirectory() as tmp:
        for extra in ([], ["--no-rectify"]):
            runs = []
            for k in range(repeats):
                out = Path(tmp) / f"cold{len(extra)}_{k}"
                runs.append(_run(cli + ["reconstruct", str(PAIR / "left.tif"), str(PAIR / "right.tif"),
                                        "--angle", "8", *extra, "-o", str(out)]))
            cold, cold_cpu = _medians(runs)
            print(f"cold stereo-tem reconstruct {' '.join(extra) or '(rectified)'}: {cold:.2f} s wall = "
                  f"{cold / floor:.2f} x the import floor; {cold_cpu:.2f} s CPU = {cold_cpu / floor_cpu:.2f} x "
                  f"(median of {repeats}; each run's wall: {', '.join(f'{w:.2f}' for w, _ in runs)})")
        if batch:
            listing = Path(tmp) / "pairs.txt"
            listing.write_text("".join(f"{PAIR / 'left.tif'} {PAIR / 'right.tif'} p{k}\n" for k in range(batch)))
            wall, _ = _run(cli + ["reconstruct", "--pairs", str(listing), "--angle", "8", "--no-rectify",
                                  "-o", str(Path(tmp) / "batch")])
            print(f"stereo-tem reconstruct --pairs ({batch} pairs, --no-rectify): {wall:.2f} s, "
                  f"{wall / batch:.2f} s per pair")


def _latency(make_work, after: str, delay: float):
    """Cancel ``delay`` s after the first report of stage ``after``: (latency, stage running then)."""
    from napari_stereo_tem.progress import Cancelled, drive

    stop = threading.Event()
    stamp: dict = {}

    def ask():
        stamp["asked"], stamp["during"] = time.perf_counter(), stamp.get("last")
        stop.set()

    def on_progress(report):
        stamp["last"] = report.stage
        if report.stage == after and "timer" not in stamp:
            stamp["timer"] = threading.Timer(delay, ask)
            stamp["timer"].start()

    try:
        drive(make_work(), on_progress, stop.is_set)
    except Cancelled:
        return time.perf_counter() - stamp["asked"], stamp["during"]
    finally:
        if "timer" in stamp:
            stamp["timer"].cancel()
    return None, None


def cancel(repeats: int, delays, only=None, stage=None) -> None:
    from napari_stereo_tem.particles.pipeline import reconstruct_particles_iter
    from napari_stereo_tem.progress import drive
    from napari_stereo_tem.stereo.pipeline import reconstruct_stereo

    left, right = str(PAIR / "left.tif"), str(PAIR / "right.tif")
    views = [str(REPO / "sample_data" / "particles" / f"view_{k}.tif") for k in "ABCD"]
    runs = {"stereo": lambda: reconstruct_stereo(left, right, stereo_angle_deg=8.0),
            "particles": lambda: reconstruct_particles_iter(views, beta_deg=5.0)}
    for name, make in runs.items():
        if only and name != only:
            continue
        reports = []
        t0 = time.perf_counter()
        drive(make(), lambda r: reports.append((r.stage, time.perf_counter() - t0)))  # warm, and the stages
        stages = list(dict.fromkeys(stage for stage, _ in reports))[:-1]
        print(f"{name}: reports {', '.join(f'{s} {t:.2f}s' for s, t in reports)}")
        for after in stages:
            if stage and after != stage:
                continue
            for delay in delays:
                found = [_latency(make, after, delay) for _ in range(repeats)]
                values = [v for v, _ in found if v is not None]
                during = sorted({d for v, d in found if v is not None})
                if values:
                    print(f"  cancel {delay:.2f} s after the '{after}' report (work then: after {', '.join(during)}): "
                          f"latency median {statistics.median(values):.3f} s, max {max(values):.3f} s "
                          f"({len(values)} runs)", flush=True)
                else:
                    print(f"  cancel {delay:.2f} s after the '{after}' report: the work had ended")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--delay", default="0.05",
                        help="seconds into a stage before the cancel; several, comma-separated, reach several steps")
    parser.add_argument("--stage", default=None,
                        help="cancel only after this stage's report (e.g. 'load': during the rectification)")
    parser.add_argument("--batch", type=int, default=5, help="pairs in the --pairs run")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-cancel", action="store_true")
    parser.add_argument("--only", choices=["stereo", "particles"], default=None, help="cancel figures of one pipeline")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    if not args.skip_startup:
        startup(args.repeats, args.batch)
    if not args.skip_cancel:
        cancel(args.repeats, [float(v) for v in args.delay.split(",")], args.only, args.stage)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
