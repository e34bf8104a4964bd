//! Fax: a provider interface with status callbacks, and one adapter, the
//! email-to-fax gateway.
//!
//! A [`FaxProvider`] takes a rendered PDF for a number and returns the job
//! reference under which its status will come back. Statuses —
//! queued, sending, delivered, failed with a reason — arrive as callbacks
//! ([`FaxCallback`]) that are **HMAC-SHA256 signed** with a key shared with
//! the provider ([`sign`], checked in constant time by [`verify`]) and are
//! applied by [`apply`] through [`crm::Store::record_fax_status`], which only
//! moves a job forward and never replaces a final state: a duplicated or
//! out-of-order callback (a late `sending` after `delivered`) changes
//! nothing. Every state reached is a `fax_<state>` event on the recipient's
//! timeline.
//!
//! ## The email-to-fax gateway ([`EmailFaxGateway`])
//! The fax goes out as a mail to `<digits>@<gateway domain>` with the PDF
//! attached and the job reference in the subject and in `X-Fax-Job`. The
//! gateway (or the small relay script in front of it) reports status as a
//! mail to our bounce/notification mailbox, which [`crate::bounces_in`]
//! reads. The status mail format ([`FaxStatusMail::parse`]) is headers
//! only; the body is ignored:
//! ```text
//! X-Fax-Job: <job reference>
//! X-Fax-Status: queued | sending | delivered | failed
//! X-Fax-Reason: <free text, for failed>
//! X-Fax-Signature: hex(HMAC-SHA256(key, "<job>\n<status>\n<reason>"))
//! ```
//!
//! ## How a T.38 path over our own SIP stack slots in
//! A `T38Provider` would implement [`FaxProvider`] in the composition root
//! (mailgate does not depend on `sip`): `send` places an outbound call
//! through the `sip` crate's user agent to the number on the configured
//! trunk and returns the Call-ID as the job reference; on answer it
//! re-INVITEs to `image/t38` (UDPTL), and a sans-IO T.30 engine fed by the
//! UDPTL packets drives the phases. The call's progress maps onto the same
//! states — INVITE sent = `queued`, T.30 phase B/C = `sending`, MCF after
//! the last page = `delivered`, DCN/timeout/4xx-6xx = `failed` with the
//! reason — and is reported through [`apply`] exactly like a provider's
//! callback (in-process, so it is signed with the local key). Nothing
//! above the provider changes.

use crate::error::{Error, Result};
use crm::campaigns_sms::FaxState;
use hmac::{KeyInit, Mac};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use crate::campaign::relay::Relay;
use lettre::Message;

type HmacSha256 = hmac::Hmac<sha256::Sha256>;

/// A fax provider; see the module docs.
pub trait FaxProvider {
    /// The provider's name, under which its job references are stored.
    fn name(&self) -> &str;
    /// Hands a PDF for `number` (E.164) to the provider under `job_ref`.
    fn send(&self, number: &str, job_ref: &str, pdf: Vec<u8>) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// One status report from a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct FaxCallback {
    pub job_ref: String,
    pub state: FaxState,
    /// Hex HMAC-SHA256 over [`signed_text`].
    pub signature: String,
}

/// What the signature covers: `job \n status \n reason`.
pub fn signed_text(job_ref: &str, state: &FaxState) -> String {
    let reason = match state {
        FaxState::Failed(r) => r.as_str(),
        _ => "",
    };
    format!("{job_ref}\n{}\n{reason}", state.as_str())
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; the error arm cannot happen.
    <HmacSha256 as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
}

/// The signature a provider (or our own T.38 path) puts on a status.
pub fn sign(key: &[u8], job_ref: &str, state: &FaxState) -> String {
    let mut m = mac(key);
    m.update(signed_text(job_ref, state).as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Checks a status signature in constant time.
pub fn verify(key: &[u8], job_ref: &str, state: &FaxState, signature: &str) -> bool {
    let Ok(sig) = hex::decode(signature.trim()) else { return false };
    let mut m = mac(key);
    m.update(signed_text(job_ref, state).as_bytes());
    m.verify_slice(&sig).is_ok()
}

/// Applies a signed callback for `provider`'s job. Returns whether the job
/// moved (false for a duplicate or a stale, out-of-order status). A bad
/// signature is refused before anything is read.
pub async fn apply(store: &crm::Store, provider: &str, key: &[u8], cb: &FaxCallback, now: crm::Millis) -> Result<bool> {
    if !verify(key, &cb.job_ref, &cb.state, &cb.signature) {
        return Err(Error::Build(format!("fax status for {}: bad signature", cb.job_ref)));
    }
    Ok(store.record_fax_status(provider, &cb.job_ref, &cb.state, now).await?)
}

/// The provider name of [`EmailFaxGateway`] jobs.
pub const EMAIL_GATEWAY: &str = "email-gateway";

/// A status mail from the email-to-fax gateway (format in the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct FaxStatusMail {
    pub job_ref: String,
    pub callback: FaxCallback,
}

impl FaxStatusMail {
    /// Reads the `X-Fax-*` headers of a raw mail; `None` when it is not a
    /// fax status mail (or names an unknown status).
    pub fn parse(raw: &[u8]) -> Option<FaxStatusMail> {
        let text = String::from_utf8_lossy(raw);
        let head = text.split("\r\n\r\n").next().unwrap_or("").split("\n\n").next().unwrap_or("");
        let mut headers: Vec<(String, String)> = vec![];
        for line in head.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let job_ref = get("x-fax-job")?;
        let state = match get("x-fax-status")?.to_ascii_lowercase().as_str() {
            "queued" => FaxState::Queued,
            "sending" => FaxState::Sending,
            "delivered" => FaxState::Delivered,
            "failed" => FaxState::Failed(get("x-fax-reason").unwrap_or_else(|| "unknown".into())),
            _ => return None,
        };
        let signature = get("x-fax-signature").unwrap_or_default();
        Some(FaxStatusMail { callback: FaxCallback { job_ref: job_ref.clone(), state, signature }, job_ref })
    }
}

/// Applies a status mail from the email gateway (see [`apply`]).
pub async fn apply_status_mail(store: &crm::Store, key: &[u8], mail: &FaxStatusMail, now: crm::Millis) -> Result<bool> {
    apply(store, EMAIL_GATEWAY, key, &mail.callback, now).await
}

/// The email-to-fax adapter: mails the PDF to the gateway's address for
/// the number, through the campaign relay pool.
#[derive(Clone)]
pub struct EmailFaxGateway {
    pub relay: std::sync::Arc<Relay>,
    pub from: Mailbox,
    /// The gateway's address with `{number}` where the digits go, e.g.
    /// `{number}@fax.example.net`.
    pub address: String,
}

impl EmailFaxGateway {
    /// The mail for one fax (pure; the tests look at it).
    pub fn build(&self, number: &str, job_ref: &str, pdf: Vec<u8>) -> Result<Message> {
        let digits: String = number.chars().filter(|c| c.is_ascii_digit()).collect();
        if digits.len() < 5 {
            return Err(Error::Build(format!("{number:?} is not a fax number")));
        }
        let to: Mailbox = self.address.replace("{number}", &digits).parse().map_err(|e: lettre::address::AddressError| Error::Build(e.to_string()))?;
        let pdf_type = ContentType::parse("application/pdf").map_err(|e| Error::Build(e.to_string()))?;
        let mut m = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("FAX {job_ref}"))
            .multipart(
                MultiPart::mixed()
                    .singlepart(SinglePart::plain(format!("Fax job {job_ref}\n")))
                    .singlepart(Attachment::new(format!("{job_ref}.pdf")).body(pdf, pdf_type)),
            )
            .map_err(|e| Error::Build(e.to_string()))?;
        m.headers_mut().insert_raw(lettre::message::header::HeaderValue::new(lettre::message::header::HeaderName::new_from_ascii_str("X-Fax-Job"), job_ref.to_string()));
        Ok(m)
    }
}

impl FaxProvider for EmailFaxGateway {
    fn name(&self) -> &str {
        EMAIL_GATEWAY
    }

    async fn send(&self, number: &str, job_ref: &str, pdf: Vec<u8>) -> Result<()> {
        let m = self.build(number, job_ref, pdf)?;
        let raw = m.formatted();
        self.relay.send(m.envelope(), &raw).await.map_err(|e| Error::Build(e.to_string()))?;
        Ok(())
    }
}

/// A one-page-per-60-lines text PDF, written by hand (PDF 1.4, the
/// standard Helvetica font with WinAnsi encoding, so Italian accents
/// print; characters outside Latin-1 become `?`). Hand-written rather than
/// a PDF crate: a fax of a text message needs nothing more, and the
/// structure (catalog, pages, one content stream per page, an exact xref
/// table) is forty lines.
pub fn text_pdf(title: &str, text: &str) -> Vec<u8> {
    const LINES: usize = 60;
    const WIDTH: usize = 90;
    let mut lines: Vec<String> = vec![title.to_string(), String::new()];
    for para in text.lines() {
        let mut cur = String::new();
        for word in para.split(' ') {
            if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > WIDTH {
                lines.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
        lines.push(cur);
    }
    let pages: Vec<&[String]> = lines.chunks(LINES).collect();
    let literal = |s: &str| -> Vec<u8> {
        let mut out = vec![b'('];
        for c in s.chars() {
            let b = if (c as u32) < 0x20 { b' ' } else if (c as u32) <= 0xFF { c as u32 as u8 } else { b'?' };
            if matches!(b, b'(' | b')' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b')');
        out
    };
    // Objects: 1 catalog, 2 pages, 3 font, then (page, content) per page.
    let n = pages.len();
    let mut objs: Vec<Vec<u8>> = vec![];
    objs.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    let kids: Vec<String> = (0..n).map(|i| format!("{} 0 R", 4 + 2 * i)).collect();
    objs.push(format!("<< /Type /Pages /Kids [{}] /Count {n} >>", kids.join(" ")).into_bytes());
    objs.push(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec());
    for (i, page) in pages.iter().enumerate() {
        objs.push(format!("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>", 5 + 2 * i).into_bytes());
        let mut content = b"BT /F1 10 Tf 12 TL 50 800 Td\n".to_vec();
        for l in page.iter() {
            content.extend(literal(l));
            content.extend(b" Tj T*\n");
        }
        content.extend(b"ET");
        let mut o = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        o.extend(content);
        o.extend(b"\nendstream");
        objs.push(o);
    }
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = vec![];
    for (i, o) in objs.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend(o);
        pdf.extend(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objs.len() + 1).as_bytes());
    for off in offsets {
        pdf.extend(format!("{off:010} 00000 n \n").as_bytes());
    }
    pdf.extend(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objs.len() + 1).as_bytes());
    pdf
}

/// What one round of [`FaxSender::drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaxReport {
    pub sent: usize,
    pub failed: usize,
    pub deferred: usize,
}

/// Drains the outbox's fax rows: merge the template's text for the
/// recipient, render it as a PDF, register the job under a reference fixed
/// per row (`fax-<row>`, so a retry after a crash is the same job and
/// statuses for it still map), and hand it to the provider. Consent and
/// suppression are checked at claim time as for every channel.
pub struct FaxSender<P: FaxProvider> {
    pub provider: P,
    pub batch: i64,
    pub lease: std::time::Duration,
}

impl<P: FaxProvider + Sync> FaxSender<P> {
    pub fn new(provider: P) -> FaxSender<P> {
        FaxSender { provider, batch: 50, lease: std::time::Duration::from_secs(600) }
    }

    pub async fn drain(&self, store: &crm::Store, now: crm::Millis) -> Result<FaxReport> {
        let mut report = FaxReport::default();
        for message in store.sendable_messages(crm::Channel::Fax, now).await? {
            let info = store.send_info(message).await?;
            let rows = store.claim_outbox(message, self.batch, self.lease.as_millis() as i64, now).await?;
            let parties: Vec<crm::PartyId> = rows.iter().map(|r| r.party_id).collect();
            let ctxs = store.merge_contexts(&parties).await?;
            for row in rows {
                let job_ref = format!("fax-{}", row.outbox_id);
                let pdf = match ctxs.get(&row.party_id.0).map(|ctx| crm::campaigns_template::render(&info.template, ctx)) {
                    Some(Ok(r)) => text_pdf(&r.subject, &r.text),
                    Some(Err(e)) => {
                        store.complete_outbox(row.outbox_id, crm::campaigns::Outcome::Failed, &e, crm::now_ms()).await?;
                        report.failed += 1;
                        continue;
                    }
                    None => {
                        store.complete_outbox(row.outbox_id, crm::campaigns::Outcome::Failed, "the party no longer exists", crm::now_ms()).await?;
                        report.failed += 1;
                        continue;
                    }
                };
                store.record_fax_job(self.provider.name(), &job_ref, row.outbox_id, crm::now_ms()).await?;
                match self.provider.send(&row.address, &job_ref, pdf).await {
                    Ok(()) => {
                        store.complete_outbox(row.outbox_id, crm::campaigns::Outcome::Sent, &format!("handed to {} as {job_ref}", self.provider.name()), crm::now_ms()).await?;
                        report.sent += 1;
                    }
                    Err(Error::Build(e)) if e.starts_with("SMTP (transient)") && row.attempts < 8 => {
                        tracing::warn!(error = %e, job = %job_ref, "fax not handed over; retrying later");
                        store.defer_outbox(row.outbox_id, crm::now_ms() + (60_000i64 << row.attempts.clamp(0, 6)), crm::now_ms()).await?;
                        report.deferred += 1;
                    }
                    Err(e) => {
                        store.complete_outbox(row.outbox_id, crm::campaigns::Outcome::Failed, &e.to_string(), crm::now_ms()).await?;
                        report.failed += 1;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Drains every `poll` until `shutdown` turns true.
    pub async fn run(self, store: crm::Store, poll: std::time::Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            match self.drain(&store, crm::now_ms()).await {
                Ok(r) if r.sent + r.failed > 0 => tracing::info!(?r, "campaign faxes handed over"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "fax drain failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
