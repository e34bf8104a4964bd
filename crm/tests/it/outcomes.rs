//! The outcome graph: configuration, the shipped telemarketing graph, seed
//! 004's gym example as a fixture, completion (state, follow-up, points,
//! conclusive outcomes) and the leaderboard.
use crate::activities::todo;
use crate::deals::{party, user};
use crate::harness::{each_store, system};
use crm::activities::{ActivityInput, ActivityKind};
use crm::outcomes::{ActionTypeId, Delay, FollowUpInput, NamedInput, OutcomeId, Recipient, RelationInput, follow_up_due};
use crm::{CommercialStateId, Error, Store};
use std::collections::HashMap;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Tuesday 2026-03-10 15:30 UTC.
const NOW: i64 = 1_773_156_600_000;

fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()
}

/// Seed 004, "Tipi e Azioni": (action type, outcome, commercial state,
/// follow-up (action type, after days), points).
type GymRow = (&'static str, &'static str, Option<&'static str>, Option<(&'static str, i64)>, i64);
const GYM: &[GymRow] = &[
    ("Tour Spontaneo", "Si iscrive", Some("Socio"), None, 15),
    ("Tour Spontaneo", "Non si iscrive", Some("Miss"), None, 0),
    ("Guest Pass", "Interessato", Some("Pianificato"), Some(("Incontro", 2)), 1),
    ("Guest Pass", "Non Interessato", Some("Non Socio"), None, 0),
    ("Incontro", "Si iscrive", Some("Socio"), None, 10),
    ("Incontro", "Non si iscrive", Some("Miss"), None, 0),
    ("Integrazioni", "Interessato", None, None, 1),
    ("Integrazioni", "Non Interessato", None, None, 0),
    ("Verifiche", "Interessato", None, None, 0),
    ("Verifiche", "Non Interessato", None, None, 0),
    ("Telemarketing", "Interessato", Some("Pianificato"), Some(("Incontro", 2)), 1),
    ("Telemarketing", "Non Interessato", Some("Miss"), None, 0),
    ("Rinnovo anticipato", "Si iscrive", Some("Socio"), None, 10),
    ("Rinnovo anticipato", "Non si iscrive", None, None, 0),
    ("Rinnovo", "Diventa socio", Some("Socio"), None, 5),
    ("Non rinnova alla scadenza", "Diventa non socio", Some("Non Socio"), None, 0),
    ("Scaduto da tempo", "Diventa ex socio", Some("Ex socio"), None, 0),
    ("Preventivo", "Consegnato", None, None, 0),
    ("Preventivo", "Interessato", None, None, 0),
    ("Preventivo", "Non Interessato", None, None, 0),
];

/// The gym graph's ids by name.
struct Gym {
    types: HashMap<&'static str, ActionTypeId>,
    outcomes: HashMap<&'static str, OutcomeId>,
    states: HashMap<&'static str, CommercialStateId>,
}

impl Gym {
    fn t(&self, n: &str) -> ActionTypeId {
        self.types[n]
    }
    fn o(&self, n: &str) -> OutcomeId {
        self.outcomes[n]
    }
    fn s(&self, n: &str) -> CommercialStateId {
        self.states[n]
    }
}

/// Loads seed 004's gym graph. Follow-ups go to the party's owner (the
/// seller), the day-based ones at 09:00.
async fn install_gym(store: &Store) -> Gym {
    let a = system();
    let mut g = Gym { types: HashMap::new(), outcomes: HashMap::new(), states: HashMap::new() };
    for &(t, o, s, f, _) in GYM {
        for name in [Some(t), f.map(|f| f.0)].into_iter().flatten() {
            g.types.insert(name, store.ensure_action_type(&a, name).await.unwrap());
        }
        g.outcomes.insert(o, store.ensure_outcome(&a, o).await.unwrap());
        if let Some(s) = s {
            g.states.insert(s, store.ensure_commercial_state(&a, s).await.unwrap());
        }
    }
    for &(t, o, s, f, points) in GYM {
        let follow_up = f.map(|(ft, days)| FollowUpInput {
            action_type_id: g.t(ft),
            kind: None,
            recipient: "owner".into(),
            user_id: None,
            days: Some(days),
            hours: None,
            at_hour: Some(9),
        });
        let rel = RelationInput {
            action_type_id: g.t(t),
            outcome_id: g.o(o),
            commercial_state_id: s.map(|s| g.s(s)),
            follow_up,
            points,
            closes_parent: false,
        };
        store.set_relation(&a, rel).await.unwrap();
    }
    g
}

#[test]
fn follow_ups_fall_due_after_days_at_an_hour_or_after_hours() {
    assert_eq!(NOW, ms("2026-03-10T15:30:00Z"));
    assert_eq!(follow_up_due(Delay::Days { days: 2, at_hour: 9 }, NOW), ms("2026-03-12T09:00:00Z"));
    assert_eq!(follow_up_due(Delay::Days { days: 0, at_hour: 18 }, NOW), ms("2026-03-10T18:00:00Z"));
    assert_eq!(follow_up_due(Delay::Hours { hours: 4 }, NOW), ms("2026-03-10T19:30:00Z"));
}

#[tokio::test]
async fn seed_004_gym_example() {
    each_store(|t| async move {
        let g = install_gym(&t.store).await;
        let marco = user(&t.store, "marco", "agent").await; // the seller
        let giulia = user(&t.store, "giulia", "agent").await; // the receptionist
        let luca = party(&t.store, "Luca Verdi", Some(marco.user)).await;
        assert_eq!(t.store.relations(Some(g.t("Guest Pass"))).await.unwrap().len(), 2, "{}", t.name);
        let offered = t.store.allowed_outcomes(g.t("Tour Spontaneo")).await.unwrap();
        assert_eq!(offered.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), vec!["Non si iscrive", "Si iscrive"]);

        // Guest Pass + Interessato: a meeting with the seller two days later
        // at 09:00, the party becomes Pianificato, one point to Giulia.
        let gp = t.store.create_activity(&system(), ActivityInput { owner_id: Some(giulia.user), ..todo(luca, g.t("Guest Pass"), Some(NOW)) }).await.unwrap();
        // An outcome the graph does not allow for the action type is refused
        // and changes nothing.
        let err = t.store.complete_activity(&giulia, gp.id, Some(g.o("Si iscrive")), None, NOW).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref f) if f[0].field == "outcome_id"), "{err:?}");
        assert_eq!(t.store.get_activity(&giulia, gp.id).await.unwrap().done_at, None);

        let done = t.store.complete_activity(&giulia, gp.id, Some(g.o("Interessato")), Some("loved the pool".into()), NOW).await.unwrap();
        assert_eq!(done.activity.done_at, Some(NOW));
        assert_eq!(done.activity.done_by, Some(giulia.user));
        assert_eq!(done.activity.outcome_id, Some(g.o("Interessato")));
        assert_eq!(done.activity.notes.as_deref(), Some("loved the pool"));
        assert_eq!((done.points, done.points_to), (1, Some(giulia.user)));
        assert_eq!(done.commercial_state_id, Some(g.s("Pianificato")));
        let meeting = done.follow_up.clone().expect("a follow-up meeting");
        assert_eq!(meeting.action_type_id, g.t("Incontro"));
        assert_eq!(meeting.subject, "Incontro");
        assert_eq!(meeting.kind, ActivityKind::Appointment);
        assert_eq!(meeting.owner_id, Some(marco.user), "the party's seller gets the meeting");
        assert_eq!(meeting.due_at, Some(ms("2026-03-12T09:00:00Z")));
        assert_eq!(meeting.follow_up_of, Some(gp.id));
        assert_eq!(meeting.party_id, luca);
        let p = t.store.get_party(&system(), luca).await.unwrap();
        assert_eq!(p.commercial_state_id, Some(g.s("Pianificato")));
        let ph = t.store.history("party", luca.0, 5).await.unwrap();
        assert_eq!(ph[0].changes["commercial_state_id"], serde_json::json!([null, g.s("Pianificato").0]));
        assert_eq!(ph[0].actor_id, Some(giulia.user.0));
        let ah = t.store.history("activity", gp.id.0, 5).await.unwrap();
        assert_eq!(ah[0].action, "complete");
        assert_eq!(t.store.history("activity", meeting.id.0, 5).await.unwrap()[0].action, "create");
        // Done is done.
        let err = t.store.complete_activity(&giulia, gp.id, Some(g.o("Interessato")), None, NOW).await.unwrap_err();
        assert!(matches!(err, Error::Conflict), "{err:?}");

        // The seller holds the meeting: Si iscrive → Socio, 10 points.
        let later = NOW + 2 * DAY;
        let signed = t.store.complete_activity(&marco, meeting.id, Some(g.o("Si iscrive")), None, later).await.unwrap();
        assert_eq!((signed.points, signed.commercial_state_id, signed.follow_up), (10, Some(g.s("Socio")), None));
        // Giulia cannot complete what she cannot see.
        let err = t.store.complete_activity(&giulia, meeting.id, Some(g.o("Si iscrive")), None, later).await.unwrap_err();
        assert!(matches!(err, Error::Forbidden), "{err:?}");

        // Tour Spontaneo + Si iscrive → Socio, 15 points.
        let anna = party(&t.store, "Anna Neri", None).await;
        let tour = t.store.create_activity(&giulia, todo(anna, g.t("Tour Spontaneo"), Some(NOW))).await.unwrap();
        let done = t.store.complete_activity(&giulia, tour.id, Some(g.o("Si iscrive")), None, NOW + HOUR).await.unwrap();
        assert_eq!((done.points, done.commercial_state_id), (15, Some(g.s("Socio"))));
        assert_eq!(t.store.get_party(&system(), anna).await.unwrap().commercial_state_id, Some(g.s("Socio")));

        // Rinnovo anticipato + Non si iscrive leaves the state alone and
        // awards nothing.
        let renew = t.store.create_activity(&giulia, todo(anna, g.t("Rinnovo anticipato"), None)).await.unwrap();
        let done = t.store.complete_activity(&giulia, renew.id, Some(g.o("Non si iscrive")), None, NOW + HOUR).await.unwrap();
        assert_eq!((done.points, done.points_to, done.commercial_state_id), (0, None, None));
        assert_eq!(t.store.get_party(&system(), anna).await.unwrap().commercial_state_id, Some(g.s("Socio")));

        // Leaderboard over [from, to).
        let board = t.store.leaderboard(&giulia, NOW - DAY, NOW + 3 * DAY).await.unwrap();
        let rows: Vec<_> = board.iter().map(|s| (s.username.as_str(), s.points, s.entries)).collect();
        assert_eq!(rows, vec![("giulia", 16, 2), ("marco", 10, 1)]);
        let board = t.store.leaderboard(&giulia, NOW, later).await.unwrap();
        assert_eq!(board.iter().map(|s| (s.username.as_str(), s.points)).collect::<Vec<_>>(), vec![("giulia", 16)], "`to` is exclusive");
    })
    .await;
}

#[tokio::test]
async fn default_telemarketing_graph_callbacks_and_conclusive_outcomes() {
    each_store(|t| async move {
        let a = system();
        t.store.install_default_graph(&a).await.unwrap();
        let n = t.store.relations(None).await.unwrap().len();
        t.store.install_default_graph(&a).await.unwrap();
        assert_eq!(t.store.relations(None).await.unwrap().len(), n, "installing twice changes nothing, {}", t.name);
        let types: HashMap<String, ActionTypeId> = t.store.list_action_types().await.unwrap().into_iter().map(|x| (x.name, x.id)).collect();
        let outs: HashMap<String, OutcomeId> = t.store.list_outcomes().await.unwrap().into_iter().map(|x| (x.name, x.id)).collect();
        let states: HashMap<String, CommercialStateId> = t.store.commercial_states().await.unwrap().into_iter().map(|(id, n)| (n, id)).collect();

        let agent = user(&t.store, "agent1", "agent").await;
        let p = party(&t.store, "Mario Rossi", None).await;
        // A campaign activity groups the calls; a conclusive outcome closes it.
        let campaign = t.store.ensure_action_type(&a, "Campaign").await.unwrap();
        let parent = t.store.create_activity(&agent, ActivityInput { kind: "todo".into(), ..todo(p, campaign, None) }).await.unwrap();
        let call = t
            .store
            .create_activity(&agent, ActivityInput { kind: "call".into(), parent_activity_id: Some(parent.id), ..todo(p, types["Call"], Some(NOW)) })
            .await
            .unwrap();
        let err = t.store.complete_activity(&agent, call.id, None, None, NOW).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref f) if f[0].field == "outcome_id"), "an outcome is required: {err:?}");

        let r = t.store.complete_activity(&agent, call.id, Some(outs["No answer"]), None, NOW).await.unwrap();
        let cb = r.follow_up.expect("a callback");
        assert_eq!((cb.kind, cb.action_type_id, cb.owner_id), (ActivityKind::Call, types["Callback"], Some(agent.user)));
        assert_eq!(cb.due_at, Some(NOW + 4 * HOUR));
        assert_eq!(cb.parent_activity_id, Some(parent.id), "the callback joins the same campaign");
        assert_eq!((r.points, r.closed_parent), (0, None));

        let sold = t.store.complete_activity(&agent, cb.id, Some(outs["Sale"]), None, NOW + 5 * HOUR).await.unwrap();
        assert_eq!((sold.points, sold.closed_parent), (10, Some(parent.id)));
        assert_eq!(sold.commercial_state_id, Some(states["Customer"]));
        let parent_now = t.store.get_activity(&agent, parent.id).await.unwrap();
        assert_eq!(parent_now.done_at, Some(NOW + 5 * HOUR));
        assert_eq!(t.store.history("activity", parent.id.0, 5).await.unwrap()[0].action, "close");

        // A deactivated outcome can no longer be recorded.
        t.store.set_outcome_active(&a, outs["Interested"], false).await.unwrap();
        let c2 = t.store.create_activity(&agent, ActivityInput { kind: "call".into(), ..todo(p, types["Call"], None) }).await.unwrap();
        let err = t.store.complete_activity(&agent, c2.id, Some(outs["Interested"]), None, NOW).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err:?}");
        assert!(!t.store.allowed_outcomes(types["Call"]).await.unwrap().iter().any(|o| o.name == "Interested"));
    })
    .await;
}

#[tokio::test]
async fn recipients_and_relation_validation() {
    each_store(|t| async move {
        let a = system();
        let seller = user(&t.store, "seller", "agent").await;
        let holder = user(&t.store, "holder", "agent").await;
        let fixed = user(&t.store, "fixed", "agent").await;
        let boss = user(&t.store, "boss", "supervisor").await;
        // The boss leads the holder's team, so sees (and may complete) the
        // holder's activities.
        let team = t.store.create_team(&a, crm::auth::NewTeam { name: "Floor".into(), parent_id: None, lead_user_id: Some(boss.user) }).await.unwrap();
        t.store.set_user_team(&a, holder.user, Some(team.id)).await.unwrap();
        let boss = t.store.actor_for(&t.store.get_user(&a, boss.user).await.unwrap()).await.unwrap();
        let call = t.store.ensure_action_type(&a, "Call").await.unwrap();
        let next = t.store.ensure_action_type(&a, "Next").await.unwrap();
        let follow = |recipient: &str, user_id| FollowUpInput {
            action_type_id: next,
            kind: Some("todo".into()),
            recipient: recipient.into(),
            user_id,
            days: None,
            hours: Some(1),
            at_hour: None,
        };
        let p = party(&t.store, "Mario Rossi", Some(seller.user)).await;
        let cases = [("me", None, Some(boss.user)), ("owner", None, Some(seller.user)), ("contact", None, Some(holder.user)), ("operator", Some(fixed.user), Some(fixed.user)), ("all", None, None)];
        for (i, (recipient, user_id, expected)) in cases.into_iter().enumerate() {
            let o = t.store.create_outcome(&boss, NamedInput { name: format!("O{i}"), active: None }).await.unwrap();
            let rel = RelationInput { action_type_id: call, outcome_id: o.id, commercial_state_id: None, follow_up: Some(follow(recipient, user_id)), points: 2, closes_parent: false };
            let stored = t.store.set_relation(&boss, rel).await.unwrap();
            if let Some(u) = user_id {
                assert_eq!(stored.follow_up.map(|f| f.recipient), Some(Recipient::Operator(u)));
            }
            let act = t.store.create_activity(&a, ActivityInput { owner_id: Some(holder.user), ..todo(p, call, None) }).await.unwrap();
            let done = t.store.complete_activity(&boss, act.id, Some(o.id), None, NOW).await.unwrap();
            let f = done.follow_up.unwrap();
            assert_eq!(f.owner_id, expected, "{recipient} on {}", t.name);
            assert_eq!((f.kind, f.due_at), (ActivityKind::Todo, Some(NOW + HOUR)));
        }
        // The relations read back as written.
        let rels = t.store.relations(Some(call)).await.unwrap();
        assert_eq!(rels.len(), 5);
        assert!(rels.iter().all(|r| r.points == 2 && r.follow_up.map(|f| f.delay) == Some(Delay::Hours { hours: 1 })));

        let o = t.store.ensure_outcome(&a, "Bad").await.unwrap();
        let bad = |f: FollowUpInput| RelationInput { action_type_id: call, outcome_id: o, commercial_state_id: Some(CommercialStateId(999)), follow_up: Some(f), points: 0, closes_parent: false };
        let err = t.store.set_relation(&a, bad(FollowUpInput { days: Some(1), ..follow("operator", None) })).await.unwrap_err();
        let Error::Invalid(f) = err else { panic!("{err:?}") };
        let names: Vec<_> = f.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, vec!["follow_up.user_id", "follow_up.days", "commercial_state_id"]);
        let err = t.store.set_relation(&a, bad(follow("boss", None))).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref f) if f[0].field == "follow_up.recipient"), "{err:?}");
        assert!(t.store.relations(Some(call)).await.unwrap().iter().all(|r| r.outcome_id != o), "nothing written");
        let err = t.store.create_outcome(&a, NamedInput { name: "O0".into(), active: None }).await.unwrap_err();
        assert!(matches!(err, Error::Invalid(ref f) if f[0].field == "name"), "names are unique: {err:?}");

        // Configuring the graph is a supervisor's job.
        assert!(matches!(t.store.create_action_type(&seller, NamedInput { name: "X".into(), active: None }).await, Err(Error::Forbidden)));
        assert!(matches!(t.store.install_default_graph(&seller).await, Err(Error::Forbidden)));
        assert!(matches!(t.store.remove_relation(&seller, call, o).await, Err(Error::Forbidden)));
        let first = rels[0].outcome_id;
        t.store.remove_relation(&boss, call, first).await.unwrap();
        assert_eq!(t.store.relations(Some(call)).await.unwrap().len(), 4);
    })
    .await;
}

#[tokio::test]
async fn completion_is_one_transaction() {
    each_store(|t| async move {
        let a = system();
        let agent = user(&t.store, "agent1", "agent").await;
        let call = t.store.ensure_action_type(&a, "Call").await.unwrap();
        let sold = t.store.ensure_outcome(&a, "Sold").await.unwrap();
        let customer = t.store.ensure_commercial_state(&a, "Customer").await.unwrap();
        let follow_up = FollowUpInput { action_type_id: call, kind: None, recipient: "me".into(), user_id: None, days: Some(30), hours: None, at_hour: None };
        let rel = RelationInput { action_type_id: call, outcome_id: sold, commercial_state_id: Some(customer), follow_up: Some(follow_up), points: 3, closes_parent: false };
        t.store.set_relation(&a, rel).await.unwrap();
        let p = party(&t.store, "Mario Rossi", None).await;
        let act = t.store.create_activity(&agent, todo(p, call, Some(NOW))).await.unwrap();
        // The ledger vanishes behind the store's back, so its insert fails
        // after the activity, the party and the follow-up were already
        // written inside the transaction.
        t.store.exec_admin("ALTER TABLE points_ledger RENAME TO points_ledger_away").await.unwrap();
        let err = t.store.complete_activity(&agent, act.id, Some(sold), Some("sold!".into()), NOW).await.unwrap_err();
        t.store.exec_admin("ALTER TABLE points_ledger_away RENAME TO points_ledger").await.unwrap();
        assert!(matches!(err, Error::Db(_)), "{err:?} on {}", t.name);
        let still = t.store.get_activity(&agent, act.id).await.unwrap();
        assert_eq!((still.done_at, still.outcome_id, still.notes.clone()), (None, None, None));
        assert_eq!(t.store.get_party(&a, p).await.unwrap().commercial_state_id, None);
        let q = crm::activities::ActivityQuery { scope: Some("all".into()), party_id: Some(p.0), ..Default::default() };
        assert_eq!(t.store.list_activities(&a, &q, NOW).await.unwrap().total, 1, "no follow-up");
        assert_eq!(t.store.history("activity", act.id.0, 5).await.unwrap().len(), 1, "only the creation is logged");
        assert_eq!(t.store.history("party", p.0, 5).await.unwrap().len(), 1);
        // With the ledger back, the same completion goes through whole.
        let done = t.store.complete_activity(&agent, act.id, Some(sold), None, NOW).await.unwrap();
        assert_eq!((done.points, done.commercial_state_id, done.follow_up.is_some()), (3, Some(customer), true));
        assert_eq!(t.store.leaderboard(&a, 0, i64::MAX).await.unwrap()[0].points, 3);
    })
    .await;
}

#[tokio::test]
async fn replace_moves_activities_and_relations() {
    each_store(|t| async move {
        let a = system();
        let (ta, tb) = (t.store.ensure_action_type(&a, "A").await.unwrap(), t.store.ensure_action_type(&a, "B").await.unwrap());
        let (ox, oy) = (t.store.ensure_outcome(&a, "X").await.unwrap(), t.store.ensure_outcome(&a, "Y").await.unwrap());
        let rel = |t, o, points, follow: Option<ActionTypeId>| RelationInput {
            action_type_id: t,
            outcome_id: o,
            commercial_state_id: None,
            follow_up: follow.map(|f| FollowUpInput { action_type_id: f, kind: None, recipient: "me".into(), user_id: None, days: None, hours: Some(1), at_hour: None }),
            points,
            closes_parent: false,
        };
        t.store.set_relation(&a, rel(ta, ox, 1, None)).await.unwrap();
        t.store.set_relation(&a, rel(ta, oy, 2, Some(ta))).await.unwrap();
        t.store.set_relation(&a, rel(tb, ox, 5, None)).await.unwrap();
        let p = party(&t.store, "Mario Rossi", None).await;
        let act = t.store.create_activity(&a, todo(p, ta, None)).await.unwrap();

        let agent = user(&t.store, "agent1", "agent").await;
        assert!(matches!(t.store.replace_action_type(&agent, ta, tb).await, Err(Error::Forbidden)));
        assert_eq!(t.store.replace_action_type(&a, ta, tb).await.unwrap(), 1, "{}", t.name);
        assert_eq!(t.store.get_activity(&a, act.id).await.unwrap().action_type_id, tb);
        let h = t.store.history("activity", act.id.0, 5).await.unwrap();
        assert_eq!(h[0].changes["action_type_id"], serde_json::json!([ta.0, tb.0]));
        assert!(t.store.relations(Some(ta)).await.unwrap().is_empty());
        let rels: Vec<_> = t.store.relations(Some(tb)).await.unwrap().iter().map(|r| (r.outcome_id, r.points, r.follow_up.map(|f| f.action_type_id))).collect();
        assert_eq!(rels, vec![(ox, 5, None), (oy, 2, Some(tb))], "B keeps its own X; Y moves over, its follow-up renamed");
        assert!(!t.store.list_action_types().await.unwrap().iter().find(|x| x.id == ta).unwrap().active);

        assert_eq!(t.store.replace_outcome(&a, oy, ox).await.unwrap(), 0);
        let rels: Vec<_> = t.store.relations(Some(tb)).await.unwrap().iter().map(|r| (r.outcome_id, r.points)).collect();
        assert_eq!(rels, vec![(ox, 5)]);
        assert!(matches!(t.store.replace_outcome(&a, ox, ox).await, Err(Error::Invalid(_))));
        assert!(matches!(t.store.replace_outcome(&a, ox, OutcomeId(999)).await, Err(Error::Invalid(ref f)) if f[0].field == "new"));
    })
    .await;
}
