#!/usr/bin/env bash
# Installs everything engagement-stream needs on a fresh machine, idempotently:
# the Python virtual environment with the package and its test extras, the Kafka
# jars (through Maven, into a cache), Prometheus' promtool and the Helm CLI.
# Later runs reuse what is already there and work offline.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
if ! .venv/bin/python -c "import stream, pytest, faust" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing the package and its test extras into .venv"
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e ".[test]"
  touch .venv/.installed
fi

# Each optional part has its own script so it can be run (and read) alone.
for part in dev/install-kafka.sh dev/install-prometheus.sh dev/install-helm.sh; do
  if [ -f "$part" ]; then
    bash "$part"
  fi
done
