//! Deterministic, realistic test data: parties with Italian and US numbers
//! ([`PartyGen`]) and CSV files as people export them from spreadsheets
//! ([`write_import_csv`]).
//!
//! Every party and every CSV row is generated from its own seeded RNG
//! (`seed` mixed with its index), so any one of them can be regenerated on
//! its own: the lookup benchmark picks random existing numbers by
//! regenerating random parties instead of reading them back or holding a
//! million numbers in memory, and duplicate CSV rows regenerate the row they
//! repeat.
//!
//! Numbers are built directly in E.164 form (the store's own form) from
//! ranges that libphonenumber accepts; [`PartyGen::self_check`] parses a
//! sample of them the way the API does, so a generator that drifts into
//! invalid ranges fails loudly instead of benchmarking rejections. The US
//! area code 646 is never generated: numbers in it are guaranteed misses.

use anyhow::{Context, bail};
use crm::parties::{Email, Phone, Site, ValidParty};
use crm::{Channel, EmailAddress, PartyKind, PhoneKind, PhoneNumber, Region, Stage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::Path;

const FIRST_IT: &[&str] = &[
    "Marco", "Giulia", "Luca", "Francesca", "Alessandro", "Chiara", "Matteo", "Sara", "Lorenzo", "Martina", "Andrea", "Elena", "Davide",
    "Valentina", "Simone", "Alice", "Federico", "Giorgia", "Riccardo", "Anna", "Niccolò", "Beatrice", "Tommaso", "Aurora", "Gabriele",
];
const LAST_IT: &[&str] = &[
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti",
    "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti", "Barbieri", "Fontana", "Santoro", "D'Angelo", "Caruso",
];
const FIRST_US: &[&str] = &["John", "Mary", "Michael", "Jennifer", "David", "Linda", "James", "Patricia", "Robert", "Susan", "William", "Karen"];
const LAST_US: &[&str] = &["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "O'Brien", "García", "Taylor"];
const COMPANY_A: &[&str] = &["Tecno", "Idro", "Agri", "Edil", "Info", "Orto", "Vetro", "Meccanica", "Logistica", "Termo", "Elettro", "Farma"];
const COMPANY_B: &[&str] = &["service", "sistemi", "italia", "group", "lab", "nord", "sud", "solutions", "impianti", "commerciale"];
const COMPANY_SUFFIX: &[&str] = &["S.r.l.", "S.p.A.", "S.n.c.", "S.a.s.", "Inc.", "LLC"];

/// Italian mobile prefixes (the three digits after +39).
const IT_MOBILE: &[&str] = &[
    "320", "324", "327", "328", "329", "330", "331", "333", "334", "335", "336", "337", "338", "339", "340", "342", "345", "346", "347",
    "348", "349", "350", "351", "366", "368", "380", "388", "389",
];
/// (city, zone, area code without the trunk 0, subscriber digits)
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
/// (city, zone, area code). 646 is kept out: it is the miss range.
const US_CITIES: &[(&str, &str, &str)] = &[
    ("New York", "US-East", "212"),
    ("San Francisco", "US-West", "415"),
    ("Chicago", "US-Central", "312"),
    ("Boston", "US-East", "617"),
    ("Los Angeles", "US-West", "310"),
    ("Miami", "US-East", "305"),
];
const STAGES: &[Stage] = &[Stage::Lead, Stage::Lead, Stage::Suspect, Stage::Prospect, Stage::Customer];

/// A number as generated, before it is written down: country and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Num {
    /// Italian national significant number including the trunk 0 of
    /// landlines (`3331234567`, `0212345678`), which E.164 keeps for Italy.
    It { national: String, area_len: usize },
    Us { area: String, exchange: String, line: String },
}

impl Num {
    pub fn e164(&self) -> String {
        match self {
            Num::It { national, .. } => format!("+39{national}"),
            Num::Us { area, exchange, line } => format!("+1{area}{exchange}{line}"),
        }
    }

    /// The number as people write it in a spreadsheet; `style` picks one of
    /// several common ways.
    pub fn written(&self, style: u32) -> String {
        match self {
            Num::It { national, area_len } if national.starts_with('3') => {
                let (p, rest) = national.split_at(3);
                match style % 6 {
                    0 => format!("{p} {rest}"),
                    1 => format!("+39 {p} {} {}", &rest[..3], &rest[3..]),
                    2 => format!("0039 {p} {rest}"),
                    3 => format!("{p}-{rest}"),
                    4 => format!("{p}.{}.{}", &rest[..3], &rest[3..]),
                    _ => format!("+39{national}"),
                }
            }
            Num::It { national, area_len } => {
                let (a, rest) = national.split_at(*area_len);
                match style % 4 {
                    0 => format!("{a} {} {}", &rest[..rest.len() / 2], &rest[rest.len() / 2..]),
                    1 => format!("{a}/{rest}"),
                    2 => format!("+39 {a} {rest}"),
                    _ => national.clone(),
                }
            }
            Num::Us { area, exchange, line } => match style % 4 {
                0 => format!("+1 ({area}) {exchange}-{line}"),
                1 => format!("+1 {area}-{exchange}-{line}"),
                2 => format!("001 {area} {exchange} {line}"),
                _ => format!("+1.{area}.{exchange}.{line}"),
            },
        }
    }
}

fn digits(rng: &mut StdRng, n: usize) -> String {
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

fn it_mobile(rng: &mut StdRng) -> Num {
    let p = pick(rng, IT_MOBILE);
    Num::It { national: format!("{p}{}", digits(rng, 7)), area_len: 3 }
}

fn it_landline(rng: &mut StdRng, area: &str, n: usize) -> Num {
    // Subscriber numbers do not start with 0 or 1.
    let first = char::from(b'0' + rng.random_range(2..10u8));
    Num::It { national: format!("0{area}{first}{}", digits(rng, n - 1)), area_len: area.len() + 1 }
}

/// A US exchange: 2–9 first, not N11, not 555 (reserved for fiction).
fn us_exchange(rng: &mut StdRng) -> String {
    loop {
        let e: u32 = rng.random_range(200..1000);
        if e % 100 != 11 && e != 555 && e != 958 && e != 959 && e != 950 && e != 976 {
            return e.to_string();
        }
    }
}

fn us_number(rng: &mut StdRng, area: &str) -> Num {
    let exchange = us_exchange(rng);
    Num::Us { area: area.into(), exchange, line: digits(rng, 4) }
}

fn slug(s: &str) -> String {
    s.to_lowercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

/// A generated party before it becomes a [`ValidParty`]: what the CSV
/// writer needs too.
#[derive(Debug, Clone)]
pub struct Person {
    pub company_only: bool,
    pub first: String,
    pub last: String,
    pub company: Option<String>,
    pub city: String,
    pub zone: String,
    pub us: bool,
    /// The main number: a mobile for persons, the switchboard for companies.
    pub main: Num,
    /// A second number (office or home), sometimes.
    pub other: Option<Num>,
    pub email: Option<String>,
    pub stage: Stage,
    pub consent_email: Option<bool>,
    pub note: Option<String>,
}

/// Generates party `i` of a data set with a given seed.
#[derive(Debug, Clone, Copy)]
pub struct PartyGen {
    seed: u64,
}

impl PartyGen {
    pub fn new(seed: u64) -> PartyGen {
        PartyGen { seed }
    }

    fn rng(&self, stream: u64, i: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407) ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The raw facts of party `i`: 80 % persons, 20 % companies; 80 %
    /// Italian, 20 % US.
    pub fn person(&self, i: u64) -> Person {
        let mut rng = self.rng(1, i);
        let us = rng.random_bool(0.2);
        let company_only = rng.random_bool(0.2);
        let (city, zone, main, other) = if us {
            let (c, z, area) = *pick(&mut rng, US_CITIES);
            let main = us_number(&mut rng, area);
            let other = rng.random_bool(0.3).then(|| us_number(&mut rng, area));
            (c, z, main, other)
        } else {
            let (c, z, area, n) = *pick(&mut rng, IT_CITIES);
            if company_only {
                let main = it_landline(&mut rng, area, n);
                let other = rng.random_bool(0.3).then(|| it_mobile(&mut rng));
                (c, z, main, other)
            } else {
                let main = it_mobile(&mut rng);
                let other = rng.random_bool(0.3).then(|| it_landline(&mut rng, area, n));
                (c, z, main, other)
            }
        };
        let (first, last) = if us { (*pick(&mut rng, FIRST_US), *pick(&mut rng, LAST_US)) } else { (*pick(&mut rng, FIRST_IT), *pick(&mut rng, LAST_IT)) };
        let company = if company_only || rng.random_bool(0.2) {
            // A few thousand distinct companies, so that persons share them.
            let k = rng.random_range(0..4_000u32);
            let mut crng = self.rng(2, u64::from(k));
            Some(format!(
                "{}{} {} {}",
                pick(&mut crng, COMPANY_A),
                pick(&mut crng, COMPANY_B),
                k,
                pick(&mut crng, COMPANY_SUFFIX)
            ))
        } else {
            None
        };
        let email = if company_only {
            company.as_ref().map(|c| format!("info@{}.example", slug(c)))
        } else {
            rng.random_bool(0.6).then(|| format!("{}.{}{}@mail.example", slug(first), slug(last), i))
        };
        let stage = *pick(&mut rng, STAGES);
        let consent_email = rng.random_bool(0.5).then(|| rng.random_bool(0.6));
        let note = rng.random_bool(0.1).then(|| "Richiamare dopo le 17; preferisce WhatsApp".to_string());
        Person { company_only, first: first.into(), last: last.into(), company, city: city.into(), zone: zone.into(), us, main, other, email, stage, consent_email, note }
    }

    /// Party `i` as the store takes it. Companies get a site and
    /// characteristics; everyone gets a consent now and then.
    pub fn party(&self, i: u64) -> anyhow::Result<ValidParty> {
        let p = self.person(i);
        let phone = |n: &Num, kind| -> anyhow::Result<Phone> {
            Ok(Phone { number: PhoneNumber::from_e164(&n.e164()).map_err(anyhow::Error::msg)?, kind })
        };
        let mut phones = vec![phone(&p.main, if p.company_only { PhoneKind::Office } else { PhoneKind::Mobile })?];
        if let Some(o) = &p.other {
            phones.push(phone(o, if p.company_only { PhoneKind::Mobile } else { PhoneKind::Office })?);
        }
        let emails = match &p.email {
            Some(e) => vec![Email { address: EmailAddress::parse(e).map_err(anyhow::Error::msg)?, kind: "work".into() }],
            None => Vec::new(),
        };
        let mut characteristics = BTreeMap::new();
        let mut sites = Vec::new();
        if p.company_only {
            characteristics.insert("sector".to_string(), ["manufacturing", "retail", "services", "public"][(i % 4) as usize].to_string());
            sites.push(Site { label: "Sede".into(), street: Some(format!("Via Roma {}", i % 200 + 1)), city: Some(p.city.clone()), province: None, postcode: None, country: Some(if p.us { "US" } else { "IT" }.into()) });
        }
        let consents = p.consent_email.map(|g| vec![(Channel::Email, g, "loadtest".to_string())]).unwrap_or_default();
        let (kind, name, first_name, last_name) = if p.company_only {
            (PartyKind::Company, p.company.clone().unwrap_or_else(|| format!("Azienda {i}")), None, None)
        } else {
            (PartyKind::Person, format!("{} {}", p.first, p.last), Some(p.first.clone()), Some(p.last.clone()))
        };
        Ok(ValidParty {
            kind,
            name,
            first_name,
            last_name,
            company_id: None,
            stage: p.stage,
            commercial_state_id: None,
            owner_id: None,
            city: Some(p.city),
            zone: Some(p.zone),
            do_not_call: i.is_multiple_of(37),
            notes: p.note,
            phones,
            emails,
            sites,
            characteristics,
            consents,
        })
    }

    /// The main number of party `i` in E.164.
    pub fn main_number(&self, i: u64) -> String {
        self.person(i).main.e164()
    }

    /// A number that no party of any data set has (US area code 646).
    pub fn miss_number(rng: &mut StdRng) -> String {
        us_number(rng, "646").e164()
    }

    /// Parses a sample of generated numbers the way the API parses input
    /// and checks they come out as generated.
    pub fn self_check(&self, sample: u64) -> anyhow::Result<()> {
        let region = Region::default();
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut nums: Vec<(String, String)> = Vec::new();
        for i in 0..sample {
            let p = self.person(i);
            for (k, n) in std::iter::once(&p.main).chain(p.other.as_ref()).enumerate() {
                nums.push((n.written(i as u32 + k as u32), n.e164()));
            }
            let m = Self::miss_number(&mut rng);
            nums.push((m.clone(), m));
        }
        for (written, e164) in nums {
            let parsed = PhoneNumber::parse(&written, region).map_err(anyhow::Error::msg).with_context(|| format!("generated number {written:?}"))?;
            if parsed.as_str() != e164 {
                bail!("generated number {written:?} parses as {parsed} but was meant as {e164}");
            }
        }
        Ok(())
    }
}

/// What went into a generated import file.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CsvStats {
    pub rows: u64,
    /// Rows that must be rejected (bad phone, bad email, no name, bad flag,
    /// wrong field count).
    pub bad: u64,
    /// Rows that repeat an earlier row's number or email, written differently.
    pub duplicates: u64,
    pub bytes: u64,
}

pub const CSV_HEADERS: &[&str] = &["Nome", "Cognome", "Azienda", "Città", "Telefono", "Cellulare", "Email", "Consenso email", "Note"];

/// The column mapping for [`CSV_HEADERS`].
pub fn csv_mapping() -> crm::import::ImportMapping {
    let pairs = [
        ("Nome", "first_name"),
        ("Cognome", "last_name"),
        ("Azienda", "company"),
        ("Città", "city"),
        ("Telefono", "office"),
        ("Cellulare", "mobile"),
        ("Email", "email"),
        ("Consenso email", "consent:email"),
        ("Note", "notes"),
    ];
    crm::import::ImportMapping { columns: pairs.iter().map(|(h, f)| (h.to_string(), f.to_string())).collect() }
}

fn csv_record(p: &Person, style: u32, upper_email: bool) -> Vec<String> {
    let (tel, cell) = if p.company_only { (Some(&p.main), p.other.as_ref()) } else { (p.other.as_ref(), Some(&p.main)) };
    let email = p.email.clone().map(|e| if upper_email { capitalise(&e) } else { e });
    vec![
        if p.company_only { String::new() } else { p.first.clone() },
        if p.company_only { String::new() } else { p.last.clone() },
        p.company.clone().unwrap_or_default(),
        p.city.clone(),
        tel.map(|n| n.written(style)).unwrap_or_default(),
        cell.map(|n| n.written(style + 1)).unwrap_or_default(),
        email.unwrap_or_default(),
        match p.consent_email {
            Some(true) => ["sì", "x", "1", "yes"][(style % 4) as usize].to_string(),
            Some(false) => ["no", "0", "n", "no"][(style % 4) as usize].to_string(),
            None => String::new(),
        },
        p.note.clone().unwrap_or_default(),
    ]
}

/// `mario.rossi12@mail.example` → `Mario.Rossi12@Mail.example`: how people
/// type addresses that the import must still recognise.
fn capitalise(e: &str) -> String {
    let mut out = String::with_capacity(e.len());
    let mut up = true;
    for c in e.chars() {
        out.extend(if up { c.to_uppercase().collect::<Vec<_>>() } else { vec![c] });
        up = matches!(c, '.' | '@');
    }
    out
}

/// Writes a `;`-separated CSV (Italian spreadsheet export) of `rows` data
/// rows: about 2 % bad rows and 5 % duplicates of earlier rows, with numbers
/// written as people write them.
pub fn write_import_csv(path: &Path, rows: u64, seed: u64) -> anyhow::Result<CsvStats> {
    let generator = PartyGen::new(seed);
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = csv::WriterBuilder::new().delimiter(b';').flexible(true).from_writer(std::io::BufWriter::new(file));
    w.write_record(CSV_HEADERS).context("writing the CSV header")?;
    let mut stats = CsvStats::default();
    for r in 0..rows {
        let mut rng = generator.rng(3, r);
        let roll: f64 = rng.random();
        let style = rng.random_range(0..12u32);
        let rec = if roll < 0.02 {
            stats.bad += 1;
            let mut rec = csv_record(&generator.person(r), style, false);
            match r % 5 {
                0 => rec[5] = "12345".into(),
                1 => rec[6] = "mario.rossi@".into(),
                2 => {
                    rec[0].clear();
                    rec[1].clear();
                    rec[2].clear();
                }
                3 => rec[7] = "forse".into(),
                _ => rec.truncate(5),
            }
            rec
        } else if roll < 0.07 && r > 100 {
            // Repeats an earlier (good) row: same person, numbers and email
            // written differently.
            stats.duplicates += 1;
            let j = rng.random_range(0..r);
            let base = generator.rng(3, j).random::<f64>();
            if base < 0.02 || (base < 0.07 && j > 100) {
                // The earlier row is itself bad or a duplicate: write a
                // fresh row instead, so the counts stay exact.
                stats.duplicates -= 1;
                csv_record(&generator.person(r), style, false)
            } else {
                csv_record(&generator.person(j), style + 1, true)
            }
        } else {
            csv_record(&generator.person(r), style, false)
        };
        w.write_record(&rec).context("writing a CSV row")?;
        stats.rows += 1;
    }
    w.flush().context("flushing the CSV file")?;
    drop(w);
    stats.bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(stats)
}
