#!/usr/bin/env bash
# Regenerate sample_data/ from fixed held-out seeds (the same seed gives the same bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
S=${STEREO_TEM:-.venv/bin/stereo-tem}
rm -rf sample_data/stereo sample_data/4dstem sample_data/particles
$S synth stereo --seed 9000005 --shape 512,512 --angle 8 --groups 4 -o sample_data/stereo
$S synth 4dstem --seed 9000002 --scan 48,48 --detector 32,32 --format zspy -o sample_data/4dstem
$S synth particles --seed 9000003 --shape 256,256 --n-particles 60 --beta 3 -o sample_data/particles
