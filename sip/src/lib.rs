//! SIP signalling and RTP media for centralino.
//!
//! This crate will own: SIP messages on `rsip` (with our thin layer closing its
//! gaps: compact headers, folded lines, RFC 8760 digest), a sans-IO transaction
//! and dialog core with injected time, a thin tokio driver for UDP and TCP, the
//! registrar for agents' softphones, SDP offer/answer for PCMU/PCMA, and an
//! in-process B2BUA with an RTP relay. It depends on no other workspace crate:
//! call records and agent credentials cross through traits that the
//! composition root (`web`) implements.
