use crate::harness::{each_store, system};
use crm::parties::{EmailInput, PartyInput, PartyPatch, PhoneInput};
use crm::{Error, PhoneNumber, Region};

fn person(name: &str, phone: &str) -> PartyInput {
    PartyInput {
        kind: "person".into(),
        name: Some(name.into()),
        city: Some("Milano".into()),
        phones: vec![PhoneInput { number: phone.into(), kind: Some("mobile".into()) }],
        emails: vec![EmailInput { address: format!("{}@Example.COM", name.replace(' ', ".")), kind: None }],
        ..Default::default()
    }
}

#[tokio::test]
async fn create_get_and_lookup_by_phone() {
    each_store(|t| async move {
        let a = system();
        let p = t.store.create_party(&a, person("Mario Rossi", "02 1234 5678")).await.unwrap();
        assert_eq!(p.phones[0].number.as_str(), "+390212345678", "{}", t.name);
        assert_eq!(p.emails[0].address.as_str(), "mario.rossi@example.com");
        let n = PhoneNumber::parse("+39 02 12345678", Region::default()).unwrap();
        let cards = t.store.lookup_by_phone(&n).await.unwrap();
        assert_eq!(cards.len(), 1);
        assert_eq!(cards[0].id, p.id);
        let h = t.store.history("party", p.id.0, 10).await.unwrap();
        assert_eq!(h[0].action, "create");
    })
    .await;
}

#[tokio::test]
async fn invalid_input_names_fields_and_writes_nothing() {
    each_store(|t| async move {
        let a = system();
        let mut bad = person("X", "12");
        bad.emails = vec![EmailInput { address: "not-an-email".into(), kind: None }];
        bad.stage = Some("vip".into());
        let err = t.store.create_party(&a, bad).await.unwrap_err();
        let Error::Invalid(fields) = err else { panic!("expected invalid, got {err:?}") };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert!(names.contains(&"phones[0].number"), "{names:?}");
        assert!(names.contains(&"emails[0].address"), "{names:?}");
        assert!(names.contains(&"stage"), "{names:?}");
        let page = t.store.search_parties(&a, &Default::default()).await.unwrap();
        assert_eq!(page.total, 0, "{}", t.name);
    })
    .await;
}

#[tokio::test]
async fn stale_update_is_a_conflict() {
    each_store(|t| async move {
        let a = system();
        let p = t.store.create_party(&a, person("Anna Bianchi", "+1 415 555 0100")).await.unwrap();
        let up = t.store.update_party(&a, p.id, PartyPatch { version: p.version, city: Some("Roma".into()), ..Default::default() }).await.unwrap();
        assert_eq!(up.version, p.version + 1);
        let err = t.store.update_party(&a, p.id, PartyPatch { version: p.version, city: Some("Torino".into()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(err, Error::Conflict), "{err:?}");
        let now = t.store.get_party(&a, p.id).await.unwrap();
        assert_eq!(now.city.as_deref(), Some("Roma"));
        let h = t.store.history("party", p.id.0, 10).await.unwrap();
        assert_eq!(h[0].changes["city"], serde_json::json!(["Milano", "Roma"]));
    })
    .await;
}

/// The store tells an outage (retry later) from data it refuses (retrying
/// cannot help): a NOT NULL violation on both stores and, on PostgreSQL, a
/// NUL inside text (SQLSTATE 22021) are not transient; a pool that timed
/// out is.
#[tokio::test]
async fn data_the_store_refuses_is_not_a_transient_error() {
    each_store(|ts| async move {
        let mut tx = ts.store.begin().await.unwrap();
        sqlx::query("CREATE TEMPORARY TABLE refuse_probe (id BIGINT PRIMARY KEY, s TEXT NOT NULL)").execute(&mut *tx).await.unwrap();
        let not_null = sqlx::query("INSERT INTO refuse_probe (id, s) VALUES (1, NULL)").execute(&mut *tx).await.map_err(Error::from).unwrap_err();
        assert!(!not_null.is_transient(), "{}: NOT NULL violation must not be retried: {not_null:?}", ts.name);
        drop(tx);
        if ts.name == "postgres" {
            let mut tx = ts.store.begin().await.unwrap();
            let nul = sqlx::query("SELECT CAST($1 AS TEXT)").bind("a\0b").execute(&mut *tx).await.map_err(Error::from).unwrap_err();
            assert!(!nul.is_transient(), "a NUL in text must not be retried: {nul:?}");
        }
    })
    .await;
    assert!(Error::Db(sqlx::Error::PoolTimedOut).is_transient());
    assert!(!Error::invalid("x", "bad").is_transient());
}
