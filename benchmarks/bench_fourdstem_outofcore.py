"""Out-of-core interaction on a 32 GiB memory-mapped 4D-STEM file (issue 19).

The dataset (default 512x512 scan x 256x256 detector uint16, 32 GiB, more than
this machine's RAM) is made by the project's generator
(:func:`napari_stereo_tem.synth.simulate_4dstem`, a ``.npy`` written row by
row), unless ``--path`` names one already made; ``--delete`` removes it at the
end. The interaction is what the virtual-detector widget does, run in a fresh
process so that its memory is its own:

1. **drag**: a disc moved over the pattern in ``--moves`` steps, each step a
   strided preview (``preview_virtual_image``, at most 64x64 scan positions
   read, only the disc's detector box): time per move, median / p95 / max
   (target p95 <= 100 ms), the first move (cold pages) reported apart;
2. **refined when the mouse stops**: the exact image of the disc in bands of
   ``--rows`` scan rows on the threads executor (``iter_virtual_images``):
   when the first band and the whole image arrive, GB/s of the file;
3. **cancel**: another exact pass, cancelled from another thread after
   ``--cancel-after`` seconds: the time from the request to the pass stopping
   (target <= 0.5 s);
4. **memory**: the process's peak resident memory (VmHWM, the kernel's mark
   reset just before the work; target <= 1 GiB) and the resident memory after.

The file's pages are evicted from the page cache first (``posix_fadvise
DONTNEED`` on this file only), so the run starts cold, as after opening a file
that was just copied from the microscope; ``--warm`` skips that.

Run:  python benchmarks/bench_fourdstem_outofcore.py [--path FILE.npy] [--delete] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

_CHILD = r"""
import json, sys, threading, time
import numpy as np
from napari_stereo_tem.fourdstem import iter_virtual_images, open_4dstem, preview_virtual_image
from napari_stereo_tem.progress import Cancelled, drive

path, centre, radius, moves, rows, cancel_after = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
virtual_images_warm = preview_virtual_image(np.zeros((2, 2, 64, 64), np.uint16), (32, 32, 4))  # imports

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    reset = True
except OSError:
    reset = False
out = {"rss_before": status("VmRSS:"), "hwm_reset": reset}
ds = open_4dstem(path)
cy, cx = centre
# 1. drag: the disc goes right and back, as a mouse does
times = []
for step in range(moves):
    phase = step / max(moves - 1, 1)
    disc = (cy - 0.4 * radius + 0.8 * radius * phase, cx - 2 * radius * np.sin(np.pi * phase) + radius, radius)
    t = time.perf_counter()
    preview = preview_virtual_image(ds, disc)
    times.append(time.perf_counter() - t)
out["preview_first_s"] = times[0]
rest = np.array(times[1:])
out.update(preview_median_s=float(np.median(rest)), preview_p95_s=float(np.percentile(rest, 95)),
           preview_max_s=float(rest.max()), preview_shape=list(preview.shape))
# 2. the exact image once the mouse stops, band by band
final = (cy, cx + radius, radius)
t = time.perf_counter()
first = []
def seen(report):
    if not first:
        first.append(time.perf_counter() - t)
images = drive(iter_virtual_images(ds, [final], executor="threads", rows_per_task=rows), seen)
out.update(full_s=time.perf_counter() - t, first_band_s=first[0], bands=-(-ds.scan_shape[0] // rows),
           file_bytes=int(np.prod(ds.shape)) * ds.dtype.itemsize)
exact_preview = preview_virtual_image(ds, final)
stride = ds.scan_shape[0] // 64
out["preview_matches_exact_on_its_grid"] = bool(np.allclose(exact_preview[::stride, ::stride],
                                                            images[0][::stride, ::stride], rtol=1e-5))
# 3. cancel another pass
flag = threading.Event()
asked = []
def ask():
    asked.append(time.perf_counter())
    flag.set()
threading.Timer(cancel_after, ask).start()
t = time.perf_counter()
try:
    drive(iter_virtual_images(ds, [(cy, cx - radius, radius)], executor="threads", rows_per_task=rows),
          should_stop=flag.is_set)
    out["cancelled"] = False
except Cancelled:
    out["cancelled"] = True
    out["cancel_latency_s"] = time.perf_counter() - asked[0]
# 4. memory
out["rss_peak"] = status("VmHWM:")
out["rss_after"] = status("VmRSS:")
print(json.dumps(out))
"""


def _make(path: Path) -> dict:
    from napari_stereo_tem.synth.fourdstem import simulate_4dstem

    t = time.perf_counter()
    sample = simulate_4dstem(seed=3, scan_shape=(512, 512), detector_shape=(256, 256), disc_radius_px=16,
                             dose=50.0, path=path)
    print(f"made {path} ({path.stat().st_size / 2**30:.1f} GiB) with the generator in {time.perf_counter() - t:.0f}s")
    return {"centre": list(sample.centre), "radius": sample.radius}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=None, help="an existing .npy made by the generator (its .json beside it)")
    parser.add_argument("--dir", default=os.environ.get("BENCH_TMP", "/tmp"), help="where to make the file")
    parser.add_argument("--delete", action="store_true", help="delete the file at the end")
    parser.add_argument("--moves", type=int, default=40)
    parser.add_argument("--rows", type=int, default=8, help="scan rows per band of the exact pass")
    parser.add_argument("--cancel-after", type=float, default=2.0)
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--warm", action="store_true", help="keep the file's pages in the page cache")
    args = parser.parse_args()
    path = Path(args.path) if args.path else Path(args.dir) / "fourdstem_32gib.npy"
    try:
        if args.path:
            params = json.loads(Path(str(path) + ".json").read_text())
            geometry = {"centre": params["centre"], "radius": params["disc_radius_px"]}
        else:
            geometry = _make(path)
        disc_r = 0.5 * geometry["radius"]
        if not args.warm:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
        res = subprocess.run([sys.executable, "-c", _CHILD, str(path), json.dumps(geometry["centre"]), str(disc_r),
                              str(args.moves), str(args.rows), str(args.cancel_after)],
                             capture_output=True, text=True)
        if res.returncode:
            print(res.stderr[-3000:])
            raise SystemExit(res.returncode)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        gib = r["file_bytes"] / 2**30
        print(f"file {path.name}: {gib:.1f} GiB ({'warm' if args.warm else 'evicted from the page cache first'}); "
              f"disc radius {disc_r:.1f} px near the direct beam; cpu cores {os.cpu_count()}")
        print(f"drag preview ({args.moves} moves, {r['preview_shape'][0]}x{r['preview_shape'][1]} image from a "
              f"strided subset): first (cold pages) {r['preview_first_s'] * 1e3:.0f} ms, then median "
              f"{r['preview_median_s'] * 1e3:.1f} ms, p95 {r['preview_p95_s'] * 1e3:.1f} ms, "
              f"max {r['preview_max_s'] * 1e3:.1f} ms (target p95 <= 100)")
        print(f"exact image when the mouse stops: first band of {args.rows} rows after {r['first_band_s']:.2f}s, "
              f"whole image ({r['bands']} bands) after {r['full_s']:.1f}s = {r['file_bytes'] / r['full_s'] / 1e9:.2f} "
              f"GB/s of the file; preview equals the exact image on its grid: {r['preview_matches_exact_on_its_grid']}")
        if r["cancelled"]:
            print(f"cancel: stopped {r['cancel_latency_s'] * 1e3:.0f} ms after the request (target <= 500)")
        else:
            print("cancel: the pass ended before the request")
        print(f"memory: peak resident {r['rss_peak'] / 2**20:.0f} MiB (VmHWM, mark reset: {r['hwm_reset']}), "
              f"after {r['rss_after'] / 2**20:.0f} MiB (target <= 1024)")
        if args.json:
            Path(args.json).write_text(json.dumps(r, indent=1))
    finally:
        if args.delete:
            path.unlink(missing_ok=True)
            Path(str(path) + ".json").unlink(missing_ok=True)
            print(f"deleted {path}")


if __name__ == "__main__":
    main()
