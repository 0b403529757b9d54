#!/usr/bin/env bash
# Train the wide-generator detector on a GPU machine, from the repository root, without installing
# the project (the core training path needs only torch, numpy, scipy, scikit-image, OpenCV and
# safetensors). Scenes are rendered by worker processes; the crop stream is the same whatever
# their number, so the run is reproducible from its seed.
#   bash scripts/train_detector_gpu.sh OUT_DIR [SECONDS]
# writes OUT_DIR/detector_v2.safetensors (+ .json sidecar, + .ckpt.pt to resume) and stops,
# validated and saved, after SECONDS (default 420). Then, on any machine:
#   stereo-tem train detector-postprocess OUT_DIR/detector_v2.safetensors
#   python benchmarks/bench_real_detector.py --weights OUT_DIR/detector_v2.safetensors
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/train_detector_gpu.sh OUT_DIR [SECONDS]}
seconds=${2:-420}
workers=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
mkdir -p "$out"
PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 python3 -m napari_stereo_tem.cli \
  train detector --data mixed --workers "$workers" --crops-per-scene 6 --steps 9000 --batch-size 32 \
  --crop 192 --seed 3 --device cuda --lr 0.002 --pos-weight 2.0 --val-every 500 --n-val 48 --classes 2 \
  --base-channels 16 --time-limit "$seconds" --out "$out/detector_v2"
