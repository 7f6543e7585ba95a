#!/usr/bin/env bash
# Sets up a fresh machine (dev/setup.sh) and runs every test: unit tests, and
# integration tests against a real Kafka broker that the test session starts on
# loopback and stops afterwards. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
exec .venv/bin/python -m pytest "$@"
