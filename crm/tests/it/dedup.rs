//! De-duplication: name normalisation, candidates by phone, email and
//! similar name in the same city, the batch scan, dismissals, and merges
//! that move everything to the survivor in one transaction.
use crate::harness::{each_store, system};
use crm::auth::NewUser;
use crm::dedup::{MatchReason, ScanOptions, name_similarity, normalise_name};
use crm::lists::{ListKind, ListPage, NewList};
use crm::parties::{ConsentInput, EmailInput, PartyInput, PhoneInput, Site};
use crm::{Actor, Channel, Error, PartyId, PartyKind, Store};

fn check(kind: PartyKind, input: &str, expected: &str) {
    assert_eq!(normalise_name(kind, input), expected, "{input:?}");
}

#[test]
fn names_normalise_case_accents_punctuation_and_order() {
    check(PartyKind::Person, "Mario Rossi", "mario rossi");
    check(PartyKind::Person, "ROSSI, Mario", "mario rossi");
    check(PartyKind::Person, "Niccolò D'Amico", "damico niccolo");
    check(PartyKind::Person, "  José   Müller-Lüdenscheidt ", "jose ludenscheidt muller");
    check(PartyKind::Company, "Acme S.r.l.", "acme");
    check(PartyKind::Company, "ACME SpA", "acme");
    check(PartyKind::Company, "Caffè Nero & Co.", "caffe nero");
    check(PartyKind::Company, "S.p.A.", "spa");
    assert!(name_similarity("mario rossi", "mario rosi") >= 0.9);
    assert!(name_similarity("mario rossi", "mario bianchi") < 0.9);
    assert_eq!(name_similarity("", "x"), 0.0);
}

fn person(name: &str, city: &str, phone: Option<&str>, email: Option<&str>) -> PartyInput {
    PartyInput {
        kind: "person".into(),
        name: Some(name.into()),
        city: Some(city.into()),
        phones: phone.map(|p| vec![PhoneInput { number: p.into(), kind: None }]).unwrap_or_default(),
        emails: email.map(|e| vec![EmailInput { address: e.into(), kind: None }]).unwrap_or_default(),
        ..Default::default()
    }
}

async fn user(store: &Store, name: &str, role: &str) -> Actor {
    let u = store
        .create_user(&system(), NewUser { username: name.into(), display_name: None, password: "password123".into(), role: role.into(), team_id: None })
        .await
        .unwrap();
    store.actor_for(&u).await.unwrap()
}

/// Whether migration 0002 (deals, activities, outcomes) is in the schema.
async fn has_sales(store: &Store) -> bool {
    store.exec_admin("SELECT 1 FROM activities WHERE 1 = 0").await.is_ok() && store.exec_admin("SELECT 1 FROM deals WHERE 1 = 0").await.is_ok()
}

#[tokio::test]
async fn candidates_by_phone_email_and_similar_name() {
    each_store(|t| async move {
        let a = system();
        let s = &t.store;
        let me = s.create_party(&a, person("Mario Rossi", "Milano", Some("02 1234 5678"), Some("mario@example.com"))).await.unwrap();
        let by_phone = s.create_party(&a, person("M. R.", "Roma", Some("+39 02 12345678"), None)).await.unwrap();
        let by_email = s.create_party(&a, person("Ufficio", "Torino", None, Some("MARIO@example.com"))).await.unwrap();
        let by_name = s.create_party(&a, person("Rossi Mario", "MILANO", None, None)).await.unwrap();
        let typo = s.create_party(&a, person("Mario Rosi", "milano", None, None)).await.unwrap();
        let elsewhere = s.create_party(&a, person("Mario Rossi", "Napoli", None, None)).await.unwrap();
        let other = s.create_party(&a, person("Giulia Verdi", "Milano", None, None)).await.unwrap();

        let c = s.duplicate_candidates(&a, me.id).await.unwrap();
        let ids: Vec<PartyId> = c.iter().map(|c| c.party.id).collect();
        for want in [by_phone.id, by_email.id, by_name.id, typo.id] {
            assert!(ids.contains(&want), "{}: {want} missing from {ids:?}", t.name);
        }
        assert!(!ids.contains(&elsewhere.id) && !ids.contains(&other.id), "{}: {ids:?}", t.name);
        let phone = c.iter().find(|c| c.party.id == by_phone.id).unwrap();
        assert!(matches!(&phone.reasons[0], MatchReason::SamePhone { number } if number.as_str() == "+390212345678"));
        let exact = c.iter().find(|c| c.party.id == by_name.id).unwrap();
        assert_eq!(exact.reasons, vec![MatchReason::SimilarName { score: 1.0 }]);

        // A dismissed pair is not proposed again, by either side.
        s.dismiss_duplicate(&a, typo.id, me.id).await.unwrap();
        let ids: Vec<PartyId> = s.duplicate_candidates(&a, me.id).await.unwrap().iter().map(|c| c.party.id).collect();
        assert!(!ids.contains(&typo.id), "{ids:?}");

        let pairs = s.scan_duplicates(&a, &ScanOptions::default()).await.unwrap();
        let keys: Vec<(PartyId, PartyId)> = pairs.iter().map(|p| (p.a.id, p.b.id)).collect();
        for want in [(me.id, by_phone.id), (me.id, by_email.id), (me.id, by_name.id), (by_name.id, typo.id)] {
            assert!(keys.contains(&want), "{}: {want:?} missing from {keys:?}", t.name);
        }
        assert!(!keys.contains(&(me.id, typo.id)), "dismissed pair proposed: {keys:?}");
        assert!(!keys.iter().any(|k| k.0 == elsewhere.id || k.1 == elsewhere.id || k.0 == other.id || k.1 == other.id), "{keys:?}");
        let none = s.scan_duplicates(&a, &ScanOptions { limit: Some(1), names: Some(false) }).await.unwrap();
        assert_eq!(none.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn candidates_respect_visibility() {
    each_store(|t| async move {
        let s = &t.store;
        let agent = user(s, "anna", "agent").await;
        let other = user(s, "bruno", "agent").await;
        let mut mine = person("Mario Rossi", "Milano", Some("02 1234 5678"), None);
        mine.owner_id = Some(agent.user);
        let mine = s.create_party(&system(), mine).await.unwrap();
        let mut theirs = person("Mario Rossi", "Milano", Some("02 1234 5678"), None);
        theirs.owner_id = Some(other.user);
        let theirs = s.create_party(&system(), theirs).await.unwrap();
        assert!(s.duplicate_candidates(&agent, mine.id).await.unwrap().is_empty(), "{}", t.name);
        assert_eq!(s.duplicate_candidates(&system(), mine.id).await.unwrap()[0].party.id, theirs.id);
        assert!(matches!(s.scan_duplicates(&agent, &ScanOptions::default()).await, Err(Error::Forbidden)));
        assert!(matches!(s.merge_parties(&agent, mine.id, &[theirs.id]).await, Err(Error::Forbidden)));
    })
    .await;
}

#[tokio::test]
async fn merge_moves_everything_to_the_survivor() {
    each_store(|t| async move {
        let a = system();
        let s = &t.store;
        let mut si = person("Mario Rossi", "Milano", Some("02 1234 5678"), Some("mario@example.com"));
        si.characteristics.insert("sector".into(), "retail".into());
        si.consents = vec![ConsentInput { channel: "email".into(), granted: true, source: "web".into() }];
        let surv = s.create_party(&a, si).await.unwrap();
        s.set_consent(&a, surv.id, Channel::Sms, true, "old form").await.unwrap();

        let mut vi = person("Rossi Mario", "Milano", Some("+39 02 12345678"), Some("m.rossi@example.com"));
        vi.phones.push(PhoneInput { number: "333 123 4567".into(), kind: Some("mobile".into()) });
        vi.emails.push(EmailInput { address: "mario@example.com".into(), kind: None });
        vi.characteristics.insert("sector".into(), "wholesale".into());
        vi.characteristics.insert("size".into(), "10".into());
        vi.sites = vec![Site { label: "HQ".into(), street: Some("Via Roma 1".into()), city: Some("Milano".into()), province: None, postcode: None, country: None }];
        vi.zone = Some("Nord".into());
        vi.stage = Some("customer".into());
        vi.do_not_call = Some(true);
        let vict = s.create_party(&a, vi).await.unwrap();
        // The victim's SMS decision is more recent than the survivor's: it wins.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        s.set_consent(&a, vict.id, Channel::Sms, false, "call").await.unwrap();

        let other = s.create_party(&a, person("Mario Rossi", "Milano", None, Some("third@example.com"))).await.unwrap();
        let list = s.create_list(&a, NewList { name: "VIP".into(), description: None, kind: ListKind::Static, filter: None, party_ids: vec![vict.id, surv.id] }).await.unwrap();
        let list2 = s.create_list(&a, NewList { name: "Only victim".into(), description: None, kind: ListKind::Static, filter: None, party_ids: vec![other.id] }).await.unwrap();

        let sales = has_sales(s).await;
        if sales {
            for (i, p) in [vict.id, other.id].iter().enumerate() {
                s.exec_admin(&format!(
                    "INSERT INTO deals (party_id, title, phase, status, created_at, updated_at) VALUES ({}, 'deal {i}', 'lead', 'open', 1, 1)",
                    p.0
                ))
                .await
                .unwrap();
            }
            s.exec_admin("INSERT INTO action_types (name) VALUES ('merge-test call')").await.unwrap();
            s.exec_admin(&format!(
                "INSERT INTO activities (kind, party_id, action_type_id, subject, created_at, updated_at) \
                 SELECT 'call', {}, id, 'call', 1, 1 FROM action_types WHERE name = 'merge-test call'",
                vict.id.0
            ))
            .await
            .unwrap();
        }

        // Errors first: nothing changes.
        assert!(matches!(s.merge_parties(&a, surv.id, &[]).await, Err(Error::Invalid(_))));
        assert!(matches!(s.merge_parties(&a, surv.id, &[surv.id]).await, Err(Error::Invalid(_))));
        assert!(matches!(s.merge_parties(&a, surv.id, &[PartyId(999_999)]).await, Err(Error::NotFound(_))));

        let m = s.merge_parties(&a, surv.id, &[vict.id, other.id, vict.id]).await.unwrap();
        let phones: Vec<&str> = m.phones.iter().map(|p| p.number.as_str()).collect();
        assert_eq!(phones, vec!["+390212345678", "+393331234567"], "{}", t.name);
        let emails: Vec<&str> = m.emails.iter().map(|e| e.address.as_str()).collect();
        assert_eq!(emails, vec!["mario@example.com", "m.rossi@example.com", "third@example.com"]);
        assert_eq!(m.characteristics.get("sector").map(String::as_str), Some("retail"));
        assert_eq!(m.characteristics.get("size").map(String::as_str), Some("10"));
        assert_eq!(m.sites.len(), 1);
        assert_eq!(m.zone.as_deref(), Some("Nord"));
        assert_eq!(m.stage, crm::Stage::Customer);
        assert!(m.do_not_call);
        let sms = m.consents.iter().find(|c| c.channel == Channel::Sms).unwrap();
        assert!(!sms.granted && sms.source == "call", "{sms:?}");
        assert!(m.consents.iter().any(|c| c.channel == Channel::Email && c.granted));

        let v = s.get_party(&a, vict.id).await.unwrap();
        assert_eq!(v.merged_into, Some(surv.id));
        assert!(v.phones.is_empty() && v.emails.is_empty() && v.characteristics.is_empty() && v.consents.is_empty());
        assert_eq!(s.get_party(&a, other.id).await.unwrap().merged_into, Some(surv.id));
        // Lookups now find only the survivor.
        let cards = s.lookup_by_phone(&m.phones[1].number).await.unwrap();
        assert_eq!(cards.iter().map(|c| c.id).collect::<Vec<_>>(), vec![surv.id]);
        // List memberships moved without duplicates.
        let members = s.list_members(&a, list.id, &ListPage::default()).await.unwrap();
        assert_eq!(members.items.iter().map(|c| c.id).collect::<Vec<_>>(), vec![surv.id]);
        assert_eq!(s.count_list(&a, list2.id).await.unwrap(), 1);
        if sales {
            // Deals and activities follow the merge.
            let deals = s.list_deals(&a, &Default::default()).await.unwrap();
            assert_eq!(deals.items.iter().filter(|d| d.party_id == surv.id).count(), 2, "{}", t.name);
            let act = s.get_activity(&a, crm::ActivityId(1)).await.unwrap();
            assert_eq!(act.party_id, surv.id);
        }
        let h = s.history("party", surv.id.0, 5).await.unwrap();
        assert_eq!(h[0].action, "merge");
        assert_eq!(h[0].changes["victims"], serde_json::json!([vict.id.0, other.id.0]));
        assert_eq!(s.history("party", vict.id.0, 1).await.unwrap()[0].action, "merged");
        // Merged parties cannot be merged again, nor be candidates.
        assert!(matches!(s.merge_parties(&a, surv.id, &[vict.id]).await, Err(Error::Invalid(_))));
        assert!(s.duplicate_candidates(&a, surv.id).await.unwrap().is_empty(), "{}", t.name);
    })
    .await;
}

#[tokio::test]
async fn a_company_and_a_person_do_not_merge() {
    each_store(|t| async move {
        let a = system();
        let p = t.store.create_party(&a, person("Acme", "Milano", None, None)).await.unwrap();
        let c = t.store.create_party(&a, PartyInput { kind: "company".into(), name: Some("Acme".into()), ..Default::default() }).await.unwrap();
        assert!(matches!(t.store.merge_parties(&a, c.id, &[p.id]).await, Err(Error::Invalid(_))), "{}", t.name);
    })
    .await;
}
