#!/usr/bin/env bash
# Run the test suite headless, under a virtual X server (napari's widget tests need one).
# Sets the project up first if needed (scripts/setup.sh --gui). Extra arguments go to pytest.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --gui || exit 1
VENV=${VENV:-.venv}
export MPLBACKEND=Agg
t0=$SECONDS
xvfb-run -a -s "-screen 0 1280x1024x24" "$VENV/bin/python" -m pytest tests "$@"
rc=$?
echo "== tests: $((SECONDS - t0)) s"
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
