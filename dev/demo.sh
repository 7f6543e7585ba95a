#!/usr/bin/env bash
# Sets up a fresh machine (dev/setup.sh), then runs the whole service once on the
# sample records: a local Kafka broker, the topics, a worker, a replay of
# examples/records-v1.jsonl and -v2.jsonl, a summary of what was published, and a
# clean stop. With KAFKA_BOOTSTRAP_SERVERS set it uses that cluster instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
exec .venv/bin/engagement-stream demo "$@"
