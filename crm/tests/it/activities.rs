//! Activities: creation checks, updates under optimistic concurrency, the
//! agenda views (mine/all × today/week/month) with injected time.
use crate::deals::{party, user};
use crate::harness::{each_store, system};
use crm::activities::{ActivityInput, ActivityPatch, ActivityQuery, Period, period_bounds};
use crm::deals::DealInput;
use crm::outcomes::ActionTypeId;
use crm::{Error, PartyId};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Wednesday 2026-03-11 10:00 UTC.
const NOW: i64 = 1_773_223_200_000;

pub fn todo(party: PartyId, t: ActionTypeId, due_at: Option<i64>) -> ActivityInput {
    ActivityInput {
        kind: "appointment".into(),
        party_id: party,
        action_type_id: t,
        deal_id: None,
        owner_id: None,
        subject: None,
        notes: None,
        due_at,
        parent_activity_id: None,
    }
}

#[test]
fn period_bounds_follow_the_local_calendar() {
    let ms = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
    assert_eq!(NOW, ms("2026-03-11T10:00:00Z"));
    assert_eq!(period_bounds(Period::Today, NOW, 0).unwrap(), (ms("2026-03-11T00:00:00Z"), ms("2026-03-12T00:00:00Z")));
    assert_eq!(period_bounds(Period::Week, NOW, 0).unwrap(), (ms("2026-03-09T00:00:00Z"), ms("2026-03-16T00:00:00Z")));
    assert_eq!(period_bounds(Period::Month, NOW, 0).unwrap(), (ms("2026-03-01T00:00:00Z"), ms("2026-04-01T00:00:00Z")));
    // At 23:30 UTC it is already tomorrow in Rome (UTC+1).
    let late = ms("2026-03-11T23:30:00Z");
    assert_eq!(period_bounds(Period::Today, late, 60).unwrap(), (ms("2026-03-11T23:00:00Z"), ms("2026-03-12T23:00:00Z")));
    // A Sunday belongs to the week that began on Monday.
    let sunday = ms("2026-03-15T12:00:00Z");
    assert_eq!(period_bounds(Period::Week, sunday, 0).unwrap().0, ms("2026-03-09T00:00:00Z"));
    // December rolls into the next year.
    let dec = ms("2026-12-31T12:00:00Z");
    assert_eq!(period_bounds(Period::Month, dec, -300).unwrap(), (ms("2026-12-01T05:00:00Z"), ms("2027-01-01T05:00:00Z")));
    assert!(matches!(period_bounds(Period::Today, NOW, 900), Err(Error::Invalid(_))));
}

#[tokio::test]
async fn create_checks_references_and_logs() {
    each_store(|t| async move {
        let a = system();
        let call = t.store.ensure_action_type(&a, "Call").await.unwrap();
        let p = party(&t.store, "Mario Rossi", None).await;
        let other = party(&t.store, "Anna Bianchi", None).await;
        let act = t.store.create_activity(&a, todo(p, call, Some(NOW))).await.unwrap();
        assert_eq!(act.subject, "Call", "the subject defaults to the action type, {}", t.name);
        assert_eq!((act.done_at, act.outcome_id), (None, None));
        assert_eq!(t.store.history("activity", act.id.0, 5).await.unwrap()[0].action, "create");

        let deal = t
            .store
            .create_deal(
                &a,
                DealInput {
                    party_id: other,
                    title: "x".into(),
                    phase: None,
                    value_cents: None,
                    probability: None,
                    expected_close_at: None,
                    product: None,
                    zone: None,
                    owner_id: None,
                    notes: None,
                },
            )
            .await
            .unwrap();
        let bad = ActivityInput {
            kind: "meeting".into(),
            action_type_id: ActionTypeId(999),
            deal_id: Some(deal.id),
            parent_activity_id: Some(crm::ActivityId(999)),
            ..todo(p, call, None)
        };
        let Error::Invalid(f) = t.store.create_activity(&a, bad.clone()).await.unwrap_err() else { panic!() };
        assert_eq!(f.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), vec!["kind"]);
        let Error::Invalid(f) = t.store.create_activity(&a, ActivityInput { kind: "call".into(), ..bad }).await.unwrap_err() else { panic!() };
        let names: Vec<_> = f.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, vec!["action_type_id", "deal_id", "parent_activity_id"]);
        t.store.set_action_type_active(&a, call, false).await.unwrap();
        let err = t.store.create_activity(&a, todo(p, call, None)).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref f) if f[0].reason.contains("not active")), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn update_is_optimistic_and_done_activities_are_history() {
    each_store(|t| async move {
        let a = system();
        let call = t.store.ensure_action_type(&a, "Call").await.unwrap();
        let p = party(&t.store, "Mario Rossi", None).await;
        let act = t.store.create_activity(&a, todo(p, call, Some(NOW))).await.unwrap();
        let up = t
            .store
            .update_activity(&a, act.id, ActivityPatch { version: act.version, due_at: Some(NOW + DAY), subject: Some("Ring back".into()), ..Default::default() })
            .await
            .unwrap();
        assert_eq!((up.version, up.due_at, up.subject.as_str()), (2, Some(NOW + DAY), "Ring back"));
        let err = t.store.update_activity(&a, act.id, ActivityPatch { version: act.version, ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, Error::Conflict), "{err:?}");
        let h = t.store.history("activity", act.id.0, 5).await.unwrap();
        assert_eq!(h[0].changes["due_at"], serde_json::json!([NOW, NOW + DAY]), "{}", t.name);

        let done = t.store.complete_activity(&a, act.id, None, Some("spoke to him".into()), NOW).await.unwrap();
        assert_eq!(done.activity.done_at, Some(NOW));
        let err = t.store.update_activity(&a, act.id, ActivityPatch { version: done.activity.version, due_at: Some(0), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref f) if f[0].field == "due_at"), "{err:?}");
        let err = t.store.delete_activity(&a, act.id).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        let open = t.store.create_activity(&a, todo(p, call, None)).await.unwrap();
        t.store.delete_activity(&a, open.id).await.unwrap();
        assert!(matches!(t.store.get_activity(&a, open.id).await, Err(Error::NotFound(_))));
    })
    .await;
}

#[tokio::test]
async fn agenda_views_mine_and_all_by_period() {
    each_store(|t| async move {
        let a = system();
        let anna = user(&t.store, "anna", "agent").await;
        let bruno = user(&t.store, "bruno", "agent").await;
        let call = t.store.ensure_action_type(&a, "Call").await.unwrap();
        let p = party(&t.store, "Mario Rossi", None).await;
        let mk = |owner, due| {
            let store = t.store.clone();
            async move {
                store.create_activity(&system(), crm::activities::ActivityInput { owner_id: owner, ..todo(p, call, due) }).await.unwrap().id
            }
        };
        let today = mk(Some(anna.user), Some(NOW + HOUR)).await;
        let earlier_today = mk(Some(anna.user), Some(NOW - 9 * HOUR)).await;
        let friday = mk(Some(anna.user), Some(NOW + 2 * DAY)).await;
        let next_week = mk(Some(anna.user), Some(NOW + 6 * DAY)).await; // Tuesday 17th
        let next_month = mk(Some(anna.user), Some(NOW + 25 * DAY)).await;
        let undated = mk(Some(anna.user), None).await;
        let brunos = mk(Some(bruno.user), Some(NOW)).await;
        let pool = mk(None, Some(NOW + 2 * HOUR)).await;

        let view = |who: crm::Actor, scope: &str, period: Option<&str>| {
            let store = t.store.clone();
            let q = ActivityQuery { scope: Some(scope.into()), period: period.map(Into::into), ..Default::default() };
            async move { store.list_activities(&who, &q, NOW).await.unwrap().items.iter().map(|a| a.id).collect::<Vec<_>>() }
        };
        assert_eq!(view(anna.clone(), "mine", Some("today")).await, vec![earlier_today, today], "{}", t.name);
        assert_eq!(view(anna.clone(), "mine", Some("week")).await, vec![earlier_today, today, friday]);
        assert_eq!(view(anna.clone(), "mine", Some("month")).await, vec![earlier_today, today, friday, next_week]);
        assert_eq!(view(anna.clone(), "mine", None).await, vec![earlier_today, today, friday, next_week, next_month, undated]);
        // "All" is everything the viewer may see: their own and the pool.
        assert_eq!(view(anna.clone(), "all", Some("today")).await, vec![earlier_today, today, pool]);
        assert_eq!(view(system(), "all", Some("today")).await, vec![earlier_today, brunos, today, pool]);
        assert_eq!(view(bruno.clone(), "mine", Some("today")).await, vec![brunos]);
        // Open only.
        t.store.complete_activity(&a, earlier_today, None, None, NOW).await.unwrap();
        let q = ActivityQuery { period: Some("today".into()), open_only: Some(true), ..Default::default() };
        let open = t.store.list_activities(&anna, &q, NOW).await.unwrap();
        assert_eq!(open.items.iter().map(|a| a.id).collect::<Vec<_>>(), vec![today]);
        let q = ActivityQuery { scope: Some("everyone".into()), period: Some("year".into()), ..Default::default() };
        let Error::Invalid(f) = t.store.list_activities(&anna, &q, NOW).await.unwrap_err() else { panic!() };
        assert_eq!(f.iter().map(|f| f.field.as_str()).collect::<Vec<_>>(), vec!["scope", "period"]);
    })
    .await;
}
