//! The browser softphone: an agent's nailed-up audio leg over WebRTC.
//!
//! At login the console sends an SDP offer ([`Softphones::open`]); we answer
//! with a PCMU-only [`webrtc`] peer connection whose ICE host candidate is
//! the SIP address (loopback in tests and the demo) and which speaks
//! DTLS-SRTP with the browser. Its audio is relayed, without transcoding,
//! to a media leg of the [`sip::media`] thread — the same kind of leg a SIP
//! call gets — through a UDP socket on the same address: decrypted RTP from
//! the browser is re-framed (12-byte header, PT 0) and sent to the leg; what
//! the leg sends us is written to the browser's track. The leg is booked in
//! the B2BUA under a Call-ID of its own ([`sip::b2bua::B2bua::attach_leg`]),
//! so to the dialer it is an agent leg like any other: `login(agent, leg)`
//! takes that Call-ID, and bridging a customer to it is a switch in the
//! media thread.
//!
//! Why a UDP hop rather than a channel into the media thread: the media
//! thread owns sockets and never blocks or hands packets off (see
//! `sip::media`); one loopback datagram per 20 ms frame costs less than
//! teaching it a second kind of leg.
//!
//! telephone-event is deliberately not registered: webrtc 0.21.1 answers
//! it with a duplicate, wrong-rate payload type.

use sip::b2bua::B2bua;
use sip::g711::Codec;
use sip::media::LegId;
use sip::msg::CallId;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

use ::rtc::media_stream::MediaStreamTrack;
use ::rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine};
use ::rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use ::rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use ::webrtc::media_stream::track_local::TrackLocal;
use ::webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use ::webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use ::webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState, RTCPeerConnectionState,
    RTCSessionDescription, Registry,
};

/// How long we wait for our own ICE gathering (host candidates only, so
/// it completes at once in practice).
const GATHER_LIMIT: Duration = Duration::from_secs(5);
/// ICE consent timeouts of the agent's leg (see `open`).
const ICE_DISCONNECTED: Duration = Duration::from_secs(4);
const ICE_FAILED: Duration = Duration::from_secs(8);

#[derive(Debug, thiserror::Error)]
pub enum SoftphoneError {
    #[error("telephony is off on this server")]
    NoTelephony,
    #[error("the offer is not a usable SDP offer: {0}")]
    BadOffer(String),
    #[error("the offer has no PCMU audio")]
    NoPcmu,
    #[error("WebRTC failed: {0}")]
    Rtc(String),
    #[error("media: {0}")]
    Media(String),
}

/// Counters of one softphone, for the console and the tests.
#[derive(Debug, Default)]
pub struct Counters {
    /// RTP packets received from the browser and relayed to the media leg.
    pub from_browser: AtomicU64,
    /// RTP packets from the media leg written to the browser.
    pub to_browser: AtomicU64,
}

/// One agent's live leg.
pub struct Softphone {
    /// The Call-ID under which the B2BUA books the leg (give it to the
    /// dialer's `login`).
    pub leg: CallId,
    pub media_leg: LegId,
    pub counters: Arc<Counters>,
    pub state: Arc<Mutex<String>>,
    pc: Arc<dyn PeerConnection>,
    relay: tokio::task::JoinHandle<()>,
}

/// What [`Softphones::open`] returns.
pub struct Opened {
    pub sdp: String,
    pub leg: CallId,
}

/// The softphones of this process, one per user (a new one replaces the
/// old: a reloaded tab opens a fresh leg). Cheap to clone.
#[derive(Clone, Default)]
pub struct Softphones {
    b2bua: Arc<std::sync::OnceLock<(B2bua, IpAddr)>>,
    by_user: Arc<Mutex<HashMap<i64, Arc<Softphone>>>>,
}

struct Handler {
    gathered: tokio::sync::mpsc::Sender<()>,
    state: Arc<Mutex<String>>,
    out: Arc<UdpSocket>,
    leg_addr: SocketAddr,
    counters: Arc<Counters>,
    /// To end the leg when the browser is gone (ICE failed, DTLS closed),
    /// so the dialer stops bridging customers to a dead leg.
    owner: (Softphones, i64, CallId),
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if let Ok(mut s) = self.state.lock() {
            *s = state.to_string();
        }
        if matches!(state, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) {
            let (phones, user, leg) = self.owner.clone();
            tokio::spawn(async move { phones.close_leg(user, &leg).await });
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let (out, to, counters) = (self.out.clone(), self.leg_addr, self.counters.clone());
        // The browser's audio: re-framed as plain RTP (PCMU, PT 0) toward
        // the media leg, which rewrites SSRC/seq/ts for whoever it feeds.
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Some(ev) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(p) = ev else { continue };
                let payload: &[u8] = &p.payload;
                let n = sip::rtp::HEADER_LEN + payload.len();
                if payload.is_empty() || n > buf.len() {
                    continue;
                }
                let mut head = [0u8; sip::rtp::HEADER_LEN];
                sip::rtp::write_header(&mut head, p.header.marker, 0, p.header.sequence_number, p.header.timestamp, p.header.ssrc);
                buf[..sip::rtp::HEADER_LEN].copy_from_slice(&head);
                buf[sip::rtp::HEADER_LEN..n].copy_from_slice(payload);
                if out.send_to(&buf[..n], to).await.is_ok() {
                    counters.from_browser.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

fn pcmu() -> RTCRtpCodec {
    RTCRtpCodec { mime_type: MIME_TYPE_PCMU.to_owned(), clock_rate: 8000, channels: 1, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] }
}

impl Softphones {
    /// Gives the registry the B2BUA and the media address (once, when
    /// telephony starts).
    pub fn set_b2bua(&self, b2bua: B2bua, ip: IpAddr) {
        let _ = self.b2bua.set((b2bua, ip));
    }

    pub fn enabled(&self) -> bool {
        self.b2bua.get().is_some()
    }

    /// The user's live softphone.
    pub fn of(&self, user: i64) -> Option<Arc<Softphone>> {
        self.by_user.lock().ok()?.get(&user).cloned()
    }

    /// The user whose softphone leg has this Call-ID.
    pub fn user_of_leg(&self, leg: &str) -> Option<i64> {
        self.by_user.lock().ok()?.iter().find(|(_, s)| s.leg.as_str() == leg).map(|(u, _)| *u)
    }

    /// Answers a browser's offer with a new leg for `user` (replacing any
    /// earlier one). Returns the answer SDP (complete: no trickle ICE) and
    /// the leg's Call-ID.
    pub async fn open(&self, user: i64, username: &str, offer: String) -> Result<Opened, SoftphoneError> {
        let (b2bua, ip) = self.b2bua.get().cloned().ok_or(SoftphoneError::NoTelephony)?;
        if !offer.to_ascii_uppercase().contains("PCMU/8000") {
            return Err(SoftphoneError::NoPcmu);
        }
        let offer = RTCSessionDescription::offer(offer).map_err(|e| SoftphoneError::BadOffer(e.to_string()))?;
        self.close(user).await;

        let media = b2bua.media().clone();
        let (media_leg, leg_addr) = media.open_leg(Codec::Pcmu).map_err(|e| SoftphoneError::Media(e.to_string()))?;
        let fail = |e: String| {
            let _ = media.close_leg(media_leg);
            SoftphoneError::Rtc(e)
        };
        let sock = UdpSocket::bind(SocketAddr::new(ip, 0)).await.map_err(|e| fail(e.to_string()))?;
        let sock = Arc::new(sock);
        let local = sock.local_addr().map_err(|e| fail(e.to_string()))?;
        media.set_remote(media_leg, Some(local), Codec::Pcmu, None).map_err(|e| fail(e.to_string()))?;

        let mut engine = MediaEngine::default();
        engine
            .register_codec(RTCRtpCodecParameters { rtp_codec: pcmu(), payload_type: 0 }, RtpCodecKind::Audio)
            .map_err(|e| fail(e.to_string()))?;
        let registry = ::webrtc::peer_connection::register_default_interceptors(Registry::new(), &mut engine).map_err(|e| fail(e.to_string()))?;
        // A browser that is gone stops its ICE consent checks: after 4 s we
        // call the leg disconnected and 8 s later failed, and end it.
        let settings = SettingEngineBuilder::new()
            .with_include_loopback_candidate(true)
            .with_ice_timeouts(Some(ICE_DISCONNECTED), Some(ICE_FAILED), Some(Duration::from_secs(2)))
            .build();
        let counters = Arc::new(Counters::default());
        let state = Arc::new(Mutex::new("new".to_string()));
        let (gathered, mut gathered_rx) = tokio::sync::mpsc::channel(1);
        let leg = CallId::parse(&format!("webrtc-{user}-{:016x}", rand::random::<u64>())).ok_or_else(|| fail("call id".into()))?;
        let handler = Arc::new(Handler { gathered, state: state.clone(), out: sock.clone(), leg_addr, counters: counters.clone(), owner: (self.clone(), user, leg.clone()) });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(vec![SocketAddr::new(ip, 0)])
            .build()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc = rand::random::<u32>();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("centralino-{user}"),
            "audio".to_string(),
            "agent audio".to_string(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters { rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() }, codec: pcmu(), ..Default::default() }],
        )));
        let answer = async {
            pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
            pc.set_remote_description(offer).await?;
            let answer = pc.create_answer(None).await?;
            pc.set_local_description(answer).await?;
            Ok::<(), ::webrtc::error::Error>(())
        }
        .await;
        if let Err(e) = answer {
            let _ = pc.close().await;
            return Err(fail(e.to_string()));
        }
        let _ = tokio::time::timeout(GATHER_LIMIT, gathered_rx.recv()).await;
        let Some(local_desc) = pc.local_description().await else {
            let _ = pc.close().await;
            return Err(fail("no local description".into()));
        };

        // What the media leg sends us goes to the browser's track.
        let relay = {
            let (sock, counters) = (sock.clone(), counters.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 1500];
                loop {
                    let Ok((n, from)) = sock.recv_from(&mut buf).await else { break };
                    if from != leg_addr {
                        continue;
                    }
                    let Some(h) = sip::rtp::parse(&buf[..n]) else { continue };
                    let header = ::rtc::rtp::Header {
                        version: 2,
                        marker: h.marker,
                        payload_type: 0,
                        sequence_number: h.seq,
                        timestamp: h.timestamp,
                        ssrc,
                        ..Default::default()
                    };
                    let pkt = ::rtc::rtp::Packet { header, payload: buf[h.payload_offset..h.payload_end].to_vec().into() };
                    if track.write_rtp(pkt).await.is_ok() {
                        counters.to_browser.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };

        if let Err(e) = b2bua.attach_leg(leg.clone(), media_leg, username).await {
            relay.abort();
            let _ = pc.close().await;
            return Err(fail(e.to_string()));
        }
        let phone = Arc::new(Softphone { leg: leg.clone(), media_leg, counters, state, pc, relay });
        if let Ok(mut m) = self.by_user.lock() {
            m.insert(user, phone);
        }
        tracing::info!(user, leg = %leg, "softphone leg up");
        Ok(Opened { sdp: local_desc.sdp, leg })
    }

    /// Ends the user's softphone leg if it is still `leg` (a newer one stays).
    pub async fn close_leg(&self, user: i64, leg: &CallId) {
        let current = self.by_user.lock().ok().and_then(|m| m.get(&user).map(|p| &p.leg == leg));
        if current == Some(true) {
            tracing::info!(user, leg = %leg, "softphone leg gone (browser left)");
            self.close(user).await;
        }
    }

    /// Ends the user's softphone leg, if any.
    pub async fn close(&self, user: i64) {
        let old = self.by_user.lock().ok().and_then(|mut m| m.remove(&user));
        if let Some(p) = old {
            p.relay.abort();
            let _ = p.pc.close().await;
            if let Some((b2bua, _)) = self.b2bua.get() {
                b2bua.detach_leg(&p.leg).await;
            }
        }
    }
}
