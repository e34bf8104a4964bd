//! The mailgate test-suite, one binary. Parser tests need nothing; the
//! others run against the real peers started by `scripts/peers.sh` —
//! Dovecot over IMAP, Postfix over SMTP — and each against a fresh SQLite
//! store and, when `CENTRALINO_TEST_PG` is set, a fresh PostgreSQL one.
//! Without peers they skip with a note, unless `CENTRALINO_REQUIRE_PEERS=1`
//! (set by `scripts/test.sh`) makes that a failure.

mod bounce;
mod campaign;
mod corpus;
mod harness;
mod ingest;
mod messaging;
mod outbound;
mod outbox_lease;
mod parse;
mod replay;
mod tls;
