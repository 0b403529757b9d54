#!/usr/bin/env bash
# Set up napari-stereo-tem on a fresh Debian/Ubuntu machine, idempotently:
#   - the Debian libraries napari's Qt window needs (xcb, GL) and the virtual X server for headless tests,
#     only when missing: with --gui always (needs root or sudo), without it only where root or
#     password-less sudo can do it (otherwise the command to run is printed),
#   - a virtual environment in .venv,
#   - CPU PyTorch (torch==2.13.0 takes the CPU wheel; see DESIGN section 7),
#   - the project itself (editable) with napari's Qt binding (PyQt6), so that .venv/bin/napari starts
#     with the plugin; the test extra too when --gui is given.
# Prints how long each step took. Re-running skips what is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_GUI=0
for arg in "$@"; do
  case "$arg" in
    --gui) WITH_GUI=1 ;;
    *) echo "usage: scripts/setup.sh [--gui]" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

step() {  # step NAME COMMAND...: run and time one step
  local name=$1; shift
  local t0=$SECONDS
  echo "== $name"
  "$@"
  echo "== $name: $((SECONDS - t0)) s"
}

debian_libs() {
  local pkgs=(libgl1 libegl1 libglib2.0-0 libdbus-1-3 libfontconfig1 libxkbcommon-x11-0
              libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-render0
              libxcb-shape0 libxcb-xinerama0 libxcb-xkb1)
  [ "$WITH_GUI" -eq 1 ] && pkgs+=(xvfb xauth)  # the virtual X server of the headless tests
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then echo "all present"; return; fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ "$WITH_GUI" -eq 0 ] && [ -n "$sudo" ] && ! sudo -n true 2>/dev/null; then
    echo "napari's window needs these Debian packages, not installed here (no root):"
    echo "  sudo apt-get install ${missing[*]}"
    return
  fi
  if ! command -v apt-get >/dev/null; then
    echo "not a Debian/Ubuntu system: install the equivalents of ${missing[*]} for napari's window"
    return
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}"
}

make_venv() {
  if [ -x "$VENV/bin/python" ]; then echo "$VENV exists"; return; fi
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
}

install_torch() {
  if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    "$VENV/bin/python" -c "import torch; print('torch', torch.__version__, 'present')"
    return
  fi
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
}

install_project() {
  local extra="[qt]"
  [ "$WITH_GUI" -eq 1 ] && extra="[qt,testing]"
  "$VENV/bin/python" -m pip install -q -e ".${extra}"
  # napari with its Qt binding and this plugin: what .venv/bin/napari needs to start
  "$VENV/bin/python" -c "import napari, qtpy, npe2; from qtpy import QtWidgets
pm = npe2.PluginManager.instance(); pm.discover()
pm.get_manifest('napari-stereo-tem')  # KeyError if the plugin is not registered
print('napari', napari.__version__, 'with', qtpy.API_NAME, 'and the napari-stereo-tem plugin: start it with .venv/bin/napari')"
}

step "Debian libraries for napari's window$([ "$WITH_GUI" -eq 1 ] && echo ' and headless tests')" debian_libs
step "virtual environment ($VENV)" make_venv
step "CPU PyTorch" install_torch
step "napari-stereo-tem with napari's Qt binding$([ "$WITH_GUI" -eq 1 ] && echo ' and the test extra')" install_project
