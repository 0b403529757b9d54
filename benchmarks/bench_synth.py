"""Speed of the synthetic-data generator.

Run: ``python benchmarks/bench_synth.py [--fourdstem-full]``

Prints the wall-clock and CPU time (all threads; the better figure on a
shared machine) to generate a 512x512 stereo pair with all of its truth
(images, masks, disparity maps, 3D lines; target <= 1 s on 2 CPU cores), the
time to save it, and the time to write a synthetic 4D-STEM dataset to a
``.npy`` memmap (a small one by default; ``--fourdstem-full`` writes
256x256 scan x 128x128 detector, about 2 GiB).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from napari_stereo_tem.synth import TEST_SEEDS, make_stereo_pair


def _time(fn, repeat, cpu=None):
    """Wall-clock seconds of each call; CPU seconds (all threads) appended to ``cpu``."""
    times = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--fourdstem-full", action="store_true")
    args = parser.parse_args()

    seeds = iter(range(TEST_SEEDS.start, TEST_SEEDS.start + 10 * args.repeat))
    make_stereo_pair(next(seeds))  # warm-up (imports, caches)
    for label, kwargs in (("default", {}), ("loops+4 groups", {"loops": True, "n_groups": 4}),
                          ("dark field", {"dark_field": True})):
        cpu = []
        times = _time(lambda: make_stereo_pair(next(seeds), shape=(512, 512), **kwargs), args.repeat, cpu)
        print(f"stereo pair 512x512 [{label}]: wall median {statistics.median(times):.3f} s "
              f"(max {max(times):.3f}), CPU median {statistics.median(cpu):.3f} s over {args.repeat}")
    sample = make_stereo_pair(TEST_SEEDS.start)
    with tempfile.TemporaryDirectory() as tmp:
        times = _time(lambda: sample.save(Path(tmp) / "pair"), 3)
        print(f"save 512x512 pair: median {statistics.median(times):.3f} s")

    try:
        from napari_stereo_tem.synth.fourdstem import simulate_4dstem
    except ImportError:
        return
    sizes = [((32, 32), (32, 32), 8.0), ((64, 64), (64, 64), 16.0)]
    if args.fourdstem_full:
        sizes.append(((256, 256), (128, 128), 24.0))
    for scan, det, radius in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            out = simulate_4dstem(seed=TEST_SEEDS.start, scan_shape=scan, detector_shape=det,
                                  disc_radius_px=radius, path=Path(tmp) / "data.npy")
            dt = time.perf_counter() - t0
            gib = out.data.nbytes / 2 ** 30
            print(f"4D-STEM {scan} x {det} -> .npy memmap: {dt:.2f} s ({gib:.3f} GiB, {gib / dt:.2f} GiB/s)")
            del out


if __name__ == "__main__":
    main()
