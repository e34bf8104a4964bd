#!/usr/bin/env bash
# The whole test suite: starts the real peers it needs on loopback
# (PostgreSQL, Dovecot, Postfix; sipp installed), runs every test of the workspace
# against SQLite and PostgreSQL, and stops the peers again.
set -euo pipefail
cd "$(dirname "$0")/.."
PEERS=$(mktemp -d /tmp/centralino-peers.XXXXXX)
cleanup() { scripts/peers.sh stop "$PEERS" || true; rm -rf "$PEERS"; }
trap cleanup EXIT
eval "$(scripts/peers.sh start "$PEERS")"
export CENTRALINO_REQUIRE_PG=1
# The mail and SIP tests skip without their peers unless this says they
# were started (then a missing peer is a failure).
export CENTRALINO_REQUIRE_PEERS=1
# Third-party mail corpora (outside the repository) for mailgate's corpus test.
[ -z "${CENTRALINO_CORPORA:-}" ] && [ -d /work/shared/corpora ] && export CENTRALINO_CORPORA=/work/shared/corpora
# The lock file is committed; cargo may still refresh it here when a
# concurrent commit left it a step behind the manifests (CI reaches crates.io).
cargo test --workspace "$@"
# The web console in headless Chromium (playwright-core, pinned by the lock
# file; `npm ci` works offline once the npm cache holds it). Screenshots of
# each desk land in docs/screens/.
# `cargo test` above already built target/debug/centralino for web's
# integration tests, with the same features; building it again with
# `cargo build -p web` would unify features differently and recompile.
test -x "${CARGO_TARGET_DIR:-target}/debug/centralino" || cargo test -p web --no-run
(cd web/tests/browser && npm ci --prefer-offline --no-audit --no-fund >/dev/null && node console.test.mjs)
