#!/usr/bin/env bash
# The main job on the bundled sample data, headless: sets the project up in .venv if needed, then
#   1. 3D dislocation lines from a stereo pair (rectify, detect, match, refine, triangulate),
#   2. virtual images of two discs on a 4D-STEM dataset, with their stereo angle,
#   3. 3D nanoparticles and g(r) from four views.
# Results go to out/demo/ (or the folder given as the first argument); a rerun replaces the demo's own
# earlier results there (each command replaces a folder only if it holds nothing but its own files).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
OUT=${1:-out/demo}
S=.venv/bin/stereo-tem
mkdir -p "$OUT"
t0=$SECONDS
echo "== 1/3 stereo reconstruction of sample_data/stereo"
$S reconstruct sample_data/stereo/left.tif sample_data/stereo/right.tif --angle 8 -o "$OUT/stereo" --overwrite
echo "== 2/3 virtual detectors on sample_data/4dstem"
$S virtual sample_data/4dstem/data.zspy --disc 15.07,11.47,4 --disc 15.07,19.47,4 --convergence-mrad 20 \
   -o "$OUT/virtual" --overwrite
echo "== 3/3 nanoparticles from sample_data/particles"
$S particles sample_data/particles/view_A.tif sample_data/particles/view_B.tif \
   sample_data/particles/view_C.tif sample_data/particles/view_D.tif --beta 3 -o "$OUT/particles" --overwrite
echo "== done in $((SECONDS - t0)) s; results in $OUT/:"
ls "$OUT"/*
