#!/usr/bin/env bash
# Install avsep into ./.venv (with the few Debian packages it needs) and run the demo or the tests.
#   bash scripts/bootstrap.sh demo   -> results/table1.csv on the embedded synthetic dataset (offline)
#   bash scripts/bootstrap.sh test   -> the test suite
# Works on Debian 12 / Ubuntu 24.04 (Python >= 3.11). Uses sudo for apt when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-demo}
case $mode in demo|test|install) ;; *) echo "usage: bash scripts/bootstrap.sh demo|test|install" >&2; exit 2;; esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
apt_pkgs=()
command -v python3 >/dev/null || apt_pkgs+=(python3)
python3 -c "import ensurepip, venv" 2>/dev/null || apt_pkgs+=(python3-venv)
# General MIDI soundfont (MIT licence) that renders the synthetic instruments offline.
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || apt_pkgs+=(fluid-soundfont-gm)
if ((${#apt_pkgs[@]})); then
  echo "bootstrap: installing Debian packages: ${apt_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
fi

python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "bootstrap: Python >= 3.11 is required" >&2; exit 1; }
[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# PyTorch and torchvision first and pinned as a matching pair, so the resolver does not pull another
# build (override with AVSEP_TORCH). The PyPI build carries CUDA libraries and runs on CPU as well;
# ultralytics and open_clip need torchvision, which has no CPU-only build on PyPI.
python -c "import torch, torchvision" 2>/dev/null || python -m pip install -q ${AVSEP_TORCH:-torch==2.14.1 torchvision==0.29.1}
python -m pip install -q -e ".[test,real,cluster]"
# tinysoundfont without its pyaudio dependency (live playback only; it needs portaudio headers).
python -c "import tinysoundfont" 2>/dev/null || python -m pip install -q --no-deps "tinysoundfont==0.3.7"

# Nothing in the demo or the tests downloads anything.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1
case $mode in
  demo)
    snakemake --cores "${AVSEP_CORES:-2}" results/table1.csv
    echo "== results/table1.csv"; cat results/table1.csv ;;
  test)
    python -m pytest -q -p no:cacheprovider ;;
  install) echo "bootstrap: installed into .venv" ;;
esac
