//! Deals: CRUD, filters, optimistic concurrency, visibility, assignment
//! rules, and "a won deal makes a customer".
use crate::harness::{each_store, system};
use crm::auth::{NewTeam, NewUser};
use crm::deals::{AssignTo, AssignmentRule, AssignmentRuleInput, DealInput, DealPatch, DealQuery, DealStatus, pick_rule};
use crm::parties::PartyInput;
use crm::{Actor, Error, PartyId, Stage, Store, TeamId, UserId};

/// A user with a role and the actor resolved for them.
pub async fn user(store: &Store, name: &str, role: &str) -> Actor {
    let u = store
        .create_user(
            &system(),
            NewUser { username: name.into(), display_name: None, password: "password123".into(), role: role.into(), team_id: None },
        )
        .await
        .unwrap();
    store.actor_for(&u).await.unwrap()
}

/// A person party, optionally owned.
pub async fn party(store: &Store, name: &str, owner: Option<UserId>) -> PartyId {
    let input = PartyInput { kind: "person".into(), name: Some(name.into()), owner_id: owner, zone: Some("Nord".into()), ..Default::default() };
    store.create_party(&system(), input).await.unwrap().id
}

fn deal(party: PartyId, title: &str) -> DealInput {
    DealInput {
        party_id: party,
        title: title.into(),
        phase: None,
        value_cents: None,
        probability: None,
        expected_close_at: None,
        product: None,
        zone: None,
        owner_id: None,
        notes: None,
    }
}

#[tokio::test]
async fn create_list_filter_and_paginate() {
    each_store(|t| async move {
        let a = system();
        let p1 = party(&t.store, "Mario Rossi", None).await;
        let p2 = party(&t.store, "Anna Bianchi", None).await;
        let d = t
            .store
            .create_deal(&a, DealInput { value_cents: Some(150_000), probability: Some(30), product: Some("Gym annual".into()), ..deal(p1, "Annual pass") })
            .await
            .unwrap();
        assert_eq!(d.phase.as_str(), "lead", "{}", t.name);
        assert_eq!(d.status, DealStatus::Open);
        assert_eq!(d.zone.as_deref(), Some("Nord"), "the zone defaults to the party's");
        assert_eq!(d.owner_id, None, "no rule, system creator: shared pool");
        for i in 0..4 {
            t.store.create_deal(&a, DealInput { phase: Some("potential".into()), ..deal(p2, &format!("Deal {i}")) }).await.unwrap();
        }
        let page = t.store.list_deals(&a, &DealQuery { party_id: Some(p2.0), limit: Some(3), ..Default::default() }).await.unwrap();
        assert_eq!((page.total, page.items.len()), (4, 3));
        let page2 = t.store.list_deals(&a, &DealQuery { party_id: Some(p2.0), limit: Some(3), offset: Some(3), ..Default::default() }).await.unwrap();
        assert_eq!(page2.items.len(), 1);
        assert!(page.items.iter().chain(&page2.items).all(|d| d.party_id == p2));
        let lead = t.store.list_deals(&a, &DealQuery { phase: Some("lead".into()), ..Default::default() }).await.unwrap();
        assert_eq!(lead.total, 1);
        let by_text = t.store.list_deals(&a, &DealQuery { q: Some("annual".into()), product: Some("GYM ANNUAL".into()), ..Default::default() }).await.unwrap();
        assert_eq!(by_text.items, vec![d.clone()]);
        let bad = t.store.list_deals(&a, &DealQuery { status: Some("pending".into()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(bad, Error::Invalid(ref f) if f[0].field == "status"), "{bad:?}");
        let h = t.store.history("deal", d.id.0, 10).await.unwrap();
        assert_eq!(h[0].action, "create");
    })
    .await;
}

#[tokio::test]
async fn invalid_input_names_fields_and_writes_nothing() {
    each_store(|t| async move {
        let a = system();
        let p = party(&t.store, "Mario Rossi", None).await;
        let err = t
            .store
            .create_deal(&a, DealInput { phase: Some("won".into()), probability: Some(150), value_cents: Some(-1), ..deal(p, " ") })
            .await
            .unwrap_err();
        let Error::Invalid(fields) = err else { panic!("expected invalid, got {err:?}") };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        for f in ["title", "phase", "probability", "value_cents"] {
            assert!(names.contains(&f), "{f} in {names:?}");
        }
        let err = t.store.create_deal(&a, deal(PartyId(9999), "Ghost")).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref f) if f[0].field == "party_id"), "{err:?}");
        assert_eq!(t.store.list_deals(&a, &DealQuery::default()).await.unwrap().total, 0, "{}", t.name);
    })
    .await;
}

#[tokio::test]
async fn stale_update_is_a_conflict_and_changes_are_logged() {
    each_store(|t| async move {
        let a = system();
        let p = party(&t.store, "Mario Rossi", None).await;
        let d = t.store.create_deal(&a, deal(p, "Annual pass")).await.unwrap();
        let up = t
            .store
            .update_deal(&a, d.id, DealPatch { version: d.version, phase: Some("opportunity".into()), value_cents: Some(99_00), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(up.version, d.version + 1);
        let err = t.store.update_deal(&a, d.id, DealPatch { version: d.version, probability: Some(50), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, Error::Conflict), "{err:?}");
        let h = t.store.history("deal", d.id.0, 10).await.unwrap();
        assert_eq!(h[0].changes["phase"], serde_json::json!(["lead", "opportunity"]), "{}", t.name);
        assert_eq!(h[0].changes["value_cents"], serde_json::json!([0, 9900]));
        assert!(h[0].changes.get("probability").is_none(), "only changed fields are logged");
    })
    .await;
}

#[tokio::test]
async fn a_won_deal_makes_a_customer_and_stays_with_the_party() {
    each_store(|t| async move {
        let a = system();
        let p = party(&t.store, "Mario Rossi", None).await;
        let d = t.store.create_deal(&a, deal(p, "Annual pass")).await.unwrap();
        let won = t.store.update_deal(&a, d.id, DealPatch { version: d.version, status: Some("won".into()), ..Default::default() }).await.unwrap();
        assert_eq!(won.status, DealStatus::Won);
        assert_eq!(won.probability, 100);
        assert!(won.closed_at.is_some());
        let party = t.store.get_party(&a, p).await.unwrap();
        assert_eq!(party.stage, Stage::Customer, "{}", t.name);
        let ph = t.store.history("party", p.0, 10).await.unwrap();
        assert_eq!(ph[0].changes["stage"], serde_json::json!(["lead", "customer"]));
        assert_eq!(ph[0].changes["won_deal_id"], serde_json::json!(d.id.0));
        let deals = t.store.list_deals(&a, &DealQuery { party_id: Some(p.0), ..Default::default() }).await.unwrap();
        assert_eq!(deals.items, vec![won.clone()]);
        // A deal with history is not deleted; an empty one may be.
        let other = t.store.create_deal(&a, deal(p, "Spare")).await.unwrap();
        t.store.delete_deal(&a, other.id).await.unwrap();
        assert!(matches!(t.store.get_deal(&a, other.id).await, Err(Error::NotFound(_))));
    })
    .await;
}

#[tokio::test]
async fn visibility_follows_the_owner() {
    each_store(|t| async move {
        let anna = user(&t.store, "anna", "agent").await;
        let bruno = user(&t.store, "bruno", "agent").await;
        let p = party(&t.store, "Shared Lead", None).await;
        let mine = t.store.create_deal(&anna, deal(p, "Anna's")).await.unwrap();
        assert_eq!(mine.owner_id, Some(anna.user), "no rule: the creator owns it");
        let pool = t.store.create_deal(&system(), deal(p, "Pool")).await.unwrap();
        assert!(matches!(t.store.get_deal(&bruno, mine.id).await, Err(Error::Forbidden)), "{}", t.name);
        let err = t.store.update_deal(&bruno, mine.id, DealPatch { version: 1, title: Some("x".into()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden), "{err:?}");
        let seen = t.store.list_deals(&bruno, &DealQuery::default()).await.unwrap();
        assert_eq!(seen.items.iter().map(|d| d.id).collect::<Vec<_>>(), vec![pool.id]);
        // An agent may not hand a deal to someone outside their scope.
        let err = t.store.create_deal(&bruno, DealInput { owner_id: Some(anna.user), ..deal(p, "Push") }).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref f) if f[0].field == "owner_id"), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn assignment_rules_pick_the_first_match_by_priority() {
    each_store(|t| async move {
        let a = system();
        let north = user(&t.store, "north", "agent").await;
        let big = user(&t.store, "big", "agent").await;
        let lead = user(&t.store, "lead", "supervisor").await;
        let manual = user(&t.store, "manual", "agent").await;
        let team = t.store.create_team(&a, NewTeam { name: "Gyms".into(), parent_id: None, lead_user_id: Some(lead.user) }).await.unwrap();
        let rule = |name: &str, priority, product: Option<&str>, zone: Option<&str>, min, max, to| AssignmentRuleInput {
            name: name.into(),
            priority,
            product: product.map(Into::into),
            zone: zone.map(Into::into),
            min_value_cents: min,
            max_value_cents: max,
            assign_to: to,
        };
        // Created out of order: priority, not insertion, decides.
        t.store.create_assignment_rule(&a, rule("north", 20, None, Some("nord"), None, None, AssignTo::User(north.user))).await.unwrap();
        let r_big = t.store.create_assignment_rule(&a, rule("big", 10, None, None, Some(1_000_000), None, AssignTo::User(big.user))).await.unwrap();
        t.store.create_assignment_rule(&a, rule("gym", 30, Some("Gym"), None, None, Some(999_999), AssignTo::Team(team.id))).await.unwrap();
        let p = party(&t.store, "Mario Rossi", None).await; // zone Nord
        let d_big = t.store.create_deal(&a, DealInput { value_cents: Some(2_000_000), ..deal(p, "Big") }).await.unwrap();
        assert_eq!((d_big.owner_id, d_big.assignment_rule_id), (Some(big.user), Some(r_big.id)), "{}", t.name);
        let d_north = t.store.create_deal(&a, DealInput { value_cents: Some(10), product: Some("gym".into()), ..deal(p, "North") }).await.unwrap();
        assert_eq!(d_north.owner_id, Some(north.user));
        let d_gym = t
            .store
            .create_deal(&a, DealInput { zone: Some("Sud".into()), product: Some("GYM".into()), value_cents: Some(500), ..deal(p, "Gym") })
            .await
            .unwrap();
        assert_eq!((d_gym.owner_id, d_gym.team_id), (Some(lead.user), Some(team.id)), "a team rule hands the deal to the lead");
        let d_none = t.store.create_deal(&a, DealInput { zone: Some("Sud".into()), ..deal(p, "Nobody") }).await.unwrap();
        assert_eq!(d_none.assignment_rule_id, None);
        let d_manual = t.store.create_deal(&a, DealInput { owner_id: Some(manual.user), value_cents: Some(2_000_000), ..deal(p, "Manual") }).await.unwrap();
        assert_eq!((d_manual.owner_id, d_manual.assignment_rule_id), (Some(manual.user), None), "a given owner wins over rules");
        // Switched-off rules are skipped.
        t.store.set_assignment_rule_active(&a, r_big.id, false).await.unwrap();
        let d2 = t.store.create_deal(&a, DealInput { value_cents: Some(2_000_000), ..deal(p, "Big again") }).await.unwrap();
        assert_eq!(d2.owner_id, Some(north.user));
        let listed = t.store.list_assignment_rules(&a).await.unwrap();
        assert_eq!(listed.iter().map(|r| r.priority).collect::<Vec<_>>(), vec![10, 20, 30]);
        // Configuring rules is a supervisor's job.
        let err = t.store.create_assignment_rule(&north, rule("x", 1, None, None, None, None, AssignTo::User(north.user))).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden));
        let err = t.store.create_assignment_rule(&a, rule("x", 1, None, None, Some(5), Some(1), AssignTo::Team(TeamId(999)))).await.unwrap_err();
        let Error::Invalid(f) = err else { panic!() };
        assert_eq!(f.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), vec!["max_value_cents", "assign_to"]);
    })
    .await;
}

#[test]
fn pick_rule_is_first_match_by_priority_then_id() {
    let r = |id, priority, zone: Option<&str>, min, max| AssignmentRule {
        id,
        name: format!("r{id}"),
        priority,
        product: None,
        zone: zone.map(Into::into),
        min_value_cents: min,
        max_value_cents: max,
        assign_to: AssignTo::User(UserId(id)),
        active: true,
    };
    let rules = vec![r(3, 5, None, Some(100), Some(200)), r(2, 5, Some("Nord"), None, None), r(1, 9, None, None, None)];
    assert_eq!(pick_rule(&rules, None, Some("nord"), 150).map(|r| r.id), Some(2), "same priority: lower id");
    assert_eq!(pick_rule(&rules, None, Some("Sud"), 150).map(|r| r.id), Some(3));
    assert_eq!(pick_rule(&rules, None, Some("Sud"), 200).map(|r| r.id), Some(3), "ranges are inclusive");
    assert_eq!(pick_rule(&rules, None, None, 201).map(|r| r.id), Some(1));
    assert_eq!(pick_rule(&rules[..2], None, None, 99).map(|r| r.id), None, "a zone rule needs a zone");
}
