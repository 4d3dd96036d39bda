#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: import contract, core, models, GUI (offscreen).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lint-imports
set +e
.venv/bin/python -m pytest --durations=20 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "test: pytest collected no tests; failing on purpose" >&2
  exit 1
fi
exit "$rc"
