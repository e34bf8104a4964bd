//! The back-to-back user agent: SIP calls with their media legs, bridging,
//! prompts, recording, DTMF, and one call record per call.
//!
//! [`B2bua`] joins the SIP [`driver::Handle`] and the [`Media`] thread.
//! Every call terminates here: we allocate an RTP port per call (a *leg*)
//! and put it in our SDP, so the far ends only ever talk to us. Connecting
//! two calls is [`B2bua::bridge`], a switch in the media thread with no
//! signalling toward either far end; [`B2bua::unbridge`] and a later
//! bridge to another call re-route the same nailed-up leg (an agent) to
//! the next customer.
//!
//! A pump task consumes the SIP driver's and the media thread's events,
//! keeps the call book (times, legs, recording), applies answers' SDP to
//! legs, closes legs when calls end, hands each finished call's
//! [`CallRecord`] to the [`CallRecordSink`], and re-emits everything as
//! [`CallEvent`]s (SIP events, plus DTMF and prompt ends keyed by call).
//!
//! **Architecture invariant:** this crate knows no store. The composition
//! root implements [`CallRecordSink`] (e.g. against the CRM) — it is called
//! from the pump task, so it must not block for long (queue inside).

use crate::driver::{self, DriverError};
use crate::endpoint::{CallError, Dial, Event, Outcome};
use crate::g711::Codec;
use crate::media::{LegId, Media, MediaError, MediaEvent};
use crate::msg::CallId;
use crate::wav::Prompt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

/// Which side started the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// The record of one finished call, for the CRM's call log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub call: CallId,
    pub direction: Direction,
    /// Caller (user part) and callee (number dialled / Request-URI user).
    pub from: String,
    pub to: String,
    pub started: SystemTime,
    /// First 180/183 (outbound) or our 180 (inbound).
    pub ringing: Option<SystemTime>,
    pub answered: Option<SystemTime>,
    pub ended: SystemTime,
    pub outcome: Outcome,
    /// The final SIP status behind the outcome, if one came from the wire.
    pub sip_status: Option<u16>,
    /// Our media leg for this call.
    pub leg: Option<LegId>,
    /// Calls this one was bridged to, in order.
    pub bridged_with: Vec<CallId>,
    /// The last recording made of this call.
    pub recording: Option<PathBuf>,
}

/// Receives call records; implemented by the composition root.
pub trait CallRecordSink: Send + Sync {
    fn call_ended(&self, record: CallRecord);
}

/// What the application receives from the B2BUA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// Every SIP event, unchanged (after the B2BUA has acted on it).
    Sip(Event),
    /// An RFC 4733 key press from the call's far end.
    Dtmf { call: CallId, digit: char, duration_ms: u32 },
    /// A prompt played to the end.
    PromptDone { call: CallId },
}

#[derive(Debug, thiserror::Error)]
pub enum B2buaError {
    #[error(transparent)]
    Sip(#[from] DriverError),
    #[error(transparent)]
    Media(#[from] MediaError),
    #[error("no such call")]
    UnknownCall,
    #[error("the call has no media leg yet")]
    NoLeg,
    #[error("the offer has no codec we speak (PCMU, PCMA)")]
    NoCodec,
}

impl From<CallError> for B2buaError {
    fn from(e: CallError) -> Self {
        B2buaError::Sip(DriverError::Call(e))
    }
}

struct Entry {
    direction: Direction,
    from: String,
    to: String,
    started: SystemTime,
    ringing: Option<SystemTime>,
    answered: Option<SystemTime>,
    leg: Option<LegId>,
    bridged_with: Vec<CallId>,
    recording: Option<PathBuf>,
    /// Inbound: the offer, until we answer.
    offer: Option<Vec<u8>>,
}

#[derive(Default)]
struct Book {
    calls: HashMap<CallId, Entry>,
    by_leg: HashMap<LegId, CallId>,
}

/// Call control with media. Cheap to clone.
#[derive(Clone)]
pub struct B2bua {
    sip: driver::Handle,
    media: Media,
    book: Arc<Mutex<Book>>,
}

/// Capacity of the [`CallEvent`] queue.
pub const EVENT_QUEUE: usize = 1024;

impl B2bua {
    /// Starts the pump over the driver's and media thread's event streams.
    pub fn spawn(
        sip: driver::Handle,
        sip_events: mpsc::Receiver<Event>,
        media: Media,
        media_events: mpsc::Receiver<MediaEvent>,
        sink: Arc<dyn CallRecordSink>,
    ) -> (B2bua, mpsc::Receiver<CallEvent>, JoinHandle<()>) {
        let b = B2bua { sip, media, book: Arc::new(Mutex::new(Book::default())) };
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let task = tokio::spawn(b.clone().pump(sip_events, media_events, sink, tx));
        (b, rx, task)
    }

    pub fn media(&self) -> &Media {
        &self.media
    }

    pub fn sip(&self) -> &driver::Handle {
        &self.sip
    }

    async fn pump(self, mut sip: mpsc::Receiver<Event>, mut media: mpsc::Receiver<MediaEvent>, sink: Arc<dyn CallRecordSink>, out: mpsc::Sender<CallEvent>) {
        let mut media_open = true;
        loop {
            let ev = tokio::select! {
                e = sip.recv() => match e {
                    Some(e) => self.on_sip(e, sink.as_ref()).await,
                    None => break,
                },
                m = media.recv(), if media_open => match m {
                    Some(m) => self.on_media(m).await,
                    None => { media_open = false; None }
                },
            };
            if let Some(ev) = ev {
                // A dropped receiver only means nobody listens; calls go on.
                let _ = out.send(ev).await;
            }
        }
    }

    async fn on_sip(&self, ev: Event, sink: &dyn CallRecordSink) -> Option<CallEvent> {
        let now = SystemTime::now();
        let mut book = self.book.lock().await;
        match &ev {
            Event::Incoming(inc) => {
                book.calls.insert(
                    inc.call.clone(),
                    Entry { direction: Direction::Inbound, from: inc.caller.clone(), to: inc.callee.clone(), started: now, ringing: None, answered: None, leg: None, bridged_with: Vec::new(), recording: None, offer: Some(inc.sdp.clone()) },
                );
            }
            Event::Progress { call, sdp, .. } => {
                if let Some(e) = book.calls.get_mut(call) {
                    e.ringing.get_or_insert(now);
                    if let (Some(leg), Some(sdp)) = (e.leg, sdp) {
                        self.point_leg(leg, sdp);
                    }
                }
            }
            Event::Answered { call, sdp } => {
                if let Some(e) = book.calls.get_mut(call) {
                    e.answered = Some(now);
                    if let Some(leg) = e.leg {
                        self.point_leg(leg, sdp);
                    }
                }
            }
            Event::Ended { call, outcome, status } => {
                if let Some(e) = book.calls.remove(call) {
                    if let Some(leg) = e.leg {
                        book.by_leg.remove(&leg);
                        let _ = self.media.close_leg(leg);
                    }
                    sink.call_ended(CallRecord {
                        call: call.clone(),
                        direction: e.direction,
                        from: e.from,
                        to: e.to,
                        started: e.started,
                        ringing: e.ringing,
                        answered: e.answered,
                        ended: now,
                        outcome: *outcome,
                        sip_status: *status,
                        leg: e.leg,
                        bridged_with: e.bridged_with,
                        recording: e.recording,
                    });
                }
            }
            Event::Registered { .. } => {}
        }
        Some(CallEvent::Sip(ev))
    }

    async fn on_media(&self, ev: MediaEvent) -> Option<CallEvent> {
        let book = self.book.lock().await;
        match ev {
            MediaEvent::Dtmf { leg, digit, duration_ms } => Some(CallEvent::Dtmf { call: book.by_leg.get(&leg)?.clone(), digit, duration_ms }),
            MediaEvent::PromptDone { leg } => Some(CallEvent::PromptDone { call: book.by_leg.get(&leg)?.clone() }),
            MediaEvent::Latched { leg, to } => {
                tracing::debug!(%leg, %to, "media latched");
                None
            }
        }
    }

    /// Points a leg at the far end an SDP body describes.
    fn point_leg(&self, leg: LegId, sdp: &[u8]) {
        if let Some(m) = crate::sdp::parse(sdp) {
            let codec = m.codec().unwrap_or(Codec::Pcmu);
            let _ = self.media.set_remote(leg, m.addr, codec, m.telephone_event);
        }
    }

    /// Places an outbound call with a new media leg (`dial.rtp` is ignored
    /// and replaced by the leg's address).
    pub async fn dial(&self, mut dial: Dial) -> Result<CallId, B2buaError> {
        let (leg, addr) = self.media.open_leg(Codec::Pcmu)?;
        dial.rtp = addr;
        let (from, to) = (dial.caller.clone(), dial.number.clone());
        // Holding the book across the dial keeps the pump from seeing this
        // call's first response before the entry exists. The driver replies
        // to commands without waiting on its event queue, so this cannot
        // deadlock unless that queue (1024 events) is already full.
        let mut book = self.book.lock().await;
        let call = match self.sip.dial(dial).await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.media.close_leg(leg);
                return Err(e.into());
            }
        };
        book.by_leg.insert(leg, call.clone());
        book.calls.insert(
            call.clone(),
            Entry { direction: Direction::Outbound, from, to, started: SystemTime::now(), ringing: None, answered: None, leg: Some(leg), bridged_with: Vec::new(), recording: None, offer: None },
        );
        Ok(call)
    }

    /// Sends 180 on an inbound call.
    pub async fn ring(&self, call: &CallId) -> Result<(), B2buaError> {
        self.sip.ring(call.clone()).await?;
        if let Some(e) = self.book.lock().await.calls.get_mut(call) {
            e.ringing.get_or_insert(SystemTime::now());
        }
        Ok(())
    }

    /// Answers an inbound call: opens its leg in the offered codec and
    /// answers with our SDP.
    pub async fn answer(&self, call: &CallId) -> Result<LegId, B2buaError> {
        let mut book = self.book.lock().await;
        let e = book.calls.get_mut(call).ok_or(B2buaError::UnknownCall)?;
        let offer = e.offer.clone().ok_or(B2buaError::NoCodec)?;
        let m = crate::sdp::parse(&offer).ok_or(B2buaError::NoCodec)?;
        let codec = m.codec().ok_or(B2buaError::NoCodec)?;
        let (leg, addr) = self.media.open_leg(codec)?;
        let Some(answer) = crate::sdp::answer(&offer, addr, u64::from(rand::random::<u32>())) else {
            let _ = self.media.close_leg(leg);
            return Err(B2buaError::NoCodec);
        };
        self.media.set_remote(leg, m.addr, codec, m.telephone_event)?;
        if let Err(err) = self.sip.answer(call.clone(), answer.into_bytes()).await {
            let _ = self.media.close_leg(leg);
            return Err(err.into());
        }
        e.leg = Some(leg);
        e.offer = None;
        e.answered = Some(SystemTime::now());
        book.by_leg.insert(leg, call.clone());
        Ok(leg)
    }

    /// Books a media leg that is not a SIP call — a browser's WebRTC leg
    /// relayed in-process by the composition root — under a Call-ID of its
    /// own, so that [`B2bua::bridge`], [`B2bua::leg`] and the dialer treat it
    /// like an agent's SIP leg. It is "answered" from the start; it ends only
    /// by [`B2bua::detach_leg`] (no SIP, no call record).
    pub async fn attach_leg(&self, call: CallId, leg: LegId, from: &str) -> Result<(), B2buaError> {
        let mut book = self.book.lock().await;
        let now = SystemTime::now();
        book.by_leg.insert(leg, call.clone());
        book.calls.insert(
            call,
            Entry { direction: Direction::Inbound, from: from.to_string(), to: "webrtc".into(), started: now, ringing: None, answered: Some(now), leg: Some(leg), bridged_with: Vec::new(), recording: None, offer: None },
        );
        Ok(())
    }

    /// The caller and callee (user parts) of a live call.
    pub async fn parties(&self, call: &CallId) -> Option<(String, String)> {
        self.book.lock().await.calls.get(call).map(|e| (e.from.clone(), e.to.clone()))
    }

    /// Ends a leg booked with [`B2bua::attach_leg`]: unbridges and closes it.
    pub async fn detach_leg(&self, call: &CallId) {
        let mut book = self.book.lock().await;
        if let Some(leg) = book.calls.remove(call).and_then(|e| e.leg) {
            book.by_leg.remove(&leg);
            let _ = self.media.close_leg(leg);
        }
    }

    /// Rejects an inbound call.
    pub async fn reject(&self, call: &CallId, status: u16) -> Result<(), B2buaError> {
        Ok(self.sip.reject(call.clone(), status).await?)
    }

    /// Hangs up (CANCEL, 603 or BYE as the state requires). The leg is
    /// closed and the record emitted when the call's `Ended` arrives.
    pub async fn hangup(&self, call: &CallId) -> Result<(), B2buaError> {
        Ok(self.sip.hangup(call.clone()).await?)
    }

    async fn leg_of(&self, call: &CallId) -> Result<LegId, B2buaError> {
        self.book.lock().await.calls.get(call).ok_or(B2buaError::UnknownCall)?.leg.ok_or(B2buaError::NoLeg)
    }

    /// The media leg of a call, once it has one.
    /// The dialog of an outbound call, to store so that a process started
    /// after a crash can end it ([`B2bua::adopt`]).
    pub async fn dialog(&self, call: &CallId) -> Option<String> {
        self.sip.dialog(call.clone()).await.ok().flatten()
    }

    /// Ends a call a crashed process left up, from its stored dialog (no
    /// media leg; its end comes as an `Ended` event).
    pub async fn adopt(&self, dialog: &str) -> Result<CallId, B2buaError> {
        Ok(self.sip.adopt(dialog.to_string()).await?)
    }

    pub async fn leg(&self, call: &CallId) -> Option<LegId> {
        self.leg_of(call).await.ok()
    }

    /// Connects the media of two calls (each is unbridged from any other first).
    pub async fn bridge(&self, a: &CallId, b: &CallId) -> Result<(), B2buaError> {
        let mut book = self.book.lock().await;
        let la = book.calls.get(a).ok_or(B2buaError::UnknownCall)?.leg.ok_or(B2buaError::NoLeg)?;
        let lb = book.calls.get(b).ok_or(B2buaError::UnknownCall)?.leg.ok_or(B2buaError::NoLeg)?;
        self.media.bridge(la, lb)?;
        if let Some(e) = book.calls.get_mut(a) {
            e.bridged_with.push(b.clone());
        }
        if let Some(e) = book.calls.get_mut(b) {
            e.bridged_with.push(a.clone());
        }
        Ok(())
    }

    /// Disconnects a call's media from whatever it is bridged to.
    pub async fn unbridge(&self, call: &CallId) -> Result<(), B2buaError> {
        Ok(self.media.unbridge(self.leg_of(call).await?)?)
    }

    /// Plays a prompt into the call (it pre-empts bridged audio toward that
    /// far end until it ends; [`CallEvent::PromptDone`] follows).
    pub async fn play(&self, call: &CallId, prompt: Prompt) -> Result<(), B2buaError> {
        Ok(self.media.play(self.leg_of(call).await?, prompt)?)
    }

    /// Taps the call's inbound audio (what the far end says) as decoded
    /// 20 ms PCM frames for the next `max` of audio; see
    /// [`crate::media::Media::tap`] (bounded, frames dropped if the
    /// consumer lags). The dialer's answering-machine detection listens
    /// to an answered call this way before it bridges it.
    pub async fn tap(&self, call: &CallId, max: std::time::Duration, cap: usize) -> Result<tokio::sync::mpsc::Receiver<crate::media::PcmFrame>, B2buaError> {
        Ok(self.media.tap(self.leg_of(call).await?, max, cap)?)
    }

    /// Starts (`Some(path)`) or stops (`None`) recording the call, both
    /// directions as a 2-channel WAV. When the call is bridged, that is the
    /// whole conversation: left the far end, right what it heard.
    pub async fn record(&self, call: &CallId, path: Option<&Path>) -> Result<(), B2buaError> {
        let mut book = self.book.lock().await;
        let e = book.calls.get_mut(call).ok_or(B2buaError::UnknownCall)?;
        let leg = e.leg.ok_or(B2buaError::NoLeg)?;
        match path {
            Some(p) => {
                self.media.record_start(leg, p)?;
                e.recording = Some(p.to_owned());
            }
            None => self.media.record_stop(leg)?,
        }
        Ok(())
    }
}
