#!/usr/bin/env bash
# The load benchmark in one command: builds the release gateway and the
# benchmark's helpers, then runs bench/loadbench.py (ceilings, gateway on
# SQLite and, when EMBEDGATE_TEST_POSTGRES_URL is set, on a fresh PostgreSQL
# database, wrk in interleaved slices). Arguments go to loadbench.py, e.g.
#
#   bench/run.sh                         # the whole table
#   bench/run.sh --slices 3 --rows template,upstream
#   bench/run.sh --profile perf          # top functions per row instead
#
# Needs wrk and nginx; honours CARGO_TARGET_DIR. See bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || {
    echo "bench/run.sh needs $tool (apt-get install wrk nginx-light python3)" >&2
    exit 1
  }
done

target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked --bin embedgate --example ceiling --example tokens
exec python3 bench/loadbench.py --bin-dir "$target/release" "$@"
