//! The IMAP sync state of one mailbox, sans I/O: given what the server and
//! the store said, it decides what to do next — search for new UIDs, fetch a
//! batch, hand messages to the store, flag them on the server, or wait. The
//! async driver in [`crate::imap`] performs each [`Step`] and feeds the
//! result back; this core reads no clock and opens no socket, so every
//! ordering (a crash between any two steps, a UIDVALIDITY change, a search
//! that returns stale UIDs) is tested without a server.
//!
//! Exactly once rests on three facts, in this order:
//! 1. a message is *handled* (raw bytes stored, then ingested) before it is
//!    flagged or moved on the server, and messages are handled in UID
//!    order, so the highest stored UID under the current UIDVALIDITY is
//!    where a restarted session resumes;
//! 2. storing is idempotent on (mailbox, UIDVALIDITY, UID) and ingesting is
//!    idempotent on the stored row, so replaying any suffix creates nothing;
//! 3. a new UIDVALIDITY means the server renumbered the mailbox: the core
//!    starts again from UID 1 and the store's Message-ID de-duplication
//!    keeps the already-known messages from becoming new tickets.
//!
//! No notification is lost between two commands: the server may report a
//! new message (`EXISTS`) in the response to any command, not only while
//! the session idles. The driver reports every such report with
//! [`SyncCore::on_news`]; news that arrives after a search was issued makes
//! the core search again before it ever asks to wait, so a mail that lands
//! between the last search and the start of IDLE is still fetched at once.
//! A wait is bounded as well (`SyncParams::poll`), a fallback poll for a
//! server that forgets to notify.

use std::collections::VecDeque;
use std::time::Duration;

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `SELECT` the mailbox and report [`SyncCore::on_selected`].
    Select,
    /// `UID SEARCH UID {from}:*` and report [`SyncCore::on_search`].
    Search { from: u32 },
    /// `UID FETCH` these UIDs (`BODY.PEEK[]`, so fetching sets no flag),
    /// then store and ingest each in order, reporting
    /// [`SyncCore::on_handled`] (or [`SyncCore::on_failed`] and stop).
    Fetch(Vec<u32>),
    /// Flag (and optionally move) these handled messages on the server,
    /// then report [`SyncCore::on_marked`]. Failures here lose nothing.
    Mark(Vec<u32>),
    /// Nothing to do until the server reports news (IDLE) or the poll
    /// interval passes; then report [`SyncCore::on_wake`]. With `idle`
    /// the driver idles for at most `poll` (a fallback poll) and must not
    /// start waiting if news came in the meantime ([`SyncCore::has_news`]).
    Wait { idle: bool, poll: Duration },
    /// Something failed: drop the connection, wait, reconnect, and report
    /// [`SyncCore::on_reconnected`].
    Reconnect { after: Duration },
}

/// Tunables of a mailbox sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncParams {
    /// Messages fetched per `UID FETCH`.
    pub batch: usize,
    /// How often to poll when the server has no IDLE; with IDLE, the
    /// longest an IDLE lasts before a search is made anyway.
    pub poll: Duration,
    /// Back-off after a failure (doubles up to `max_backoff`).
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for SyncParams {
    fn default() -> Self {
        SyncParams {
            batch: 50,
            poll: Duration::from_secs(30),
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    NeedSelect,
    NeedSearch,
    Fetching,
    Marking,
    Waiting,
    Broken,
}

/// The state machine; see the module docs.
#[derive(Debug)]
pub struct SyncCore {
    params: SyncParams,
    phase: Phase,
    idle: bool,
    uid_validity: Option<u32>,
    /// The highest UID handled under `uid_validity`; the next search
    /// starts after it.
    last_uid: u32,
    queue: VecDeque<u32>,
    in_flight: Vec<u32>,
    to_mark: Vec<u32>,
    failures: u32,
    /// The server reported new messages since the last search was issued.
    news: bool,
}

/// What [`SyncCore::on_selected`] noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selected {
    /// Same UIDVALIDITY as before (or the first select of this process).
    Continue,
    /// The server renumbered the mailbox since the last select.
    ValidityChanged { old: u32, new: u32 },
}

impl SyncCore {
    pub fn new(params: SyncParams) -> Self {
        SyncCore {
            params: SyncParams { batch: params.batch.max(1), ..params },
            phase: Phase::NeedSelect,
            idle: false,
            uid_validity: None,
            last_uid: 0,
            queue: VecDeque::new(),
            in_flight: Vec::new(),
            to_mark: Vec::new(),
            failures: 0,
            news: false,
        }
    }

    /// The server's capabilities after login: whether it offers IDLE.
    pub fn on_capabilities(&mut self, idle: bool) {
        self.idle = idle;
    }

    /// The mailbox was selected. `stored_max_uid` is the highest UID the
    /// store holds for this mailbox under `uid_validity` (`None`: none).
    pub fn on_selected(&mut self, uid_validity: u32, stored_max_uid: Option<u32>) -> Selected {
        let seen = match self.uid_validity {
            Some(old) if old != uid_validity => Selected::ValidityChanged { old, new: uid_validity },
            _ => Selected::Continue,
        };
        if seen != Selected::Continue || self.uid_validity.is_none() {
            self.last_uid = 0;
        }
        if seen != Selected::Continue {
            // UIDs of the old numbering mean other messages now.
            self.to_mark.clear();
        }
        self.uid_validity = Some(uid_validity);
        // The store is the authority: it survives crashes, this core does not.
        self.last_uid = self.last_uid.max(stored_max_uid.unwrap_or(0));
        self.queue.clear();
        self.in_flight.clear();
        self.phase = Phase::NeedSearch;
        seen
    }

    /// The UIDs a search returned. `UID SEARCH UID n:*` always includes the
    /// highest UID even when it is below `n` (RFC 3501 §6.4.8), so stale
    /// and already-handled UIDs are filtered out here.
    pub fn on_search(&mut self, uids: impl IntoIterator<Item = u32>) {
        let mut fresh: Vec<u32> = uids.into_iter().filter(|&u| u > self.last_uid).collect();
        fresh.sort_unstable();
        fresh.dedup();
        self.queue = fresh.into();
        self.phase = Phase::Fetching;
    }

    /// One fetched message was stored and ingested.
    pub fn on_handled(&mut self, uid: u32) {
        self.in_flight.retain(|&u| u != uid);
        self.last_uid = self.last_uid.max(uid);
        self.to_mark.push(uid);
        self.failures = 0;
    }

    /// A UID of the batch was not in the fetch response (expunged by
    /// another client meanwhile): nothing to handle.
    pub fn on_vanished(&mut self, uid: u32) {
        self.in_flight.retain(|&u| u != uid);
        self.last_uid = self.last_uid.max(uid);
    }

    /// Storing or ingesting failed, or the connection broke: stop, back off
    /// and resume from the store's view after reconnecting.
    pub fn on_failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.queue.clear();
        self.in_flight.clear();
        self.phase = Phase::Broken;
    }

    /// The handled messages were flagged (or the attempt failed; either way
    /// nothing is lost, the store already has them).
    pub fn on_marked(&mut self) {
        self.to_mark.clear();
        self.phase = if self.queue.is_empty() { Phase::Waiting } else { Phase::Fetching };
    }

    /// The server reported new messages (`EXISTS`, `RECENT`) in any
    /// response, idling or not.
    pub fn on_news(&mut self) {
        self.news = true;
    }

    /// Whether news came since the last search was issued: a driver about
    /// to idle must search instead.
    pub fn has_news(&self) -> bool {
        self.news
    }

    /// News from IDLE, or the poll interval passed.
    pub fn on_wake(&mut self) {
        if self.phase == Phase::Waiting {
            self.phase = Phase::NeedSearch;
        }
    }

    /// A new connection is logged in.
    pub fn on_reconnected(&mut self) {
        self.phase = Phase::NeedSelect;
    }

    /// The highest UID handled and its UIDVALIDITY (for logs and tests).
    pub fn position(&self) -> Option<(u32, u32)> {
        self.uid_validity.map(|v| (v, self.last_uid))
    }

    /// The next step. Calling it again without reporting repeats the step
    /// (except `Fetch`, which hands each UID out once).
    pub fn poll_step(&mut self) -> Step {
        match self.phase {
            Phase::NeedSelect => Step::Select,
            Phase::NeedSearch => {
                // Whatever the server announced until now, this search sees.
                self.news = false;
                Step::Search { from: self.last_uid.saturating_add(1) }
            }
            Phase::Fetching => {
                if !self.in_flight.is_empty() {
                    // The driver asked again before finishing the batch:
                    // hand out the same batch (idempotent downstream).
                    return Step::Fetch(self.in_flight.clone());
                }
                if self.queue.is_empty() {
                    return self.after_batch();
                }
                let n = self.params.batch.min(self.queue.len());
                self.in_flight = self.queue.drain(..n).collect();
                Step::Fetch(self.in_flight.clone())
            }
            Phase::Marking => {
                if self.to_mark.is_empty() {
                    self.on_marked();
                    self.poll_step()
                } else {
                    Step::Mark(self.to_mark.clone())
                }
            }
            Phase::Waiting if self.news => {
                self.phase = Phase::NeedSearch;
                self.poll_step()
            }
            Phase::Waiting => Step::Wait { idle: self.idle, poll: self.params.poll },
            Phase::Broken => {
                let exp = self.failures.saturating_sub(1).min(16);
                let after = self.params.backoff.saturating_mul(1u32 << exp).min(self.params.max_backoff);
                Step::Reconnect { after }
            }
        }
    }

    fn after_batch(&mut self) -> Step {
        if self.to_mark.is_empty() {
            self.phase = Phase::Waiting;
            self.poll_step()
        } else {
            self.phase = Phase::Marking;
            Step::Mark(self.to_mark.clone())
        }
    }

    /// Must be called when a `Fetch` batch is finished (all UIDs handled or
    /// vanished): moves on to flagging them.
    pub fn on_batch_done(&mut self) {
        self.in_flight.clear();
        if !self.to_mark.is_empty() {
            self.phase = Phase::Marking;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core() -> SyncCore {
        let mut c = SyncCore::new(SyncParams { batch: 2, ..SyncParams::default() });
        c.on_capabilities(true);
        c
    }

    /// Runs one fetch batch where every UID is handled.
    fn handle_batch(c: &mut SyncCore) -> Vec<u32> {
        let Step::Fetch(uids) = c.poll_step() else { panic!("expected a fetch") };
        for &u in &uids {
            c.on_handled(u);
        }
        c.on_batch_done();
        uids
    }

    #[test]
    fn fresh_mailbox_in_batches_then_idle() {
        let mut c = core();
        assert_eq!(c.poll_step(), Step::Select);
        assert_eq!(c.on_selected(7, None), Selected::Continue);
        assert_eq!(c.poll_step(), Step::Search { from: 1 });
        c.on_search([3, 1, 2, 2]);
        assert_eq!(handle_batch(&mut c), vec![1, 2]);
        assert_eq!(c.poll_step(), Step::Mark(vec![1, 2]));
        c.on_marked();
        assert_eq!(handle_batch(&mut c), vec![3]);
        assert_eq!(c.poll_step(), Step::Mark(vec![3]));
        c.on_marked();
        assert!(matches!(c.poll_step(), Step::Wait { idle: true, .. }));
        c.on_wake();
        assert_eq!(c.poll_step(), Step::Search { from: 4 });
        // `UID SEARCH UID 4:*` on a mailbox whose top UID is 3 returns 3.
        c.on_search([3]);
        assert!(matches!(c.poll_step(), Step::Wait { .. }));
        assert_eq!(c.position(), Some((7, 3)));
    }

    #[test]
    fn resumes_after_the_stored_uid() {
        let mut c = core();
        c.poll_step();
        c.on_selected(7, Some(41));
        assert_eq!(c.poll_step(), Step::Search { from: 42 });
    }

    #[test]
    fn failure_mid_batch_backs_off_and_resumes_from_the_store() {
        let mut c = core();
        c.on_selected(7, None);
        c.on_search([1, 2, 3]);
        let Step::Fetch(b) = c.poll_step() else { panic!() };
        c.on_handled(b[0]);
        c.on_failed();
        let Step::Reconnect { after: a1 } = c.poll_step() else { panic!() };
        c.on_reconnected();
        assert_eq!(c.poll_step(), Step::Select);
        c.on_failed();
        let Step::Reconnect { after: a2 } = c.poll_step() else { panic!() };
        assert!(a2 > a1, "back-off grows");
        c.on_reconnected();
        // The store holds UID 1 (stored before the failure): resume at 2.
        c.on_selected(7, Some(1));
        assert_eq!(c.poll_step(), Step::Search { from: 2 });
        c.on_search([2, 3]);
        assert_eq!(handle_batch(&mut c), vec![2, 3]);
        // UID 1 was handled before the failure and is flagged with these.
        assert_eq!(c.poll_step(), Step::Mark(vec![1, 2, 3]));
    }

    #[test]
    fn uidvalidity_change_starts_over() {
        let mut c = core();
        c.on_selected(7, Some(10));
        c.on_search([11]);
        handle_batch(&mut c);
        c.poll_step();
        c.on_marked();
        c.on_failed();
        c.on_reconnected();
        assert_eq!(c.on_selected(8, None), Selected::ValidityChanged { old: 7, new: 8 });
        assert_eq!(c.poll_step(), Step::Search { from: 1 });
    }

    #[test]
    fn news_between_commands_searches_again_instead_of_waiting() {
        let mut c = core();
        c.on_selected(7, None);
        assert_eq!(c.poll_step(), Step::Search { from: 1 });
        c.on_search([1]);
        assert_eq!(handle_batch(&mut c), vec![1]);
        assert_eq!(c.poll_step(), Step::Mark(vec![1]));
        // `* 2 EXISTS` arrives in the response to UID STORE, not in IDLE.
        c.on_news();
        c.on_marked();
        assert_eq!(c.poll_step(), Step::Search { from: 2 });
        assert!(!c.has_news(), "issuing the search consumes the news");
        c.on_search([2]);
        assert_eq!(handle_batch(&mut c), vec![2]);
        c.poll_step();
        c.on_marked();
        assert!(matches!(c.poll_step(), Step::Wait { idle: true, .. }));
        // News while the driver starts IDLE (before `+ idling`): the driver
        // sees `has_news` and wakes instead of idling.
        c.on_news();
        assert!(c.has_news());
        c.on_wake();
        assert_eq!(c.poll_step(), Step::Search { from: 3 });
        // News during the search response itself: one more search.
        c.on_news();
        c.on_search([2]);
        assert_eq!(c.poll_step(), Step::Search { from: 3 });
        c.on_search([2]);
        assert!(matches!(c.poll_step(), Step::Wait { .. }));
    }

    #[test]
    fn vanished_uids_are_skipped_and_poll_without_idle() {
        let mut c = SyncCore::new(SyncParams { batch: 10, poll: Duration::from_secs(5), ..SyncParams::default() });
        c.on_capabilities(false);
        c.on_selected(1, None);
        c.on_search([5, 6]);
        let Step::Fetch(b) = c.poll_step() else { panic!() };
        assert_eq!(b, vec![5, 6]);
        c.on_vanished(5);
        c.on_handled(6);
        c.on_batch_done();
        assert_eq!(c.poll_step(), Step::Mark(vec![6]));
        c.on_marked();
        assert_eq!(c.poll_step(), Step::Wait { idle: false, poll: Duration::from_secs(5) });
        c.on_wake();
        assert_eq!(c.poll_step(), Step::Search { from: 7 });
    }
}
