#!/usr/bin/env bash
# Fetches the pinned Apache Kafka broker's jars with Maven into the cache
# (~/.cache/engagement-stream, or $ES_CACHE_DIR) for the local dev broker and the
# integration tests. Later runs find the cache and work offline.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/engagement-stream dev-broker fetch
