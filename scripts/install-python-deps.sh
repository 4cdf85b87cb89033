#!/usr/bin/env bash
# Creates the virtual environment and installs Vigil with its test dependencies, at the versions of requirements.lock.
set -euo pipefail
PYTHON="${1:-python3.11}"
VENV="${2:-.venv}"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "vigil setup: $PYTHON not found; install Python 3.11 (Debian: apt-get install python3.11 python3.11-venv)" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "vigil setup: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip
echo "vigil setup: installing Python packages into $VENV (first run: a few minutes, torch is large)"
# The exact versions of requirements.lock (the dev extras included), then Vigil itself as an editable install;
# --no-deps both times, so nothing is re-resolved and every setup installs the same set.
"${PIP[@]}" install -q --no-deps -r requirements.lock
"${PIP[@]}" install -q --no-deps -e .
# `pip check` then reports one thing, on purpose: "ultralytics ... requires opencv-python, which is not
# installed". ultralytics asks for the GUI build; the lock installs opencv-python-headless, which provides
# the same cv2 module without libGL.

# A safety net for venvs that got opencv-python anyway (an older setup, or a later `pip install` that
# resolved ultralytics' dependencies): both wheels write the same cv2/ folder. The clean state is: remove
# both, then reinstall only the headless build at the same version.
CV_VERSION=$("$VENV/bin/python" - <<'PY'
from importlib.metadata import version, PackageNotFoundError
for dist in ("opencv-python-headless", "opencv-python"):  # the lock's headless version wins
    try:
        print(version(dist)); break
    except PackageNotFoundError:
        pass
PY
)
if "${PIP[@]}" show -q opencv-python >/dev/null 2>&1; then
  echo "vigil setup: replacing opencv-python with opencv-python-headless==$CV_VERSION"
  "${PIP[@]}" uninstall -q -y opencv-python opencv-python-headless
  "${PIP[@]}" install -q --no-deps --force-reinstall "opencv-python-headless==$CV_VERSION"
fi
"$VENV/bin/python" -c "import cv2, torch, ultralytics, ray, redis; print('vigil setup: python deps OK (cv2', cv2.__version__ + ', torch', torch.__version__ + ')')"
