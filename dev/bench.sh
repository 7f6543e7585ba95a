#!/usr/bin/env bash
# Sets up a fresh machine (dev/setup.sh), then runs the benchmark: decode cost,
# the worker against a plain aiokafka loop, two workers against one, and the
# memory of one worker after a million records, on a local broker it starts
# (or on KAFKA_BOOTSTRAP_SERVERS). Arguments go to bench/run.py (--quick, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
exec .venv/bin/python bench/run.py "$@"
