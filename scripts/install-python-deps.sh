#!/usr/bin/env bash
# Creates the virtual environment and installs Vigil with its test dependencies, at the versions of requirements.lock.
set -euo pipefail
PYTHON="${1:-python3.11}"
VENV="${2:-.venv}"
# VIGIL_TORCH=cpu installs PyTorch's CPU-only build (no CUDA libraries: a much smaller venv, for machines
# without an NVIDIA GPU); unset, the locked build, which runs on a CPU and on a GPU alike.
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
# Lock entries only the CUDA build of torch needs: left out with VIGIL_TORCH=cpu (nvidia-ml-py stays: ultralytics).
CUDA_ONLY='^(torch|torchvision|triton|cuda-bindings|cuda-pathfinder|cuda-toolkit|nvidia-(cublas|cuda-[a-z]+|cudnn-cu[0-9]+|cufft|cufile|curand|cusolver|cusparse|cusparselt-cu[0-9]+|nccl-cu[0-9]+|nvjitlink|nvshmem-cu[0-9]+|nvtx))=='
case "${VIGIL_TORCH:-}" in
  ""|cpu) ;;
  *) echo "vigil setup: VIGIL_TORCH=${VIGIL_TORCH}: unknown; leave it unset (the locked build) or set it to cpu" >&2; exit 2 ;;
esac

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
case "${VIGIL_TORCH:-}" in
  "")
    "${PIP[@]}" install -q --no-deps -r requirements.lock
    ;;
  cpu)
    # PyTorch's CPU-only build of the same torch and torchvision versions, from PyTorch's own index,
    # without the CUDA libraries (nvidia-*, cuda-*) and triton that the default build brings.
    echo "vigil setup: VIGIL_TORCH=cpu: torch and torchvision from $TORCH_CPU_INDEX, no CUDA libraries"
    LOCK_CPU=$(mktemp)
    trap 'rm -f "$LOCK_CPU"' EXIT
    grep -v -E "$CUDA_ONLY" requirements.lock > "$LOCK_CPU"
    "${PIP[@]}" install -q --no-deps -r "$LOCK_CPU"
    "${PIP[@]}" install -q --no-deps --index-url "$TORCH_CPU_INDEX" \
      "$(grep -E '^torch==' requirements.lock)" "$(grep -E '^torchvision==' requirements.lock)"
    ;;
esac
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
