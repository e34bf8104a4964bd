//! CSV import: mapping, normalisation, the reject list with line numbers,
//! de-duplication against the store and within the file, idempotent
//! re-runs, updates, companies, and the bulk insert path.
use crate::harness::{each_store, system};
use crm::import::{ImportMapping, ImportOptions, OnExisting};
use crm::parties::{PartyQuery, ValidParty};
use crm::{Channel, EmailAddress, Error, PartyKind, PhoneNumber, Region, Stage};
use std::collections::BTreeMap;

fn mapping(pairs: &[(&str, &str)]) -> ImportMapping {
    ImportMapping { columns: pairs.iter().map(|(h, f)| (h.to_string(), f.to_string())).collect() }
}

fn phone(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s, Region::default()).unwrap()
}

const FILE: &str = "\
Nome,Cognome,Telefono,Cellulare,E-mail,Città,Settore,Privacy email
Mario,Rossi,02 1234 5678,,mario@example.com,Milano,retail,si
Anna,Bianchi,,333 111 2222,ANNA@example.com,Roma,,no
Luca,Verdi,12,,luca@example.com,Torino,,
Sara,Neri,,,not-an-email,Napoli,,
,,,,nobody@example.com,Bari,,
Mario,Rossi,+39 02 12345678,,,Milano,,
Gino,Gialli,,,gino@example.com,Genova,,forse
Too,Short
Paolo,Blu,,,,Firenze,,
";

fn file_mapping() -> ImportMapping {
    mapping(&[
        ("Nome", "first_name"),
        ("Cognome", "last_name"),
        ("Telefono", "phone"),
        ("Cellulare", "mobile"),
        ("E-mail", "email"),
        ("Città", "city"),
        ("Settore", "characteristic:sector"),
        ("Privacy email", "consent:email"),
    ])
}

#[tokio::test]
async fn import_normalises_rejects_and_deduplicates() {
    each_store(|t| async move {
        let a = system();
        let s = &t.store;
        let mut ticks = 0;
        let opts = ImportOptions { chunk_rows: Some(3), ..Default::default() };
        let r = s.import_parties(&a, FILE.as_bytes(), &file_mapping(), &opts, |_| ticks += 1).await.unwrap();
        assert_eq!(r.rows, 9, "{}", t.name);
        let rejected: Vec<(u64, &str)> = r.rejected.iter().map(|x| (x.line, x.reason.as_str())).collect();
        assert_eq!(rejected.len(), 5, "{rejected:?}");
        assert_eq!(rejected[0].0, 4);
        assert!(rejected[0].1.starts_with("Telefono:"), "{rejected:?}");
        assert_eq!(rejected[1].0, 5);
        assert!(rejected[1].1.starts_with("E-mail:"), "{rejected:?}");
        assert_eq!(rejected[2].0, 6);
        assert!(rejected[2].1.contains("name"), "{rejected:?}");
        assert_eq!(rejected[3].0, 8);
        assert!(rejected[3].1.starts_with("Privacy email:"), "{rejected:?}");
        assert_eq!((rejected[4].0, rejected[4].1), (9, "expected 8 fields, found 2"));
        assert_eq!(r.rejected[4].fields, vec!["Too", "Short"]);
        // Line 7 repeats Mario Rossi's number: the same party, not a new one.
        assert_eq!((r.inserted, r.skipped, r.updated), (3, 1, 0), "{}", t.name);
        assert!(ticks >= 3, "at least one per chunk of three rows: {ticks}");

        let mario = s.lookup_by_phone(&phone("02 1234 5678")).await.unwrap();
        assert_eq!(mario.len(), 1);
        let m = s.get_party(&a, mario[0].id).await.unwrap();
        assert_eq!(m.name, "Mario Rossi");
        assert_eq!(m.kind, PartyKind::Person);
        assert_eq!(m.city.as_deref(), Some("Milano"));
        assert_eq!(m.characteristics.get("sector").map(String::as_str), Some("retail"));
        assert!(m.consents.iter().any(|c| c.channel == Channel::Email && c.granted && c.source == "import"));
        let anna = s.lookup_by_email(&EmailAddress::parse("anna@example.com").unwrap()).await.unwrap();
        let anna = s.get_party(&a, anna[0].id).await.unwrap();
        assert_eq!(anna.phones[0].number.as_str(), "+393331112222");
        assert_eq!(anna.phones[0].kind, crm::PhoneKind::Mobile);
        assert!(anna.consents.iter().any(|c| c.channel == Channel::Email && !c.granted));
        assert_eq!(s.history("party", m.id.0, 1).await.unwrap()[0].action, "create");

        // The reject file: header plus line and reason.
        let mut out = Vec::new();
        r.write_rejects(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("line,reason,Nome,Cognome,"), "{text}");
        assert!(text.contains("9,\"expected 8 fields, found 2\",Too,Short"), "{text}");

        // Running the same file again inserts nothing.
        let again = s.import_parties(&a, FILE.as_bytes(), &file_mapping(), &ImportOptions::default(), |_| {}).await.unwrap();
        assert_eq!((again.inserted, again.skipped, again.rejected.len()), (0, 4, 5), "{}", t.name);
        let all = s.search_parties(&a, &PartyQuery::default()).await.unwrap();
        assert_eq!(all.total, 3, "{}", t.name);
    })
    .await;
}

#[tokio::test]
async fn update_mode_adds_what_is_new_and_reruns_change_nothing() {
    each_store(|t| async move {
        let a = system();
        let s = &t.store;
        let first = "name,phone,city\nMario Rossi,02 1234 5678,Milano\n";
        s.import_parties(&a, first.as_bytes(), &ImportMapping::default(), &ImportOptions::default(), |_| {}).await.unwrap();
        let id = s.lookup_by_phone(&phone("0212345678")).await.unwrap()[0].id;
        let v1 = s.get_party(&a, id).await.unwrap().version;

        // Found by phone; brings an email, a zone, a stage and a characteristic.
        let second = "name;phone;email;zone;stage;characteristic:vip\nMario Rossi;+390212345678;mario@example.com;Nord;prospect;yes\n\
                      Mario Rossi;;mario@example.com;;;\n";
        let opts = ImportOptions { on_existing: OnExisting::Update, ..Default::default() };
        let r = s.import_parties(&a, second.as_bytes(), &ImportMapping::default(), &opts, |_| {}).await.unwrap();
        assert_eq!((r.inserted, r.updated, r.rejected.len()), (0, 1, 0), "{}: {r:?}", t.name);
        let p = s.get_party(&a, id).await.unwrap();
        assert_eq!(p.emails[0].address.as_str(), "mario@example.com");
        assert_eq!(p.zone.as_deref(), Some("Nord"));
        assert_eq!(p.city.as_deref(), Some("Milano"), "an empty cell keeps the value");
        assert_eq!(p.stage, Stage::Prospect);
        assert_eq!(p.characteristics.get("vip").map(String::as_str), Some("yes"));
        assert!(p.version > v1);
        assert_eq!(s.history("party", id.0, 1).await.unwrap()[0].action, "import-update");

        // The same update again is a no-op: no new version, no log entry.
        let r = s.import_parties(&a, second.as_bytes(), &ImportMapping::default(), &opts, |_| {}).await.unwrap();
        assert_eq!((r.inserted, r.updated, r.skipped), (0, 0, 2), "{}: {r:?}", t.name);
        assert_eq!(s.get_party(&a, id).await.unwrap().version, p.version);
    })
    .await;
}

#[tokio::test]
async fn companies_are_created_once_and_linked() {
    each_store(|t| async move {
        let a = system();
        let s = &t.store;
        let csv = "\u{feff}company;first_name;last_name;email;city\n\
                   Acme S.r.l.;;;info@acme.example;Milano\n\
                   Acme S.r.l.;Mario;Rossi;mario@acme.example;Milano\n\
                   Beta SpA;Anna;Bianchi;anna@beta.example;Roma\n\
                   Beta SpA;Luca;Verdi;luca@beta.example;Roma\n";
        let r = s.import_parties(&a, csv.as_bytes(), &ImportMapping::default(), &ImportOptions::default(), |_| {}).await.unwrap();
        assert_eq!((r.inserted, r.companies_created, r.rejected.len()), (4, 1, 0), "{}: {r:?}", t.name);
        let q = |kind: &str| PartyQuery { kind: Some(kind.into()), ..Default::default() };
        let companies = s.search_parties(&a, &q("company")).await.unwrap();
        assert_eq!(companies.items.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), vec!["Acme S.r.l.", "Beta SpA"]);
        let mario = s.lookup_by_email(&EmailAddress::parse("mario@acme.example").unwrap()).await.unwrap()[0].id;
        assert_eq!(s.get_party(&a, mario).await.unwrap().company_id, Some(companies.items[0].id));
        let r = s.import_parties(&a, csv.as_bytes(), &ImportMapping::default(), &ImportOptions::default(), |_| {}).await.unwrap();
        assert_eq!((r.inserted, r.companies_created), (0, 0), "{}", t.name);
        assert_eq!(s.search_parties(&a, &q("company")).await.unwrap().total, 2);
    })
    .await;
}

#[tokio::test]
async fn bad_mapping_or_permission_fails_the_whole_import() {
    each_store(|t| async move {
        let s = &t.store;
        let csv = "name,phone\nA,02 1234 5678\n";
        let err = s.import_parties(&system(), csv.as_bytes(), &mapping(&[("name", "name"), ("phone", "telex")]), &ImportOptions::default(), |_| {}).await;
        let Err(Error::Invalid(f)) = err else { panic!("{err:?}") };
        assert_eq!(f[0].field, "columns.phone", "{}", t.name);
        let err = s.import_parties(&system(), csv.as_bytes(), &mapping(&[("missing", "name")]), &ImportOptions::default(), |_| {}).await;
        assert!(matches!(err, Err(Error::Invalid(_))));
        let err = s.import_parties(&system(), csv.as_bytes(), &mapping(&[("phone", "phone")]), &ImportOptions::default(), |_| {}).await;
        assert!(matches!(err, Err(Error::Invalid(_))), "a name column is required");
        let u = s
            .create_user(&system(), crm::auth::NewUser { username: "agent".into(), display_name: None, password: "password123".into(), role: "agent".into(), team_id: None })
            .await
            .unwrap();
        let agent = s.actor_for(&u).await.unwrap();
        let err = s.import_parties(&agent, csv.as_bytes(), &ImportMapping::default(), &ImportOptions::default(), |_| {}).await;
        assert!(matches!(err, Err(Error::Forbidden)));
        assert_eq!(s.search_parties(&system(), &PartyQuery::default()).await.unwrap().total, 0);
    })
    .await;
}

#[test]
fn auto_mapping_knows_common_headers() {
    let m = ImportMapping::auto(&["Nome", "Cognome", "Cellulare", "E-mail", "Città", "Ragione sociale", "Codice", "characteristic:vip", "phone2"]);
    let got: Vec<(&str, &str)> = m.columns.iter().map(|(h, f)| (h.as_str(), f.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("Cellulare", "mobile"),
            ("Città", "city"),
            ("Cognome", "last_name"),
            ("E-mail", "email"),
            ("Nome", "first_name"),
            ("Ragione sociale", "company"),
            ("characteristic:vip", "characteristic:vip"),
            ("phone2", "phone2"),
        ]
    );
}

#[tokio::test]
async fn malformed_and_non_utf8_rows_are_rejected() {
    each_store(|t| async move {
        let mut csv = b"name,email\nGood One,good@example.com\n".to_vec();
        csv.extend_from_slice(b"Bad \xff Name,bad@example.com\n\"Quoted, Name\",quoted@example.com\n");
        let r = t.store.import_parties(&system(), csv.as_slice(), &ImportMapping::default(), &ImportOptions::default(), |_| {}).await.unwrap();
        assert_eq!(r.inserted, 2, "{}: {r:?}", t.name);
        assert_eq!(r.rejected.len(), 1);
        assert_eq!((r.rejected[0].line, r.rejected[0].reason.as_str()), (3, "not valid UTF-8 text"));
    })
    .await;
}

fn generated(n: usize) -> Vec<ValidParty> {
    (0..n)
        .map(|i| ValidParty {
            kind: PartyKind::Person,
            name: format!("Person {i}"),
            first_name: None,
            last_name: None,
            company_id: None,
            stage: Stage::Lead,
            commercial_state_id: None,
            owner_id: None,
            city: Some("Milano".into()),
            zone: None,
            do_not_call: false,
            notes: None,
            phones: vec![crm::parties::Phone { number: phone(&format!("+39 347 {:07}", i)), kind: crm::PhoneKind::Mobile }],
            emails: vec![],
            sites: vec![],
            characteristics: BTreeMap::from([("n".to_string(), i.to_string())]),
            consents: vec![(Channel::Sms, i % 2 == 0, "gen".into())],
        })
        .collect()
}

#[tokio::test]
async fn bulk_insert_writes_parties_children_and_log() {
    each_store(|t| async move {
        let a = system();
        let ids = t.store.insert_parties_bulk(&a, &generated(6_001)).await.unwrap();
        assert_eq!(ids.len(), 6_001);
        let p = t.store.get_party(&a, ids[6_000]).await.unwrap();
        assert_eq!(p.name, "Person 6000", "{}", t.name);
        assert_eq!(p.phones[0].number.as_str(), "+393470006000");
        assert_eq!(p.characteristics["n"], "6000");
        assert!(p.consents[0].granted);
        assert_eq!(t.store.history("party", p.id.0, 1).await.unwrap()[0].action, "create");
        // Ids keep coming from the same sequence afterwards.
        let next = t.store.create_party(&a, crm::parties::PartyInput { kind: "person".into(), name: Some("After".into()), ..Default::default() }).await.unwrap();
        assert!(next.id > ids[6_000]);
    })
    .await;
}
