//! The durable, batched log of tracking events.
//!
//! Every open and click must survive a `kill -9`, yet writing one database
//! row per hit would make the tracking endpoints as slow as the database.
//! So an event goes first to a **write-ahead file** and then, in batches, to
//! the store:
//!
//! 1. [`EventLog::record`] hands the event to one of `shards` appender
//!    threads (round robin) and waits. Each appender owns its own segment
//!    files; it takes everything queued to it, writes it with one `write`
//!    and one `fdatasync` (group commit: while one batch syncs the next one
//!    gathers), then acknowledges the whole batch. The HTTP handler replies
//!    only after that, so an acknowledged hit is on disk. Several appenders
//!    because `fdatasync`s of different files run in parallel and the
//!    file system joins them into one journal commit: on this project's
//!    ext4 one appender managed ≈ 900–1,700 syncs/s, four ≈ 7,000–16,000,
//!    so a hit waits for a shorter sync and fewer hits queue behind one.
//! 2. The appender forwards the batch to the database writer, which inserts
//!    up to 1,000 events per multi-row statement, at the latest every
//!    100 ms ([`crm::Store::record_events`]).
//! 3. The write-ahead file is cut into segments. Once every event of a
//!    sealed segment is in the database the segment is deleted.
//! 4. At start, [`EventLog::open`] replays whatever segments are left into
//!    the store before taking new events. Each event carries a random key
//!    and the insert ignores keys already stored, so replaying a segment
//!    whose events were partly or wholly inserted is harmless. A torn last
//!    line (the crash hit mid-write) was never acknowledged and is skipped.
//!
//! If the database is down, events keep being accepted and acknowledged
//! (they are on disk); the writer retries and the segments stay until it
//! succeeds.

use crm::campaigns::TrackEvent;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// Tuning of the event log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Events per database statement.
    pub batch: usize,
    /// Longest an event waits for the database.
    pub flush_every: Duration,
    /// A segment is sealed after this many bytes …
    pub segment_bytes: u64,
    /// … or this long.
    pub segment_age: Duration,
    /// `fdatasync` every batch (off only for measuring its cost).
    pub sync: bool,
    /// Appender threads, each with its own segment files.
    pub shards: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { batch: 1000, flush_every: Duration::from_millis(100), segment_bytes: 8 << 20, segment_age: Duration::from_secs(2), sync: true, shards: 4 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("the event log is closed")]
    Closed,
    #[error("event log I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("event log replay: {0}")]
    Store(#[from] crm::Error),
}

struct Pending {
    line: Vec<u8>,
    event: TrackEvent,
    ack: oneshot::Sender<bool>,
}

enum ToDb {
    Events(Vec<TrackEvent>),
    Sealed(PathBuf),
}

/// The handle the tracking endpoints use; cheap to clone. When every clone
/// is dropped the log drains: the last segment is sealed and written to the
/// store, and the task returned by [`EventLog::open`] ends.
#[derive(Clone, Debug)]
pub struct EventLog {
    shards: std::sync::Arc<[mpsc::Sender<Pending>]>,
    next: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// `events-SEQ-SHARD.wal`; `events-SEQ.wal` (one appender) is read too.
fn segment_path(dir: &Path, seq: u64, shard: usize) -> PathBuf {
    dir.join(format!("events-{seq:012}-{shard}.wal"))
}

fn segments(dir: &Path) -> std::io::Result<Vec<((u64, usize), PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        let Some(stem) = name.strip_prefix("events-").and_then(|s| s.strip_suffix(".wal")) else { continue };
        let (seq, shard) = stem.split_once('-').unwrap_or((stem, "0"));
        if let (Ok(seq), Ok(shard)) = (seq.parse::<u64>(), shard.parse::<usize>()) {
            out.push(((seq, shard), e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads the events of a segment; a line that does not parse (a torn
/// write) is skipped.
pub fn read_segment(path: &Path) -> std::io::Result<Vec<TrackEvent>> {
    let f = File::open(path)?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(f).split(b'\n') {
        if let Ok(ev) = serde_json::from_slice::<TrackEvent>(&line?) {
            out.push(ev);
        }
    }
    Ok(out)
}

impl EventLog {
    /// Replays leftover segments of `dir` into the store, then starts the
    /// appender thread and the database writer. Returns the handle and the
    /// writer's task (await it after dropping every handle, before closing
    /// the store).
    pub async fn open(dir: &Path, store: crm::Store, opts: LogOptions) -> Result<(EventLog, tokio::task::JoinHandle<()>), LogError> {
        std::fs::create_dir_all(dir)?;
        let mut next = 0;
        let mut replayed = 0;
        for ((seq, _), path) in segments(dir)? {
            let events = read_segment(&path)?;
            for chunk in events.chunks(opts.batch.max(1)) {
                replayed += store.record_events(chunk).await?;
            }
            std::fs::remove_file(&path)?;
            next = seq + 1;
        }
        if replayed > 0 {
            info!(replayed, "tracking events replayed from the write-ahead log");
        }
        let (db_tx, db_rx) = mpsc::unbounded_channel::<ToDb>();
        let mut shards = Vec::new();
        for shard in 0..opts.shards.max(1) {
            let (tx, rx) = mpsc::channel::<Pending>(16_384);
            let (dir, db_tx, o) = (dir.to_path_buf(), db_tx.clone(), opts.clone());
            std::thread::Builder::new().name(format!("tracking-wal-{shard}")).spawn(move || appender(dir, shard, next, rx, db_tx, o))?;
            shards.push(tx);
        }
        drop(db_tx);
        let writer = tokio::spawn(db_writer(store, db_rx, opts));
        Ok((EventLog { shards: shards.into(), next: Default::default() }, writer))
    }

    /// Logs one event durably: returns once it is on disk.
    pub async fn record(&self, event: TrackEvent) -> Result<(), LogError> {
        let mut line = serde_json::to_vec(&event).map_err(|e| LogError::Io(e.into()))?;
        line.push(b'\n');
        let (ack, done) = oneshot::channel();
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.shards.len();
        self.shards[i].send(Pending { line, event, ack }).await.map_err(|_| LogError::Closed)?;
        match done.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(LogError::Io(std::io::Error::other("write-ahead log write failed"))),
            Err(_) => Err(LogError::Closed),
        }
    }
}

/// The appender thread: group commit into the current segment.
fn appender(dir: PathBuf, shard: usize, mut seq: u64, mut rx: mpsc::Receiver<Pending>, db: mpsc::UnboundedSender<ToDb>, opts: LogOptions) {
    let open = |seq: u64| OpenOptions::new().create(true).append(true).open(segment_path(&dir, seq, shard));
    let mut file = match open(seq) {
        Ok(f) => f,
        Err(e) => {
            warn!(error = %e, "cannot open the tracking write-ahead log; events are refused");
            return;
        }
    };
    let mut bytes = 0u64;
    let mut opened = Instant::now();
    let mut batch: Vec<Pending> = Vec::with_capacity(1024);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < 8192 {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        buf.clear();
        for p in &batch {
            buf.extend_from_slice(&p.line);
        }
        let ok = file.write_all(&buf).and_then(|_| if opts.sync { file.sync_data() } else { Ok(()) });
        if let Err(e) = &ok {
            warn!(error = %e, "tracking write-ahead log write failed");
        }
        let mut events = Vec::with_capacity(batch.len());
        for p in batch.drain(..) {
            let _ = p.ack.send(ok.is_ok());
            if ok.is_ok() {
                events.push(p.event);
            }
        }
        bytes += buf.len() as u64;
        let _ = db.send(ToDb::Events(events));
        if bytes >= opts.segment_bytes || opened.elapsed() >= opts.segment_age {
            match open(seq + 1) {
                Ok(f) => {
                    let _ = db.send(ToDb::Sealed(segment_path(&dir, seq, shard)));
                    file = f;
                    seq += 1;
                    bytes = 0;
                    opened = Instant::now();
                }
                Err(e) => warn!(error = %e, "cannot start a new write-ahead segment"),
            }
        }
    }
    // Every handle is gone: seal the last segment so the writer can finish.
    let _ = db.send(ToDb::Sealed(segment_path(&dir, seq, shard)));
}

/// The database writer: batches of up to `opts.batch`, at the latest every
/// `opts.flush_every`; sealed segments deleted once all their events are in.
async fn db_writer(store: crm::Store, mut rx: mpsc::UnboundedReceiver<ToDb>, opts: LogOptions) {
    let mut buf: Vec<TrackEvent> = Vec::new();
    let mut sealed: Vec<PathBuf> = Vec::new();
    let mut closed = false;
    let mut tick = tokio::time::interval(opts.flush_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flush_now = tokio::select! {
            m = rx.recv(), if !closed => match m {
                Some(ToDb::Events(ev)) => { buf.extend(ev); buf.len() >= opts.batch }
                Some(ToDb::Sealed(p)) => { sealed.push(p); false }
                None => { closed = true; true }
            },
            _ = tick.tick() => true,
        };
        if flush_now && !buf.is_empty() {
            let n = buf.len().min(opts.batch.max(1) * 8);
            match store.record_events(&buf[..n]).await {
                Ok(_) => {
                    buf.drain(..n);
                }
                Err(e) => {
                    warn!(error = %e, pending = buf.len(), "tracking events not stored yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if buf.is_empty() {
            for p in sealed.drain(..) {
                if let Err(e) = std::fs::remove_file(&p) {
                    warn!(error = %e, path = %p.display(), "cannot delete a stored write-ahead segment");
                }
            }
            if closed {
                break;
            }
        }
    }
}
