//! Dialer storage: campaign validation, the hopper (ordering, windows in the
//! callee's local time, DNC and consent, invalid numbers), retry rules,
//! crash recovery, and two concurrent claimers that never share a lead.
use crate::harness::{each_store, postgres_url, system};
use crm::dialer_store::{AttemptResult, CallOutcome, CallWindow, DialerCampaignId, DialerConfig, LeadId};
use crm::lists::{ListKind, NewList};
use crm::parties::{PartyInput, PhoneInput};
use crm::{Channel, Error, PartyId, Store, StoreOptions};
use std::collections::HashSet;

/// Tuesday 10 March 2026, 10:00 in Rome (09:00 UTC).
const NOW: i64 = 1_773_133_200_000;
const MIN: i64 = 60_000;

fn config(name: &str) -> DialerConfig {
    serde_json::from_value(serde_json::json!({ "name": name, "trunk": "127.0.0.1:5070" })).unwrap()
}

async fn party(s: &Store, name: &str, phone: &str, dnc: bool) -> PartyId {
    let input = PartyInput {
        kind: "person".into(),
        name: Some(name.into()),
        do_not_call: Some(dnc),
        phones: vec![PhoneInput { number: phone.into(), kind: None }],
        ..Default::default()
    };
    s.create_party(&system(), input).await.unwrap().id
}

fn fields(e: Error) -> Vec<String> {
    match e {
        Error::Invalid(f) => f.into_iter().map(|f| f.field).collect(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_configs_are_rejected_with_fields() {
    each_store(|t| async move {
        let s = &t.store;
        let mut c = config("bad");
        c.trunk = String::new();
        c.window = CallWindow { start: "21:00".into(), end: "08:00".into() };
        c.ratio = 0.5;
        c.abandon_target = 1.5;
        c.ring_timeout_s = 10;
        let f = fields(s.create_dialer_campaign(&system(), c, NOW).await.unwrap_err());
        for want in ["trunk", "window", "ratio", "abandon_target", "ring_timeout_s"] {
            assert!(f.iter().any(|x| x == want), "{want} missing in {f:?} ({})", t.name);
        }
        let ok = s.create_dialer_campaign(&system(), config("good"), NOW).await.unwrap();
        assert_eq!(ok.config.abandon_target, 0.03);
        assert_eq!(ok.config.window.start, "08:00");
        assert!(matches!(s.create_dialer_campaign(&system(), config("good"), NOW).await, Err(Error::Duplicate(_))));
    })
    .await;
}

#[tokio::test]
async fn hopper_orders_filters_and_retries() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        let rome = party(s, "Rome", "+39 02 1234 5678", false).await;
        let ny = party(s, "New York", "+1 212 555 0100", false).await; // 04:00 local: outside
        let flagged = party(s, "Flagged", "+39 02 1234 5679", true).await;
        let listed = party(s, "Listed", "+39 02 1234 5680", false).await;
        let refused = party(s, "Refused", "+39 02 1234 5681", false).await;
        s.set_consent(&a, refused, Channel::Phone, false, "test").await.unwrap();
        let vip = party(s, "Vip", "+39 02 1234 5682", false).await;
        assert_eq!(s.add_dnc_numbers(&a, &["+39 02 1234 5680".into()], "registro", NOW).await.unwrap(), 1);
        let list = s
            .create_list(&a, NewList { name: "L".into(), description: None, kind: ListKind::Static, filter: None, party_ids: vec![rome, ny, flagged, listed, refused] })
            .await
            .unwrap();
        let mut c = config("c1");
        c.list_ids = vec![list.id];
        let camp = s.create_dialer_campaign(&a, c, NOW).await.unwrap();
        let rep = s.dialer_load_lists(&a, camp.id, NOW).await.unwrap();
        assert_eq!(rep.added, 5, "{}", t.name);
        assert_eq!(s.dialer_load_lists(&a, camp.id, NOW).await.unwrap().skipped, 5, "loading twice adds nothing");
        let rep = s.dialer_add_leads(&a, camp.id, &[(Some(vip), "+39 02 1234 5682".into(), 10), (None, "not a number".into(), 0)], NOW).await.unwrap();
        assert_eq!(rep.invalid.len(), 1);

        let claim = s.dialer_claim(camp.id, 10, NOW, "n1").await.unwrap();
        let got: Vec<_> = claim.leads.iter().map(|l| l.party_id.unwrap()).collect();
        assert_eq!(got, vec![vip, rome], "priority first, DNC and out-of-window skipped ({})", t.name);
        assert_eq!(claim.dnc.len(), 3);
        assert_eq!(claim.deferred.len(), 1);
        let leads = s.dialer_leads(camp.id).await.unwrap();
        let ny_lead = leads.iter().find(|l| l.party_id == Some(ny)).unwrap();
        // 08:00 in New York on 10 March 2026 (EDT since 8 March) = 12:00 UTC.
        assert_eq!(ny_lead.due_at, NOW + 3 * 60 * MIN);
        assert!(leads.iter().any(|l| l.state == "invalid" && l.e164.is_none()));
        assert!(s.dialer_claim(camp.id, 10, NOW, "n1").await.unwrap().leads.is_empty(), "nothing claimed twice");

        // Busy: back after 10 minutes, at most 3 times.
        let r = claim.leads.iter().find(|l| l.party_id == Some(rome)).unwrap();
        assert_eq!(s.dialer_finish(r.attempt_id, AttemptResult::Busy, NOW).await.unwrap(), "ready");
        assert!(matches!(s.dialer_finish(r.attempt_id, AttemptResult::Busy, NOW).await, Err(Error::Conflict)));
        assert!(s.dialer_claim(camp.id, 10, NOW + 9 * MIN, "n1").await.unwrap().leads.is_empty());
        let again = s.dialer_claim(camp.id, 10, NOW + 10 * MIN, "n1").await.unwrap();
        assert_eq!(again.leads.len(), 1);
        assert_eq!(again.leads[0].attempts, 2);
        // No answer: after 2 h.
        s.dialer_finish(again.leads[0].attempt_id, AttemptResult::NoAnswer, NOW + 11 * MIN).await.unwrap();
        let lead = s.dialer_leads(camp.id).await.unwrap().into_iter().find(|l| l.party_id == Some(rome)).unwrap();
        assert_eq!(lead.due_at, NOW + 131 * MIN);
        // Callback at a time, then a final disposition.
        let t3 = NOW + 131 * MIN;
        let c3 = s.dialer_claim(camp.id, 10, t3, "n1").await.unwrap();
        let cb = c3.leads.iter().find(|l| l.party_id == Some(rome)).unwrap();
        s.dialer_finish(cb.attempt_id, AttemptResult::Disposed { final_: false, callback_at: Some(t3 + 30 * MIN), callback_agent: None }, t3)
            .await
            .unwrap();
        let c4 = s.dialer_claim(camp.id, 10, t3 + 30 * MIN, "n1").await.unwrap();
        let fin = c4.leads.iter().find(|l| l.party_id == Some(rome)).unwrap();
        assert_eq!(s.dialer_finish(fin.attempt_id, AttemptResult::Disposed { final_: true, callback_at: None, callback_agent: None }, t3 + 31 * MIN).await.unwrap(), "done");
    })
    .await;
}

#[tokio::test]
async fn abandons_uk_rule_and_max_attempts() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        let mut c = config("uk");
        c.uk_72h_after_abandon = true;
        c.retry.max_attempts = 2;
        let camp = s.create_dialer_campaign(&a, c, NOW).await.unwrap();
        s.dialer_add_leads(&a, camp.id, &[(None, "+39 02 1234 5678".into(), 0)], NOW).await.unwrap();
        let c1 = s.dialer_claim(camp.id, 1, NOW, "n1").await.unwrap();
        s.dialer_finish(c1.leads[0].attempt_id, AttemptResult::Abandoned, NOW).await.unwrap();
        let counts = s.dialer_counts(camp.id).await.unwrap();
        assert_eq!((counts.live_answers, counts.abandons), (1, 1), "{}", t.name);
        // Due after 2 h, but the UK rule holds it for 72 h.
        let later = s.dialer_claim(camp.id, 1, NOW + 3 * 60 * MIN, "n1").await.unwrap();
        assert!(later.leads.is_empty());
        assert_eq!(later.deferred.len(), 1);
        let c2 = s.dialer_claim(camp.id, 1, NOW + 72 * 60 * MIN, "n1").await.unwrap();
        assert_eq!(c2.leads.len(), 1);
        assert_eq!(s.dialer_finish(c2.leads[0].attempt_id, AttemptResult::NoAnswer, NOW + 72 * 60 * MIN).await.unwrap(), "exhausted");
    })
    .await;
}

#[tokio::test]
async fn recover_recycles_in_flight_leads_of_a_crashed_node() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        let camp = s.create_dialer_campaign(&a, config("crash"), NOW).await.unwrap();
        let leads: Vec<_> = (0..5).map(|i| (None, format!("+39 02 1234 56{i:02}"), 0)).collect();
        s.dialer_add_leads(&a, camp.id, &leads, NOW).await.unwrap();
        let c = s.dialer_claim(camp.id, 3, NOW, "dead").await.unwrap();
        s.dialer_attempt_progress(c.leads[0].attempt_id, Some("call-1"), Some(NOW + 1000), None, None).await.unwrap();
        s.dialer_claim(camp.id, 1, NOW, "alive").await.unwrap();
        assert_eq!(s.dialer_recover("dead", NOW + MIN).await.unwrap(), 3, "{}", t.name);
        let rows = s.dialer_leads(camp.id).await.unwrap();
        assert_eq!(rows.iter().filter(|l| l.state == "in_flight").count(), 1, "the live node's lead stays");
        assert!(matches!(s.dialer_finish(c.leads[0].attempt_id, AttemptResult::Busy, NOW).await, Err(Error::Conflict)), "record closed");
        assert_eq!(s.dialer_claim(camp.id, 10, NOW + MIN, "dead").await.unwrap().leads.len(), 4);
    })
    .await;
}

/// The dialogs of calls up at the carrier: kept per node (upsert from
/// early to answered), listed for that node only, forgotten when ended.
#[tokio::test]
async fn dialogs_left_up_are_kept_per_node_until_ended() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        let camp = s.create_dialer_campaign(&a, config("dialogs"), NOW).await.unwrap();
        s.dialer_add_leads(&a, camp.id, &[(None, "+39 02 1234 5601".into(), 0), (None, "+39 02 1234 5602".into(), 0)], NOW).await.unwrap();
        let c = s.dialer_claim(camp.id, 2, NOW, "dead").await.unwrap();
        let (a0, a1) = (c.leads[0].attempt_id, c.leads[1].attempt_id);
        s.dialer_dialog_save("dead", Some(a0), "c-0", false, "call=c-0\nstate=early\n", NOW).await.unwrap();
        s.dialer_dialog_save("dead", Some(a1), "c-1", false, "call=c-1\nstate=early\n", NOW + 1).await.unwrap();
        s.dialer_dialog_save("dead", Some(a0), "c-0", true, "call=c-0\nstate=confirmed\n", NOW + 2).await.unwrap();
        s.dialer_dialog_save("alive", None, "c-9", true, "call=c-9\n", NOW).await.unwrap();
        let open = s.dialer_dialogs_open("dead").await.unwrap();
        assert_eq!(open, vec![("c-1".to_string(), false, "call=c-1\nstate=early\n".to_string()), ("c-0".to_string(), true, "call=c-0\nstate=confirmed\n".to_string())], "{}", t.name);
        s.dialer_dialog_end("c-0").await.unwrap();
        s.dialer_dialog_end("c-0").await.unwrap();
        assert_eq!(s.dialer_dialogs_open("dead").await.unwrap().len(), 1);
        assert_eq!(s.dialer_dialogs_open("alive").await.unwrap().len(), 1, "another node's dialogs are not touched");
        // Recovery of the attempts does not lose what is still up.
        s.dialer_recover("dead", NOW + MIN).await.unwrap();
        assert_eq!(s.dialer_dialogs_open("dead").await.unwrap().len(), 1);
        // A lead whose answered call is still up is not claimed again until
        // that call is seen to end.
        let (l0, l1) = (c.leads[0].lead_id, c.leads[1].lead_id);
        s.dialer_dialog_save("dead", Some(a1), "c-1", true, "call=c-1\nstate=confirmed\n", NOW + 3).await.unwrap();
        let got: Vec<_> = s.dialer_claim(camp.id, 10, NOW + MIN, "n2").await.unwrap().leads.iter().map(|l| l.lead_id).collect();
        assert_eq!(got, vec![l0], "{}", t.name);
        s.dialer_dialog_end("c-1").await.unwrap();
        let got: Vec<_> = s.dialer_claim(camp.id, 10, NOW + MIN, "n2").await.unwrap().leads.iter().map(|l| l.lead_id).collect();
        assert_eq!(got, vec![l1]);
    })
    .await;
}

#[tokio::test]
async fn script_answers_are_typed_and_feed_lists() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        let mut c = config("survey");
        c.script = serde_json::from_value(serde_json::json!([
            {"key": "interested", "text": "Interested?", "kind": "yesno"},
            {"key": "age", "text": "Age", "kind": "number"}
        ]))
        .unwrap();
        let camp = s.create_dialer_campaign(&a, c, NOW).await.unwrap();
        let p = party(s, "Ada", "+39 02 1234 5678", false).await;
        s.dialer_add_leads(&a, camp.id, &[(Some(p), "+39 02 1234 5678".into(), 0)], NOW).await.unwrap();
        let cl = s.dialer_claim(camp.id, 1, NOW, "n").await.unwrap();
        let id = cl.leads[0].attempt_id;
        let bad = s.dialer_save_answers(id, &[("age".into(), "old".into()), ("interested".into(), "maybe".into())]).await.unwrap_err();
        assert_eq!(fields(bad).len(), 2, "{}", t.name);
        s.dialer_save_answers(id, &[("age".into(), "42".into()), ("interested".into(), "yes".into())]).await.unwrap();
        assert_eq!(s.dialer_parties_answering(camp.id, "interested", "yes").await.unwrap(), vec![p]);
    })
    .await;
}

/// Two independent handles (two pools; on SQLite two writers on one file)
/// claim from the same campaign at once: every lead goes to exactly one.
async fn race(url: String, name: &str) {
    let s1 = Store::open(StoreOptions::new(url.clone())).await.unwrap();
    let s2 = Store::open(StoreOptions::new(url)).await.unwrap();
    let a = system();
    let camp = s1.create_dialer_campaign(&a, config("race"), NOW).await.unwrap();
    let leads: Vec<_> = (0..200).map(|i| (None, format!("+39 02 1234 {i:04}"), 0)).collect();
    s1.dialer_add_leads(&a, camp.id, &leads, NOW).await.unwrap();
    async fn claimer(s: Store, id: DialerCampaignId, node: &'static str) -> Vec<LeadId> {
        let mut got = Vec::new();
        loop {
            let c = s.dialer_claim(id, 7, NOW, node).await.unwrap();
            if c.leads.is_empty() {
                return got;
            }
            got.extend(c.leads.iter().map(|l| l.lead_id));
        }
    }
    let (x, y) = tokio::join!(tokio::spawn(claimer(s1.clone(), camp.id, "a")), tokio::spawn(claimer(s2.clone(), camp.id, "b")));
    let (x, y) = (x.unwrap(), y.unwrap());
    let all: HashSet<_> = x.iter().chain(y.iter()).copied().collect();
    assert_eq!(x.len() + y.len(), 200, "{name}: {} + {}", x.len(), y.len());
    assert_eq!(all.len(), 200, "{name}: a lead was claimed twice");
    s1.close().await;
    s2.close().await;
}

#[tokio::test]
async fn two_concurrent_claimers_never_share_a_lead() {
    let dir = tempfile::tempdir().unwrap();
    race(dir.path().join("race.db").to_string_lossy().to_string(), "sqlite").await;
    if let Some(url) = postgres_url().await {
        race(url, "postgres").await;
    }
}

async fn agent(s: &Store, name: &str) -> crm::UserId {
    let u = crm::auth::NewUser { username: name.into(), display_name: None, password: format!("{name}-password-long"), role: "agent".into(), team_id: None };
    s.create_user(&system(), u).await.unwrap().id
}

/// A disposition with an outcome completes a `Call` activity on the
/// lead's party through the outcome graph (state, follow-up, points) and
/// books the lead; an outcome the graph does not allow changes nothing.
#[tokio::test]
async fn dispositions_flow_through_the_outcome_graph() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        s.install_default_graph(&a).await.unwrap();
        let ann = agent(s, "ann").await;
        let camp = s.create_dialer_campaign(&a, config("graph"), NOW).await.unwrap();
        let p = party(s, "Ada", "+39 02 1234 5678", false).await;
        s.dialer_add_leads(&a, camp.id, &[(Some(p), "+39 02 1234 5678".into(), 0)], NOW).await.unwrap();
        let cl = s.dialer_claim(camp.id, 1, NOW, "n").await.unwrap();
        let att = cl.leads[0].attempt_id;
        s.dialer_attempt_progress(att, Some("call-1"), Some(NOW + 5_000), Some(NOW + 5_200), Some(ann)).await.unwrap();
        let done = AttemptResult::Disposed { final_: true, callback_at: None, callback_agent: None };
        let bogus = s.ensure_outcome(&a, "Bogus").await.unwrap();
        let bad = s.dialer_dispose(&a, att, done.clone(), Some(CallOutcome { outcome_id: bogus, notes: None }), NOW + 60_000).await.unwrap_err();
        assert_eq!(fields(bad), vec!["outcome_id"], "{}", t.name);
        assert_eq!(s.dialer_leads(camp.id).await.unwrap()[0].state, "in_flight", "a refused disposition changes nothing");
        assert!(s.dialer_attempts(camp.id).await.unwrap()[0].activity_id.is_none());

        let interested = s.ensure_outcome(&a, "Interested").await.unwrap();
        let o = CallOutcome { outcome_id: interested, notes: Some("wants a visit".into()) };
        let r = s.dialer_dispose(&a, att, done.clone(), Some(o.clone()), NOW + 60_000).await.unwrap();
        assert_eq!(r.lead_state, "done", "{}", t.name);
        assert_eq!(r.points, 1, "Call → Interested is worth a point");
        assert!(r.follow_up_id.is_some(), "Interested books a meeting");
        let state = s.ensure_commercial_state(&a, "Interested").await.unwrap();
        assert_eq!(r.commercial_state_id, Some(state));
        let act = s.get_activity(&a, r.activity_id.unwrap()).await.unwrap();
        assert_eq!((act.party_id, act.outcome_id, act.owner_id), (p, Some(interested), Some(ann)));
        assert!(act.done_at.is_some() && act.notes.as_deref() == Some("wants a visit"));
        let rec = &s.dialer_attempts(camp.id).await.unwrap()[0];
        assert_eq!((rec.result.as_deref(), rec.outcome_id, rec.activity_id, rec.agent_id), (Some("disposed"), Some(interested), r.activity_id, Some(ann)));
        assert_eq!((rec.answered_at, rec.bridged_at, rec.call_id.as_deref()), (Some(NOW + 5_000), Some(NOW + 5_200), Some("call-1")));
        assert!(matches!(s.dialer_dispose(&a, att, done, Some(o), NOW + 61_000).await, Err(Error::Conflict)), "disposed once");

        // A callback without a time follows the graph's follow-up call:
        // Call → Callback schedules a call for the agent the next day.
        let q = party(s, "Bea", "+39 02 1234 5679", false).await;
        s.dialer_add_leads(&a, camp.id, &[(Some(q), "+39 02 1234 5679".into(), 0)], NOW).await.unwrap();
        let att = s.dialer_claim(camp.id, 1, NOW, "n").await.unwrap().leads[0].attempt_id;
        s.dialer_attempt_progress(att, Some("call-2"), Some(NOW), Some(NOW), Some(ann)).await.unwrap();
        let callback = s.ensure_outcome(&a, "Callback").await.unwrap();
        let later = AttemptResult::Disposed { final_: false, callback_at: None, callback_agent: Some(ann) };
        let r = s.dialer_dispose(&a, att, later, Some(CallOutcome { outcome_id: callback, notes: None }), NOW + 60_000).await.unwrap();
        assert_eq!(r.lead_state, "ready");
        let follow = s.get_activity(&a, r.follow_up_id.expect("a follow-up call")).await.unwrap();
        assert_eq!(follow.owner_id, Some(ann), "Callback → a call for me");
        let lead = s.dialer_leads(camp.id).await.unwrap().into_iter().find(|l| l.party_id == Some(q)).unwrap();
        assert_eq!(Some(lead.due_at), follow.due_at, "the hopper calls back when the agenda says");
        assert!(lead.due_at > NOW + 12 * 60 * MIN);
    })
    .await;
}

/// A crash after the agent posted a disposition but before it was booked:
/// recovery finishes it as posted (activity completed, lead closed) instead
/// of recycling the lead for another call; the other in-flight lead is
/// recycled.
#[tokio::test]
async fn recovery_finishes_a_posted_disposition() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        s.install_default_graph(&a).await.unwrap();
        let ann = agent(s, "ann").await;
        let camp = s.create_dialer_campaign(&a, config("posted"), NOW).await.unwrap();
        let p = party(s, "Ada", "+39 02 1234 5678", false).await;
        s.dialer_add_leads(&a, camp.id, &[(Some(p), "+39 02 1234 5678".into(), 0), (None, "+39 02 1234 5679".into(), 0)], NOW).await.unwrap();
        let cl = s.dialer_claim(camp.id, 2, NOW, "dead").await.unwrap();
        let att = cl.leads.iter().find(|l| l.party_id == Some(p)).unwrap().attempt_id;
        s.dialer_attempt_progress(att, Some("call-1"), Some(NOW), Some(NOW), Some(ann)).await.unwrap();
        // The state a crash leaves between the intent and the booking.
        let call = s.ensure_action_type(&a, "Call").await.unwrap();
        let sale = s.ensure_outcome(&a, "Sale").await.unwrap();
        let input = crm::activities::ActivityInput {
            kind: "call".into(), party_id: p, action_type_id: call, deal_id: None, owner_id: Some(ann),
            subject: None, notes: None, due_at: Some(NOW), parent_activity_id: None,
        };
        let act = s.create_activity(&a, input).await.unwrap();
        let intent = serde_json::to_string(&AttemptResult::Disposed { final_: true, callback_at: None, callback_agent: None }).unwrap();
        s.exec_admin(&format!("UPDATE dialer_attempts SET disposition = '{intent}', outcome_id = {}, activity_id = {} WHERE id = {att}", sale.0, act.id.0)).await.unwrap();
        assert_eq!(s.dialer_recover("dead", NOW + MIN).await.unwrap(), 1, "only the undisposed lead is recycled ({})", t.name);
        let rows = s.dialer_leads(camp.id).await.unwrap();
        let mine = rows.iter().find(|l| l.party_id == Some(p)).unwrap();
        assert_eq!((mine.state.as_str(), mine.last_result.as_deref()), ("done", Some("disposed")));
        let other = rows.iter().find(|l| l.party_id.is_none()).unwrap();
        assert_eq!((other.state.as_str(), other.last_result.as_deref()), ("ready", Some("crashed")));
        let act = s.get_activity(&a, act.id).await.unwrap();
        assert_eq!(act.outcome_id, Some(sale), "the outcome reached the CRM");
        // Recovering again repeats nothing.
        assert_eq!(s.dialer_recover("dead", NOW + 2 * MIN).await.unwrap(), 0);
        assert_eq!(s.dialer_attempts(camp.id).await.unwrap().iter().filter(|r| r.result.as_deref() == Some("disposed")).count(), 1);
    })
    .await;
}

/// Callbacks for one agent are claimed only for that agent; a skipped
/// preview card goes back without counting as an attempt.
#[tokio::test]
async fn agent_only_callbacks_and_skips() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        let (ann, bob) = (agent(s, "ann").await, agent(s, "bob").await);
        let camp = s.create_dialer_campaign(&a, config("cb"), NOW).await.unwrap();
        s.dialer_add_leads(&a, camp.id, &[(None, "+39 02 1234 5678".into(), 0), (None, "+39 02 1234 5679".into(), 0)], NOW).await.unwrap();
        let c = s.dialer_claim(camp.id, 1, NOW, "n").await.unwrap();
        let cb_lead = c.leads[0].lead_id;
        let cb = AttemptResult::Disposed { final_: false, callback_at: Some(NOW + MIN), callback_agent: Some(ann) };
        s.dialer_finish(c.leads[0].attempt_id, cb, NOW).await.unwrap();
        let t1 = NOW + 2 * MIN;
        assert_eq!(s.dialer_abandon_stats(camp.id, t1).await.unwrap().callbacks_waiting, 1, "{}", t.name);
        let none = s.dialer_claim_for(camp.id, 5, t1, "n", Some(&[])).await.unwrap();
        assert!(none.leads.iter().all(|l| l.lead_id != cb_lead) && none.leads.len() == 1, "nobody else gets ann's callback");
        assert!(s.dialer_claim_for(camp.id, 5, t1, "n", Some(&[bob])).await.unwrap().leads.is_empty());
        let mine = s.dialer_claim_for(camp.id, 5, t1, "n", Some(&[bob, ann])).await.unwrap();
        assert_eq!(mine.leads.len(), 1);
        assert_eq!((mine.leads[0].lead_id, mine.leads[0].callback_agent), (cb_lead, Some(ann)));
        assert_eq!(mine.leads[0].attempts, 2);
        assert_eq!(s.dialer_finish(mine.leads[0].attempt_id, AttemptResult::Skipped, t1).await.unwrap(), "ready");
        let row = s.dialer_leads(camp.id).await.unwrap().into_iter().find(|l| l.id == cb_lead).unwrap();
        assert_eq!((row.attempts, row.last_result.as_deref(), row.due_at), (1, Some("skipped"), t1 + 10 * MIN), "a skip is not an attempt");
    })
    .await;
}

/// Abandon rates over 30 rolling days and the worst 24 h, TSR form and UK
/// form (machines × the campaign's AMD false-positive rate), and the
/// answer→bridge percentiles.
#[tokio::test]
async fn abandon_rates_over_their_windows() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        let mut c = config("rates");
        c.amd_fp_rate = 0.1;
        let camp = s.create_dialer_campaign(&a, c, NOW - 40 * 24 * 60 * MIN).await.unwrap();
        let leads: Vec<_> = (0..13).map(|i| (None, format!("+39 02 1234 57{i:02}"), 0)).collect();
        s.dialer_add_leads(&a, camp.id, &leads, NOW - 32 * 24 * 60 * MIN).await.unwrap();
        let day = 24 * 60 * MIN;
        let book = |at: i64, r: AttemptResult, bridge_ms: Option<i64>| {
            let s = s.clone();
            async move {
                let c = s.dialer_claim(camp.id, 1, at, "n").await.unwrap();
                let id = c.leads[0].attempt_id;
                if let Some(ms) = bridge_ms {
                    s.dialer_attempt_progress(id, None, Some(at - 1000), Some(at - 1000 + ms), None).await.unwrap();
                }
                s.dialer_finish(id, r, at).await.unwrap();
            }
        };
        let done = || AttemptResult::Disposed { final_: true, callback_at: None, callback_agent: None };
        // Outside the 30 days: not counted.
        book(NOW - 31 * day, AttemptResult::Abandoned, None).await;
        for i in 0..4 {
            book(NOW - 2 * day + i, done(), Some(100)).await;
        }
        for i in 0..4 {
            book(NOW + i, done(), Some(300 + 100 * i)).await;
        }
        book(NOW + MIN, AttemptResult::Abandoned, None).await;
        book(NOW + MIN + 1, AttemptResult::Abandoned, None).await;
        book(NOW + 2 * MIN, AttemptResult::Machine, None).await;
        book(NOW + 2 * MIN + 1, AttemptResult::Machine, None).await;
        let st = s.dialer_abandon_stats(camp.id, NOW + 3 * MIN).await.unwrap();
        assert_eq!((st.live_30d, st.abandons_30d, st.machine_30d), (10, 2, 2), "{}", t.name);
        assert!((st.tsr_30d - 0.2).abs() < 1e-9);
        assert!((st.uk_30d - 2.2 / 10.2).abs() < 1e-9, "{}", st.uk_30d);
        assert!((st.worst_24h_tsr - 2.0 / 6.0).abs() < 1e-9, "{}", st.worst_24h_tsr);
        assert_eq!(st.worst_24h_tsr_end, Some(NOW + MIN + 1));
        assert!((st.worst_24h_uk - 2.2 / 6.2).abs() < 1e-9, "{}", st.worst_24h_uk);
        assert_eq!(st.worst_24h_uk_end, Some(NOW + 2 * MIN + 1));
        assert_eq!((st.bridged_30d, st.bridge_p50_ms, st.bridge_p99_ms), (8, 300, 600));
    })
    .await;
}

/// AMD settings: a mode that does not exist, or `message` without the
/// message, is refused with its field and nothing is created; the
/// detector's verdict is stored on the attempt (only the three known).
#[tokio::test]
async fn amd_settings_are_checked_and_the_verdict_is_booked() {
    each_store(|t| async move {
        let s = &t.store;
        let a = system();
        for (mode, prompt, field) in [("beep", "", "amd.mode"), ("message", " ", "amd.prompt")] {
            let mut c = config("amd-bad");
            c.amd = crm::dialer_store::AmdSettings { mode: mode.into(), prompt: prompt.into() };
            let f = fields(s.create_dialer_campaign(&a, c, NOW).await.unwrap_err());
            assert_eq!(f, vec![field.to_string()], "{}", t.name);
        }
        assert!(s.dialer_campaigns().await.unwrap().is_empty(), "nothing created ({})", t.name);
        let off = s.create_dialer_campaign(&a, config("amd-off"), NOW).await.unwrap();
        assert!(!off.config.amd.enabled(), "AMD is off unless asked for");
        let mut c = config("amd-msg");
        c.amd = crm::dialer_store::AmdSettings { mode: "message".into(), prompt: "leave.wav".into() };
        let camp = s.create_dialer_campaign(&a, c, NOW).await.unwrap();
        assert_eq!(camp.config.amd.mode, "message");
        let p = party(s, "Amd", "+39 02 1234 5690", false).await;
        s.dialer_add_leads(&a, camp.id, &[(Some(p), "+39 02 1234 5690".into(), 0)], NOW).await.unwrap();
        let claim = s.dialer_claim(camp.id, 1, NOW, "n1").await.unwrap();
        let attempt = claim.leads[0].attempt_id;
        assert!(matches!(s.dialer_attempt_amd(attempt, "robot").await, Err(Error::Invalid(_))));
        s.dialer_attempt_amd(attempt, "machine").await.unwrap();
        s.dialer_finish(attempt, crm::dialer_store::AttemptResult::Machine, NOW + 1000).await.unwrap();
        let rows = s.dialer_attempts(camp.id).await.unwrap();
        assert_eq!((rows[0].amd.as_deref(), rows[0].result.as_deref()), (Some("machine"), Some("machine")), "{}", t.name);
        let st = s.dialer_abandon_stats(camp.id, NOW + 2000).await.unwrap();
        assert_eq!(st.machine_30d, 1, "{}", t.name);
    })
    .await;
}
