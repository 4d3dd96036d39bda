#!/usr/bin/env bash
# Set up (first run only) and run the whole test suite: import contracts, core, models (with the example plugin), GUI (offscreen).
# Each folder runs in a pytest run of its own: the GUI tests then start from fresh interpreters, not from
# the heap the model and core tests leave behind. Every folder runs in TEST_WORKERS pytest-xdist processes
# (default 2): the tests share no paths, ports or settings (every test writes under its own tmp_path, the GUI's
# settings go to a folder of each process). A whole file goes to one process, so module fixtures (DNSMOS
# scorers, loaded models) are built once, and the files are handed out in collection order, which puts the
# longest first (tests/conftest.py) so the processes finish together. Arguments are passed to every pytest run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/lint-imports
failed=0
workers=${TEST_WORKERS:-2}
for folder in tests/core tests/models tests/gui; do
  echo "test: $folder"
  parallel=()
  if [ "$workers" -gt 1 ]; then
    parallel=(-n "$workers" --dist loadfile --no-loadscope-reorder)
  fi
  set +e
  .venv/bin/python -m pytest --durations=20 "${parallel[@]}" "$folder" "$@"
  rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "test: pytest collected no tests in $folder; failing on purpose" >&2
    rc=1
  fi
  [ "$rc" -eq 0 ] || failed=1
done
if [ "$failed" -ne 0 ]; then
  echo "test: some tests failed (see above)" >&2
  exit 1
fi
echo "test: every folder passed"
