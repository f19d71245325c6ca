#!/usr/bin/env bash
# Creates the project's environments and fetches the models. Idempotent: each step is skipped
# when its inputs have not changed since it last succeeded.
#   .venv        the project (Lambda code, s3kp CLI, model server, offline stack, tests)
#   .venv-tools  aws-sam-cli, cfn-lint, checkov, pip-audit (their pins conflict with the Roboflow clients)
#   .venv-clients  inference-sdk for the contract tests (it pins pillow<13 and brings a second OpenCV)
#   .cache/models  MediaPipe .tflite files taken out of the mediapipe==0.10.14 wheel, SHA-256 verified
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

python_ok() {  # usage: python_ok INTERPRETER MIN_MINOR
  "$1" -c "import sys; sys.exit(0 if sys.version_info >= (3, $2) else 1)" >/dev/null 2>&1
}

find_python() {  # prints an interpreter >= 3.MIN_MINOR, preferring the Lambda runtime's 3.12
  local min_minor=$1 candidate
  for candidate in "${S3KP_PYTHON:-}" python3.12 \
      "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 \
      python3.13 "$HOME"/.pyenv/versions/3.13*/bin/python3.13 /root/.pyenv/versions/3.13*/bin/python3.13 \
      python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate" "$min_minor"; then
      command -v "$candidate"; return 0
    fi
  done
  return 1
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

ensure_venv() {  # usage: ensure_venv DIR STAMP_INPUT... -- PIP_ARGS...
  local dir=$1; shift
  local inputs=()
  while [ "$1" != "--" ]; do inputs+=("$1"); shift; done; shift
  local stamp; stamp=$(stamp_of "${inputs[@]}")
  if [ -f "$dir/.setup-stamp" ] && [ "$(cat "$dir/.setup-stamp")" = "$stamp" ]; then
    return 0
  fi
  if [ ! -x "$dir/bin/python" ]; then
    local py
    py=$(find_python 11) || { say "error: Python 3.11+ is required (3.12 preferred: the Lambda runtime)."; exit 1; }
    say "creating $dir with $py ($("$py" --version 2>&1))"
    "$py" -m venv "$dir"
  fi
  say "installing into $dir (this takes a few minutes the first time)"
  "$dir/bin/python" -m pip install --quiet --upgrade pip
  "$dir/bin/python" -m pip install --quiet "$@"
  echo "$stamp" > "$dir/.setup-stamp"
}

ensure_browser() {  # Debian's chromium + chromedriver for the viewer's browser tests (never a download)
  if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "warning: no apt-get here: install chromium and its chromedriver yourself, or the browser tests skip"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      say "warning: installing chromium needs root: run 'apt-get install chromium chromium-driver', or the browser tests skip"
      return 0
    fi
  fi
  say "installing Debian's chromium and chromium-driver (the viewer's browser tests)"
  if ! { $sudo apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
           chromium chromium-driver >/dev/null; }; then
    say "warning: apt-get could not install chromium: the browser tests will skip"
  fi
}

retire_from_venv() {  # removes what earlier setups put into .venv and the project no longer declares
  local retired=(inference-sdk opencv-python) present=() name
  for name in "${retired[@]}"; do
    .venv/bin/python -m pip show -q "$name" >/dev/null 2>&1 && present+=("$name")
  done
  [ ${#present[@]} -gt 0 ] || return 0
  say "removing from .venv what it no longer declares: ${present[*]}"
  local headless
  headless=$(.venv/bin/python -m pip show opencv-python-headless 2>/dev/null | sed -n 's/^Version: //p')
  .venv/bin/python -m pip uninstall -y -q "${present[@]}"
  # Both OpenCV distributions write the same cv2/ directory: the uninstall took the other one's files too
  # (roboflow, a dev dependency, needs opencv-python-headless; the project's own code needs no OpenCV).
  if [ -n "$headless" ]; then
    .venv/bin/python -m pip install -q --force-reinstall --no-deps "opencv-python-headless==$headless"
  fi
}

ensure_browser
ensure_venv .venv pyproject.toml layers/shared/requirements.txt -- -e ".[dev]"
retire_from_venv
ensure_venv .venv-clients requirements-clients.txt -- -r requirements-clients.txt
if [ "${S3KP_SKIP_TOOLS:-0}" != "1" ]; then
  ensure_venv .venv-tools requirements-tools.txt -- -r requirements-tools.txt
fi
.venv/bin/s3kp models fetch
say "ready: .venv/bin/s3kp --help"
