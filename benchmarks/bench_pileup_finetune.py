"""Does fine-tuning on corrected pile-up instances separate close dislocations? (instance valleys against plain masks)

Run::

    python benchmarks/bench_pileup_finetune.py [--steps 1500] [--entries 32] [--seeds 8] [--spacings 3,5,8]

A user who splits the dislocations of a pile-up in the instance Labels layer
adds them to the training set with their instances; fine-tuning then cuts a
background valley wherever two instances touch
(:func:`napari_stereo_tem.training.finetune.separate_instances`). This
benchmark plays that through with synthetic pile-ups standing in for the
user's corrections: two training sets of the same ``--entries`` pile-ups
(train seeds from 1 000 000, 192 px, 3-8 dislocations 2.5-5 px apart, doses
150/600/3000), one stored with the instance images and one without, and the
shipped detector fine-tuned on each with the same recipe and seed (half of
every batch from the stereo generator, as the fine-tuning dock does). Each
result, and the shipped detector, is then scored by ``bench_instances.py``
on held-out pile-ups (seeds from 9 100 000) and by ``bench_real_detector.py``
on the hand-annotated real micrographs. Everything is written to a
temporary models folder; the user's own models are not touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def _training_set(folder: Path, entries: int, with_instances: bool) -> None:
    from napari_stereo_tem.models.training_set import add_entry
    from napari_stereo_tem.synth.pileups import make_pileup

    for k in range(entries):
        seed = 1_000_000 + k
        pile = make_pileup(seed, shape=(192, 192), n_lines=3 + k % 6, spacing=(2.5, 5.0),
                           dose=(150.0, 600.0, 3000.0)[k % 3])
        add_entry(folder, pile.image, pile.mask, instances_left=pile.instances if with_instances else None,
                  source=f"synthetic pile-up seed {seed}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--entries", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seeds", type=int, default=8, help="held-out pile-ups per spacing")
    parser.add_argument("--spacings", default="3,5,8")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NAPARI_STEREO_TEM_MODELS"] = str(Path(tmp) / "models")
        import torch

        from napari_stereo_tem.progress import drive
        from napari_stereo_tem.training.finetune import finetune_detector

        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import bench_instances
        import bench_real_detector

        torch.set_num_threads(1)
        versions = {"shipped": "detector_v1"}
        for label, with_instances in (("instances (valleys)", True), ("plain masks", False)):
            folder = Path(tmp) / ("set_instances" if with_instances else "set_plain")
            _training_set(folder, args.entries, with_instances)
            t0 = time.perf_counter()
            result = drive(finetune_detector(folder, name="pileups_" + ("instances" if with_instances else "plain"),
                                             init="detector_v1", steps=args.steps, batch_size=4, crop=96,
                                             synth_fraction=0.5, lr=args.lr, seed=1, n_threads=1,
                                             checkpoint_every=max(args.steps, 1)))
            print(f"fine-tuned on {label}: {result['version']}, {args.steps} steps in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            versions[label] = result["version"]
        for label, version in versions.items():
            print(f"\n### {label}\n", flush=True)
            bench_instances.main(["--seeds", str(args.seeds), "--spacings", args.spacings, "--weights", version])
            print(flush=True)
            bench_real_detector.main(["--weights", version])     # the price on real micrographs
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
