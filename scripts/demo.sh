#!/usr/bin/env bash
# Set up (first run only) and open the workbench on the bundled demo clip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [ "${QT_QPA_PLATFORM:-}" != "offscreen" ]; then
  echo "demo: no display found; starting the window on a virtual X server (xvfb-run)" >&2
  exec xvfb-run -a .venv/bin/python main.py --demo "$@"
fi
exec .venv/bin/python main.py --demo "$@"
