use crate::harness::{each_store, system};
use crm::auth::{NewTeam, NewUser, Permission};
use crm::parties::PartyInput;
use crm::{Error, Role, Scope};

fn user(name: &str, role: &str, team: Option<crm::TeamId>) -> NewUser {
    NewUser { username: name.into(), display_name: None, password: format!("{name}-secret"), role: role.into(), team_id: team }
}

#[tokio::test]
async fn passwords_sessions_and_tokens() {
    each_store(|t| async move {
        let s = &t.store;
        let u = s.create_user(&system(), user("Alice", "agent", None)).await.unwrap();
        assert_eq!(u.username, "alice", "usernames are lower-cased");
        assert!(matches!(s.authenticate("alice", "wrong").await, Err(Error::Unauthenticated)));
        assert!(matches!(s.authenticate("nobody", "x").await, Err(Error::Unauthenticated)));
        let a = s.authenticate("ALICE", "Alice-secret").await.unwrap();
        assert_eq!(a.role, Role::Agent);
        let tok = s.create_session(&a).await.unwrap();
        assert_eq!(s.session_actor(&tok).await.unwrap().user, u.id);
        s.end_session(&tok).await.unwrap();
        assert!(matches!(s.session_actor(&tok).await, Err(Error::Unauthenticated)));
        let api = s.create_api_token(&a, "cli").await.unwrap();
        assert_eq!(s.token_actor(&api).await.unwrap().user, u.id);
        assert!(matches!(s.token_actor("ctl_forged").await, Err(Error::Unauthenticated)));
        // Duplicate usernames and bad roles are field errors.
        let Err(Error::Invalid(f)) = s.create_user(&system(), user("alice", "boss", None)).await else { panic!() };
        let names: Vec<_> = f.iter().map(|e| e.field.as_str()).collect();
        assert!(names.contains(&"role"), "{names:?}");
        // Only admins manage users.
        assert!(matches!(s.create_user(&a, user("mallory", "admin", None)).await, Err(Error::Forbidden)));
        assert!(!a.can(Permission::ManageUsers));
    })
    .await;
}

/// A lead sees the records of everyone in the teams they lead, sub-teams
/// included; members of sibling teams see only their own (and unowned) ones.
#[tokio::test]
async fn team_hierarchy_scopes() {
    each_store(|t| async move {
        let s = &t.store;
        let sys = system();
        let boss = s.create_user(&sys, user("boss", "supervisor", None)).await.unwrap();
        let top = s.create_team(&sys, NewTeam { name: "Sales".into(), parent_id: None, lead_user_id: Some(boss.id) }).await.unwrap();
        let sub = s.create_team(&sys, NewTeam { name: "Sales North".into(), parent_id: Some(top.id), lead_user_id: None }).await.unwrap();
        let other = s.create_team(&sys, NewTeam { name: "Support".into(), parent_id: None, lead_user_id: None }).await.unwrap();
        let ann = s.create_user(&sys, user("ann", "agent", Some(sub.id))).await.unwrap();
        let bob = s.create_user(&sys, user("bob", "support", Some(other.id))).await.unwrap();
        let boss_a = s.actor_for(&boss).await.unwrap();
        let ann_a = s.actor_for(&ann).await.unwrap();
        let bob_a = s.actor_for(&bob).await.unwrap();
        let Scope::Owners(ids) = &boss_a.scope else { panic!("a supervisor is not all-seeing") };
        assert!(ids.contains(&ann.id) && !ids.contains(&bob.id), "{ids:?}");
        let p = s
            .create_party(&ann_a, PartyInput { kind: "company".into(), name: Some("ACME S.p.A.".into()), owner_id: Some(ann.id), ..Default::default() })
            .await
            .unwrap();
        assert!(s.get_party(&boss_a, p.id).await.is_ok());
        assert!(matches!(s.get_party(&bob_a, p.id).await, Err(Error::Forbidden)));
        assert_eq!(s.search_parties(&bob_a, &Default::default()).await.unwrap().total, 0);
        assert_eq!(s.search_parties(&boss_a, &Default::default()).await.unwrap().total, 1);
        // An unowned record is in the shared pool.
        let pool = s.create_party(&sys, PartyInput { kind: "person".into(), name: Some("Walk In".into()), ..Default::default() }).await.unwrap();
        assert!(s.get_party(&bob_a, pool.id).await.is_ok());
    })
    .await;
}
