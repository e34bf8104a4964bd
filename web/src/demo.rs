//! Demo data for `centralino demo`: users for every role (with printed
//! credentials), a team hierarchy, and about a thousand realistic parties
//! with Italian and US numbers. Running it again on the same database adds
//! nothing twice: it only resets the demo users' passwords.

use crm::auth::{NewTeam, NewUser};
use crm::parties::{ConsentInput, EmailInput, PartyInput, PhoneInput, Site};
use crm::{Actor, Store, UserId};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// A random password for generated accounts (22 URL-safe characters).
pub fn random_password() -> String {
    const A: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 22];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| A[*x as usize % A.len()] as char).collect()
}

const FIRST: &[&str] = &[
    "Marco", "Giulia", "Luca", "Francesca", "Alessandro", "Chiara", "Matteo", "Sara", "Lorenzo", "Martina", "Andrea", "Elena",
    "Davide", "Valentina", "Simone", "Alice", "Federico", "Giorgia", "Riccardo", "Anna", "John", "Mary", "Michael", "Jennifer",
    "David", "Linda", "James", "Patricia", "Robert", "Susan",
];
const LAST: &[&str] = &[
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo",
    "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti", "Smith", "Johnson", "Williams",
    "Brown", "Jones", "Miller", "Davis", "Wilson",
];
const COMPANY_A: &[&str] = &["Tecno", "Idro", "Agri", "Edil", "Info", "Ortho", "Vetro", "Meccanica", "Logistica", "Termo"];
const COMPANY_B: &[&str] = &["Service", "Sistemi", "Italia", "Group", "Lab", "Nord", "Sud", "Solutions", "Impianti", "Commerciale"];
const COMPANY_SUFFIX: &[&str] = &["S.r.l.", "S.p.A.", "S.n.c.", "S.a.s."];
/// (city, zone, landline prefix without the leading 0, landline digits after the prefix)
const IT_CITIES: &[(&str, &str, &str, usize)] = &[
    ("Milano", "Nord", "2", 8),
    ("Roma", "Centro", "6", 8),
    ("Torino", "Nord", "11", 7),
    ("Napoli", "Sud", "81", 7),
    ("Bologna", "Nord", "51", 7),
    ("Firenze", "Centro", "55", 7),
    ("Bari", "Sud", "80", 7),
    ("Padova", "Nord", "49", 7),
];
const US_CITIES: &[(&str, &str, &str)] = &[("New York", "US-East", "212"), ("San Francisco", "US-West", "415"), ("Chicago", "US-Central", "312"), ("Boston", "US-East", "617")];

fn digits(rng: &mut StdRng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

fn slug(s: &str) -> String {
    s.to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect()
}

/// Builds one realistic party. Companies get an office line and a site;
/// persons a mobile and sometimes a landline.
fn party(rng: &mut StdRng, i: usize, owners: &[UserId]) -> PartyInput {
    let us = rng.random_bool(0.2);
    let (city, zone, phone, office) = if us {
        let (c, z, area) = US_CITIES[rng.random_range(0..US_CITIES.len())];
        let exch = rng.random_range(201..989);
        let exch = if exch == 555 { 556 } else { exch };
        (c, z, format!("+1 {area} {exch} {}", digits(rng, 4)), format!("+1 {area} {} {}", rng.random_range(201..554), digits(rng, 4)))
    } else {
        let (c, z, pre, n) = IT_CITIES[rng.random_range(0..IT_CITIES.len())];
        let mobile = format!("3{}{} {}", rng.random_range(20..50), digits(rng, 1), digits(rng, 7));
        (c, z, mobile, format!("0{pre} {}", digits(rng, n)))
    };
    let stage = ["lead", "lead", "suspect", "prospect", "customer"][rng.random_range(0..5)];
    let owner = if rng.random_bool(0.9) { Some(owners[rng.random_range(0..owners.len())]) } else { None };
    let consent_src = "demo web form".to_string();
    if i.is_multiple_of(5) {
        let name = format!(
            "{}{} {} {}",
            COMPANY_A[rng.random_range(0..COMPANY_A.len())],
            COMPANY_B[rng.random_range(0..COMPANY_B.len())].to_lowercase(),
            i,
            COMPANY_SUFFIX[rng.random_range(0..COMPANY_SUFFIX.len())]
        );
        let domain = format!("{}.example", slug(&name.replace(' ', "")).trim_end_matches('.'));
        PartyInput {
            kind: "company".into(),
            name: Some(name),
            stage: Some(stage.into()),
            owner_id: owner,
            city: Some(city.into()),
            zone: Some(zone.into()),
            phones: vec![PhoneInput { number: office, kind: Some("office".into()) }],
            emails: vec![EmailInput { address: format!("info@{domain}"), kind: Some("work".into()) }],
            sites: vec![Site { label: "Sede".into(), street: Some(format!("Via Roma {}", rng.random_range(1..200))), city: Some(city.into()), province: None, postcode: None, country: Some(if us { "US" } else { "IT" }.into()) }],
            characteristics: [("employees".to_string(), rng.random_range(3..500).to_string()), ("sector".to_string(), ["manufacturing", "retail", "services", "public"][rng.random_range(0..4)].to_string())].into(),
            consents: vec![ConsentInput { channel: "email".into(), granted: rng.random_bool(0.7), source: consent_src.clone() }],
            ..Default::default()
        }
    } else {
        let first = FIRST[rng.random_range(0..FIRST.len())];
        let last = LAST[rng.random_range(0..LAST.len())];
        let mut phones = vec![PhoneInput { number: phone, kind: Some("mobile".into()) }];
        if rng.random_bool(0.3) {
            phones.push(PhoneInput { number: office, kind: Some("home".into()) });
        }
        PartyInput {
            kind: "person".into(),
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            stage: Some(stage.into()),
            owner_id: owner,
            city: Some(city.into()),
            zone: Some(zone.into()),
            do_not_call: Some(rng.random_bool(0.03)),
            phones,
            emails: vec![EmailInput { address: format!("{}.{}{}@mail.example", slug(first), slug(last), i), kind: Some("home".into()) }],
            characteristics: [("interest".to_string(), ["gym", "insurance", "solar", "telecom"][rng.random_range(0..4)].to_string())].into(),
            consents: vec![
                ConsentInput { channel: "phone".into(), granted: rng.random_bool(0.8), source: consent_src.clone() },
                ConsentInput { channel: "email".into(), granted: rng.random_bool(0.6), source: consent_src.clone() },
                ConsentInput { channel: "sms".into(), granted: rng.random_bool(0.5), source: consent_src },
            ],
            ..Default::default()
        }
    }
}

/// Deals on about a sixth of the parties and an agenda of calls and
/// appointments around today, on the default telemarketing outcome graph.
async fn demo_sales(store: &Store, rng: &mut StdRng, parties: &[(crm::PartyId, Option<UserId>)]) -> anyhow::Result<()> {
    let sys = Actor::system();
    store.install_default_graph(&sys).await?;
    let types = store.list_action_types().await?;
    let type_id = |name: &str| types.iter().find(|t| t.name == name).map(|t| t.id);
    let (Some(call), Some(meeting)) = (type_id("Call"), type_id("Meeting")) else {
        anyhow::bail!("the default outcome graph lacks Call or Meeting");
    };
    let now = crm::now_ms();
    const PRODUCTS: &[&str] = &["gym membership", "home insurance", "solar panels", "fibre broadband"];
    for (i, (party, owner)) in parties.iter().enumerate() {
        if i % 6 == 0 {
            let phase = ["lead", "potential", "opportunity"][rng.random_range(0..3)];
            store
                .create_deal(
                    &sys,
                    crm::deals::DealInput {
                        party_id: *party,
                        title: format!("{} offer", PRODUCTS[i % PRODUCTS.len()]),
                        phase: Some(phase.into()),
                        value_cents: Some(rng.random_range(50..5000) * 1000),
                        probability: Some(rng.random_range(10..90)),
                        expected_close_at: Some(now + rng.random_range(1..90) * 86_400_000),
                        product: Some(PRODUCTS[i % PRODUCTS.len()].into()),
                        zone: None,
                        owner_id: *owner,
                        notes: None,
                    },
                )
                .await?;
        }
        if i % 4 == 0 {
            let (kind, ty) = if rng.random_bool(0.7) { ("call", call) } else { ("appointment", meeting) };
            let due = now + rng.random_range(-2 * 86_400..7 * 86_400) * 1000;
            store
                .create_activity(
                    &sys,
                    crm::activities::ActivityInput {
                        kind: kind.into(),
                        party_id: *party,
                        action_type_id: ty,
                        deal_id: None,
                        owner_id: *owner,
                        subject: None,
                        notes: None,
                        due_at: Some(due),
                        parent_activity_id: None,
                    },
                )
                .await?;
        }
    }
    Ok(())
}

/// The demo accounts: (username, role, team).
const DEMO_USERS: &[(&str, &str, Option<&str>)] = &[
    ("admin", "admin", None),
    ("supervisor", "supervisor", None),
    ("agent1", "agent", Some("Outbound A")),
    ("agent2", "agent", Some("Outbound A")),
    ("agent3", "agent", Some("Outbound B")),
    ("support", "support", Some("Support")),
    ("marketer", "marketer", None),
];

/// Fills the store with demo data and returns (username, role, password).
pub async fn populate(store: &Store, parties: usize) -> anyhow::Result<Vec<(String, String, String)>> {
    let sys = Actor::system();
    let creds: Vec<(String, String, String)> = DEMO_USERS.iter().map(|(u, r, _)| (u.to_string(), r.to_string(), format!("{u}-demo-pass"))).collect();
    if let Some(admin) = store.find_user_by_username("admin").await? {
        // Already populated: make the printed passwords true again.
        for (u, _, pw) in &creds {
            if let Some(user) = store.find_user_by_username(u).await? {
                store.set_password(&sys, user.id, pw).await?;
            }
        }
        let _ = admin;
        return Ok(creds);
    }
    let supervisor = store
        .create_user(&sys, NewUser { username: "supervisor".into(), display_name: Some("Sara Supervisor".into()), password: "supervisor-demo-pass".into(), role: "supervisor".into(), team_id: None })
        .await?;
    let sales = store.create_team(&sys, NewTeam { name: "Sales".into(), parent_id: None, lead_user_id: Some(supervisor.id) }).await?;
    let mut teams = std::collections::HashMap::new();
    for t in ["Outbound A", "Outbound B", "Support"] {
        let parent = if t == "Support" { None } else { Some(sales.id) };
        teams.insert(t, store.create_team(&sys, NewTeam { name: t.into(), parent_id: parent, lead_user_id: None }).await?.id);
    }
    let mut owners = vec![supervisor.id];
    for (u, r, team) in DEMO_USERS {
        if *u == "supervisor" {
            continue;
        }
        let user = store
            .create_user(&sys, NewUser { username: u.to_string(), display_name: None, password: format!("{u}-demo-pass"), role: r.to_string(), team_id: team.and_then(|t| teams.get(t).copied()) })
            .await?;
        if *r == "agent" || *r == "support" {
            owners.push(user.id);
        }
    }
    let bar = ProgressBar::new(parties as u64);
    bar.set_style(ProgressStyle::with_template("demo parties {bar:40} {pos}/{len} {per_sec}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let mut rng = StdRng::seed_from_u64(2026);
    let mut made = Vec::with_capacity(parties);
    for i in 0..parties {
        let input = party(&mut rng, i, &owners);
        match store.create_party(&sys, input).await {
            Ok(p) => made.push((p.id, p.owner_id)),
            Err(crm::Error::Invalid(f)) => tracing::debug!(?f, "skipped an invalid generated party"),
            Err(e) => return Err(e.into()),
        }
        bar.inc(1);
    }
    bar.finish();
    demo_sales(store, &mut rng, &made).await?;
    Ok(creds)
}

// ---- the simulated carrier and the demo campaign ---------------------------

/// Writes no call records (the carrier's side of the demo is not ours).
struct NoRecords;
impl sip::b2bua::CallRecordSink for NoRecords {
    fn call_ended(&self, _record: sip::b2bua::CallRecord) {}
}

/// The demo's simulated carrier: a second SIP endpoint and media thread on
/// loopback that behaves like the people the dialer calls — most ring for a
/// moment and answer, talking in a synthetic voice until they hang up after
/// 20–40 s; some are busy; some never answer (the dialer's ring timeout
/// cancels them). Dropping it stops it.
pub struct Carrier {
    pub addr: std::net::SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
}

/// Starts the simulated carrier on `ip` (trusting INVITEs from `ip`).
pub async fn start_carrier(ip: std::net::IpAddr) -> anyhow::Result<Carrier> {
    use sip::b2bua::{B2bua, CallEvent};
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let socket = sip::driver::bind_udp(std::net::SocketAddr::new(ip, 0))?;
    let addr = socket.local_addr()?;
    let mut config = sip::Config::new(addr);
    config.trusted_trunks = vec![sip::guard::TrunkAddr::Ip(ip)];
    config.user_agent = "centralino-demo-carrier".into();
    let endpoint = sip::Endpoint::new(config, None);
    let (handle, sip_events, _task) = sip::driver::spawn_with_tcp(socket, None, endpoint, stop_rx)?;
    let (media, media_events, _thread) = sip::media::Media::start(sip::media::MediaConfig::new(ip))?;
    let (b2b, mut events, _pump) = B2bua::spawn(handle, sip_events, media, media_events, std::sync::Arc::new(NoRecords));
    let voice = sip::wav::Prompt::from_samples(&voice(7), sip::g711::Codec::Pcmu);
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            if let CallEvent::Sip(sip::Event::Incoming(inc)) = ev {
                tokio::spawn(callee(b2b.clone(), inc.call, voice.clone()));
            }
        }
    });
    Ok(Carrier { addr, _stop: stop })
}

/// One callee: rings, then answers and talks, is busy, or never answers.
async fn callee(b2b: sip::b2bua::B2bua, call: sip::msg::CallId, voice: sip::wav::Prompt) {
    use std::time::Duration;
    let roll: f64 = rand::random();
    if b2b.ring(&call).await.is_err() {
        return;
    }
    if roll < 0.15 {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = b2b.reject(&call, 486).await;
        return;
    }
    if roll < 0.25 {
        return; // rings until the dialer gives up
    }
    tokio::time::sleep(Duration::from_millis(rand::random_range(1500..4000))).await;
    if b2b.answer(&call).await.is_err() {
        return;
    }
    let talk = Duration::from_secs(rand::random_range(20..40));
    let started = tokio::time::Instant::now();
    while started.elapsed() < talk {
        if b2b.play(&call, voice.clone()).await.is_err() {
            return; // the agent hung up
        }
        tokio::time::sleep(Duration::from_millis(voice.duration_ms() + rand::random_range(800..2500))).await;
    }
    let _ = b2b.hangup(&call).await;
}

/// A few seconds of something that sounds like speech, synthesised (no
/// voice files or TTS needed at run time): syllables of a glottal pulse
/// train at a drifting pitch, shaped by the formants of five vowels, with
/// consonant-like noise bursts and pauses between words. 8 kHz mono.
pub fn voice(seed: u64) -> Vec<i16> {
    const RATE: f64 = 8000.0;
    const FORMANTS: &[(f64, f64)] = &[(730.0, 1090.0), (530.0, 1840.0), (270.0, 2290.0), (570.0, 840.0), (300.0, 870.0)];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut phase = 0.0f64;
    for word in 0..9 {
        let syllables = rng.random_range(1..4);
        for _ in 0..syllables {
            // A short noise burst (a consonant), then the vowel.
            for _ in 0..rng.random_range(200..500) {
                out.push((rng.random_range(-1.0..1.0f64) * 1800.0) as i16);
            }
            let (f1, f2) = FORMANTS[rng.random_range(0..FORMANTS.len())];
            let n = rng.random_range(1100..2200);
            let pitch0 = rng.random_range(105.0..140.0);
            for i in 0..n {
                let t = i as f64 / n as f64;
                let pitch = pitch0 * (1.0 + 0.08 * (t * std::f64::consts::PI).sin() - 0.05 * t);
                phase += pitch / RATE;
                let mut s = 0.0;
                let mut h = 1.0;
                while h * pitch < 3400.0 {
                    let f = h * pitch;
                    let gain = (-((f - f1) / 130.0).powi(2)).exp() + 0.6 * (-((f - f2) / 180.0).powi(2)).exp() + 0.02 / h;
                    s += gain * (2.0 * std::f64::consts::PI * h * phase).sin();
                    h += 1.0;
                }
                let env = (t * std::f64::consts::PI).sin().powf(0.6);
                out.push((s * env * 5200.0).clamp(-30000.0, 30000.0) as i16);
            }
            out.extend(std::iter::repeat_n(0i16, rng.random_range(300..700)));
        }
        let pause = if word % 3 == 2 { 3600 } else { 1400 };
        out.extend(std::iter::repeat_n(0i16, pause));
    }
    out
}

/// The name of the demo's dialer campaign.
pub const DEMO_CAMPAIGN: &str = "Demo calls";

/// Creates (or re-points at `carrier`) the demo's progressive campaign,
/// with 60 leads owned by agent1 that ring the simulated carrier, and
/// marks it running so the application starts it.
pub async fn demo_campaign(store: &Store, carrier: std::net::SocketAddr) -> anyhow::Result<()> {
    use crm::dialer_store::DialerConfig;
    let sys = Actor::system();
    let now = crm::now_ms();
    let config: DialerConfig = serde_json::from_value(serde_json::json!({
        "name": DEMO_CAMPAIGN, "trunk": carrier.to_string(), "pacing": "progressive", "ring_timeout_s": 15,
        "caller_id": "0212345678", "window": {"start": "00:00", "end": "23:59"}
    }))?;
    let existing = store.dialer_campaigns().await?.into_iter().find(|c| c.config.name == DEMO_CAMPAIGN);
    let id = match existing {
        Some(c) => store.update_dialer_campaign(&sys, c.id, config, now).await?.id,
        None => store.create_dialer_campaign(&sys, config, now).await?.id,
    };
    let owner = store.find_user_by_username("agent1").await?.map(|u| u.id);
    let mut leads = Vec::new();
    for i in 0..60 {
        let number = format!("+39 02 4000 {:04}", 100 + i);
        let e164 = crm::PhoneNumber::parse(&number, store.default_region()).map_err(anyhow::Error::msg)?;
        let party = match store.lookup_by_phone(&e164).await?.first() {
            Some(p) => p.id,
            None => {
                let first = FIRST[i % FIRST.len()];
                let last = LAST[(i * 7) % LAST.len()];
                let p = PartyInput {
                    kind: "person".into(),
                    first_name: Some(first.into()),
                    last_name: Some(last.into()),
                    stage: Some("lead".into()),
                    owner_id: owner,
                    city: Some("Milano".into()),
                    phones: vec![PhoneInput { number: number.clone(), kind: Some("mobile".into()) }],
                    ..Default::default()
                };
                store.create_party(&sys, p).await?.id
            }
        };
        leads.push((Some(party), number, 0));
    }
    store.dialer_add_leads(&sys, id, &leads, now).await?;
    store.set_dialer_running(&sys, id, true, now).await?;
    Ok(())
}
