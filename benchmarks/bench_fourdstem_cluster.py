"""Every 4D-STEM pass on a dask.distributed LocalCluster of 1 and 2 worker processes (issue 19).

A memory-mapped ``.npy`` file (default 128x128 scan x 256x256 detector uint16,
2 GiB, written in chunks, deleted afterwards) is reduced by the three passes
that run on the chosen executor: the mean/max pattern, the beam centres
(descan estimation) and the virtual images of 4 discs of radius 20. Each runs
on a ``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)`` for
N = 1 and 2, addressed by its scheduler address (as a user points the CLI or
the widget at a cluster), with one warm-up pass (worker imports, page cache)
and the best of ``--repeats`` timed passes. Printed per pass: seconds, GB/s
(bytes of the file per second) and the scaling efficiency ``t1 / (2 t2)``.
The workers read the file themselves (the file pickles as its path); with
the file in the page cache this measures the computation, not the disk.

Run:  python benchmarks/bench_fourdstem_cluster.py [--scan 128] [--repeats 2] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

DISCS = [(128, 88, 20), (128, 168, 20), (88, 128, 20), (168, 128, 20)]


def _write(path: Path, scan: int, det: int = 256) -> None:
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint16, shape=(scan, scan, det, det))
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:det, :det]
    for i in range(scan):
        beam = ((yy - det / 2 - 0.01 * i) ** 2 + (xx - det / 2) ** 2 <= 30 ** 2).astype(np.uint16) * 200
        mm[i] = rng.integers(0, 32, (scan, det, det), dtype=np.uint16) + beam
    mm.flush()
    del mm


def _passes(path: str, executor: str) -> dict:
    from napari_stereo_tem.fourdstem import beam_centres, mean_pattern, open_4dstem, virtual_images

    out = {}
    t = time.perf_counter()
    mean_pattern(open_4dstem(path), executor=executor)  # a fresh dataset: nothing cached
    out["mean_max_pattern"] = time.perf_counter() - t
    t = time.perf_counter()
    beam_centres(open_4dstem(path), direct=(128, 128, 30), executor=executor)
    out["beam_centres"] = time.perf_counter() - t
    t = time.perf_counter()
    virtual_images(open_4dstem(path), DISCS, executor=executor, rows_per_task=4)
    out["virtual_images_4_discs"] = time.perf_counter() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scan", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args()
    from distributed import LocalCluster

    print(f"cpu cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(dir=args.dir or os.environ.get("BENCH_TMP", "/tmp")) as tmp:
        path = Path(tmp) / "cluster.npy"
        t = time.perf_counter()
        _write(path, args.scan)
        size = path.stat().st_size
        print(f"wrote {path} ({size / 2**30:.2f} GiB) in {time.perf_counter() - t:.0f}s")
        results = {}
        for workers in (1, 2):
            with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster:
                _passes(str(path), cluster.scheduler_address)  # warm-up
                best = {}
                for _ in range(args.repeats):
                    for name, sec in _passes(str(path), cluster.scheduler_address).items():
                        best[name] = min(best.get(name, np.inf), sec)
                results[workers] = best
        print(f"{'pass':24s} {'1 worker':>18s} {'2 workers':>18s} {'efficiency':>10s}")
        figures = {}
        for name in results[1]:
            t1, t2 = results[1][name], results[2][name]
            eff = t1 / (2 * t2)
            print(f"{name:24s} {t1:6.2f}s {size / t1 / 1e9:5.2f} GB/s {t2:6.2f}s {size / t2 / 1e9:5.2f} GB/s "
                  f"{100 * eff:9.0f}%")
            figures[name] = {"s_1": t1, "s_2": t2, "gbs_1": size / t1 / 1e9, "gbs_2": size / t2 / 1e9,
                             "efficiency": eff}
        if args.json:
            Path(args.json).write_text(json.dumps({"bytes": size, "cores": os.cpu_count(), **figures}, indent=1))
    print("file deleted")


if __name__ == "__main__":
    main()
