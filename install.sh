#!/usr/bin/env bash
# Idempotent set-up of weaksup in ./.venv (README command 1 runs it).
#
#  - torch==2.13.0 / torchvision==0.28.0: the registry's CUDA builds (they also run on CPU). pip runs
#    with --isolated so that it ignores any machine-wide find-links folder holding a CPU-only torch
#    wheel (that wheel cannot load torchvision's compiled ops); the certificate setting from
#    `pip config` is passed on explicitly because --isolated drops it too.
#  - Detectron2: the cp310-only `sal-detectron2==0.7.2` wheel (upstream commit a59f056), repacked as a
#    pure-Python py3-none-any wheel by tools/repack_detectron2_wheel.py and installed with --no-deps.
#  - requirements.txt (pinned), then weaksup itself in editable mode.
# A second run with everything in place only checks the installed versions and returns.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
VENV=${WEAKSUP_VENV:-.venv}
TORCH_VERSION=2.13.0
TORCHVISION_VERSION=0.28.0
D2_DIST=sal-detectron2
D2_VERSION=0.7.2
STAMP="$VENV/.weaksup-setup"

stamp_value() {
  cat install.sh requirements.txt setup.py tools/repack_detectron2_wheel.py | sha256sum | cut -d' ' -f1
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(stamp_value)" ] \
   && "$VENV/bin/python" -c "import torch, torchvision, detectron2, weaksup" 2>/dev/null; then
  echo "weaksup: set-up already complete in $VENV"
  exit 0
fi

if ! command -v "$PYTHON" >/dev/null; then
  echo "weaksup: $PYTHON not found; set PYTHON=/path/to/python3.10+ and run again" >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

PIP_ARGS=(--isolated --disable-pip-version-check --no-input)
CERT=$(pip config get global.cert 2>/dev/null || true)
[ -n "${PIP_CERT:-}" ] && CERT=$PIP_CERT
[ -n "$CERT" ] && PIP_ARGS+=(--cert "$CERT")
pip_() { "$VENV/bin/python" -m pip "$1" "${PIP_ARGS[@]}" "${@:2}"; }

installed() {  # installed DIST VERSION: true when that exact version is installed
  [ "$("$VENV/bin/python" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p')" = "$2" ]
}

if ! installed torch "$TORCH_VERSION" || ! installed torchvision "$TORCHVISION_VERSION"; then
  echo "weaksup: installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
  pip_ install "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi

pip_ install -q -r requirements.txt

if ! installed "$D2_DIST" "$D2_VERSION"; then
  echo "weaksup: installing Detectron2 ($D2_DIST==$D2_VERSION, repacked as pure Python)"
  WHEELS=$(mktemp -d)
  trap 'rm -rf "$WHEELS"' EXIT
  pip_ download -q --no-deps --only-binary=:all: --python-version 3.10 \
    "$D2_DIST==$D2_VERSION" -d "$WHEELS/orig"
  WHEEL=$("$VENV/bin/python" tools/repack_detectron2_wheel.py "$WHEELS"/orig/*.whl "$WHEELS/repacked")
  pip_ install -q --no-deps "$WHEEL"
fi

pip_ install -q --no-deps --no-build-isolation -e .

"$VENV/bin/python" -c "
import torch, torchvision, detectron2, weaksup
print('weaksup: torch', torch.__version__, '| torchvision', torchvision.__version__,
      '| detectron2', detectron2.__version__, '| CUDA available:', torch.cuda.is_available())
"
stamp_value > "$STAMP"
echo "weaksup: set-up complete in $VENV"
