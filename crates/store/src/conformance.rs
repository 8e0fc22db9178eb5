//! The conformance suite every [`Store`] backend runs: the same calls, the same answers.
//! Each check panics with a message on failure; backends call [`run`] from their tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::*;

fn now() -> i64 {
    1_700_000_000_000
}

fn tenant(name: &str) -> (TenantRow, TenantKeyRow) {
    let id = TenantId::generate();
    (
        TenantRow {
            id,
            name: name.to_owned(),
            settings: "{}".into(),
            wrapped_index_key: vec![1, 2, 3],
            created_at: now(),
        },
        TenantKeyRow {
            tenant: id,
            version: 1,
            wrapped: Some(vec![9; 8]),
            state: KeyState::Active,
            created_at: now(),
        },
    )
}

fn record(t: TenantId, subject: SubjectId, sealed: &[u8]) -> RecordRow {
    RecordRow {
        tenant: t,
        collection: "customers".into(),
        id: RecordId::generate(),
        subject,
        sealed: sealed.to_vec(),
        labels: "{}".into(),
        version: 1,
        created_at: now(),
        updated_at: now(),
    }
}

fn subject_key(t: TenantId, s: SubjectId, v: u32) -> SubjectKeyRow {
    SubjectKeyRow {
        tenant: t,
        subject: s,
        kek_version: v,
        dek_version: 1,
        wrapped_dek: vec![v as u8; 4],
        created_at: now(),
    }
}

fn entry(r: &RecordRow, field: &str, digest: &[u8]) -> IndexEntry {
    IndexEntry {
        tenant: r.tenant,
        collection: r.collection.clone(),
        field: field.into(),
        digest: digest.to_vec(),
        record: r.id,
    }
}

/// Runs every check against a fresh, empty store. `prefix` keeps tenant names unique when
/// one database serves several runs.
pub async fn run(store: &dyn Store, prefix: &str) {
    meta(store).await;
    tenants_and_keys(store, prefix).await;
    principals(store, prefix).await;
    records_and_index(store, prefix).await;
    erasure_and_rewrap(store, prefix).await;
    tenant_isolation(store, prefix).await;
    users_sessions_policies(store, prefix).await;
    audit_journal(store, prefix).await;
    alerts(store, prefix).await;
    incidents(store, prefix).await;
    tokens(store, prefix).await;
}

async fn tokens(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-tokens"));
    store.create_tenant(&t, &k).await.unwrap();
    let row = |scope: &str, token: &str, sealed: &[u8]| TokenRow {
        tenant: t.id,
        scope: scope.into(),
        token: token.into(),
        subject: None,
        sealed: sealed.to_vec(),
        created_at: 7,
    };
    let issued = audit_event(t.id, "token.tokenize", None);
    assert_eq!(
        store
            .insert_tokens(
                &[row("crm", "tok_a", b"1"), row("crm", "tok_b", b"2")],
                std::slice::from_ref(&issued)
            )
            .await
            .unwrap()
            .0,
        2
    );
    assert_eq!(
        store
            .insert_tokens(
                &[row("crm", "tok_a", b"other"), row("web", "tok_a", b"3")],
                &[issued]
            )
            .await
            .unwrap()
            .0,
        1,
        "a stored token is left as it is; scopes are apart"
    );
    assert_eq!(
        store.audit_head(t.id).await.unwrap().unwrap().0,
        2,
        "events in the same transaction"
    );
    let mut got = store
        .tokens(
            t.id,
            "crm",
            &["tok_b".into(), "tok_z".into(), "tok_a".into()],
        )
        .await
        .unwrap();
    got.sort_by(|a, b| a.token.cmp(&b.token));
    assert_eq!(
        got,
        vec![row("crm", "tok_a", b"1"), row("crm", "tok_b", b"2")]
    );
    assert_eq!(
        store.tokens(t.id, "web", &["tok_a".into()]).await.unwrap(),
        vec![row("web", "tok_a", b"3")]
    );
    assert!(
        store
            .tokens(TenantId::generate(), "crm", &["tok_a".into()])
            .await
            .unwrap()
            .is_empty(),
        "tenant isolation"
    );
    // A token of a subject's value is the subject's: two subjects sharing a value each have a
    // row, and erasing one removes only its own.
    let (s1, s2) = (SubjectId::generate(), SubjectId::generate());
    store
        .insert_subject_keys(&[subject_key(t.id, s1, 1), subject_key(t.id, s2, 1)])
        .await
        .unwrap();
    let of = |s: SubjectId, sealed: &[u8]| TokenRow {
        subject: Some(s),
        ..row("crm", "tok_s", sealed)
    };
    store
        .insert_tokens(&[of(s1, b"x1"), of(s2, b"x2")], &[])
        .await
        .unwrap();
    let mut got = store.tokens(t.id, "crm", &["tok_s".into()]).await.unwrap();
    got.sort_by_key(|r| r.subject);
    let mut want = vec![of(s1, b"x1"), of(s2, b"x2")];
    want.sort_by_key(|r| r.subject);
    assert_eq!(got, want);
    store.erase_subject(t.id, s1, &[]).await.unwrap();
    assert_eq!(
        store.tokens(t.id, "crm", &["tok_s".into()]).await.unwrap(),
        vec![of(s2, b"x2")],
        "erasure takes the subject's tokens"
    );
}

async fn meta(store: &dyn Store) {
    store.ping().await.unwrap();
    let key = format!("conformance-{}", uuid::Uuid::now_v7());
    assert_eq!(store.meta(&key).await.unwrap(), None);
    assert_eq!(store.init_meta(&key, b"first").await.unwrap(), b"first");
    assert_eq!(
        store.init_meta(&key, b"second").await.unwrap(),
        b"first",
        "init_meta keeps the first value"
    );
    store.set_meta(&key, b"third").await.unwrap();
    assert_eq!(
        store.meta(&key).await.unwrap().as_deref(),
        Some(&b"third"[..]),
        "set_meta replaces"
    );
}

async fn tenants_and_keys(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-acme"));
    store.create_tenant(&t, &k).await.unwrap();
    let (dup, dupk) = tenant(&format!("{p}-acme"));
    assert!(
        matches!(
            store.create_tenant(&dup, &dupk).await,
            Err(Error::Conflict(_))
        ),
        "duplicate tenant name"
    );
    assert_eq!(store.tenant(t.id).await.unwrap().as_ref(), Some(&t));
    assert!(store.tenants().await.unwrap().iter().any(|x| x.id == t.id));
    assert!(
        store
            .update_tenant_settings(t.id, r#"{"a":1}"#)
            .await
            .unwrap()
    );
    assert_eq!(
        store.tenant(t.id).await.unwrap().unwrap().settings,
        r#"{"a":1}"#
    );
    assert!(
        !store
            .update_tenant_settings(TenantId::generate(), "{}")
            .await
            .unwrap()
    );

    let k2 = TenantKeyRow {
        version: 2,
        ..k.clone()
    };
    store.add_tenant_key(&k2).await.unwrap();
    assert!(matches!(
        store.add_tenant_key(&k2).await,
        Err(Error::Conflict(_))
    ));
    let keys = store.tenant_keys(t.id).await.unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| (k.version, k.state))
            .collect::<Vec<_>>(),
        vec![(1, KeyState::DecryptOnly), (2, KeyState::Active)]
    );

    let s = SubjectId::generate();
    store
        .insert_subject_keys(&[subject_key(t.id, s, 1)])
        .await
        .unwrap();
    assert_eq!(
        store.retire_tenant_key(t.id, 2).await.unwrap(),
        RetireOutcome::Active
    );
    assert_eq!(
        store.retire_tenant_key(t.id, 1).await.unwrap(),
        RetireOutcome::InUse(1)
    );
    assert_eq!(
        store.retire_tenant_key(t.id, 9).await.unwrap(),
        RetireOutcome::NotFound
    );
    let moved = subject_key(t.id, s, 2);
    assert_eq!(
        store
            .rewrap_subject_keys(1, std::slice::from_ref(&moved))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.rewrap_subject_keys(1, &[moved]).await.unwrap(),
        0,
        "rewrap is conditional"
    );
    assert_eq!(
        store.retire_tenant_key(t.id, 1).await.unwrap(),
        RetireOutcome::Retired
    );
    let keys = store.tenant_keys(t.id).await.unwrap();
    assert_eq!(keys[0].state, KeyState::Retired);
    assert_eq!(keys[0].wrapped, None, "retiring destroys the wrapped key");
}

async fn principals(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-principals"));
    store.create_tenant(&t, &k).await.unwrap();
    let pr = PrincipalRow {
        id: PrincipalId::generate(),
        tenant: Some(t.id),
        kind: "service".into(),
        name: "app".into(),
        token_hash: uuid::Uuid::now_v7().as_bytes().to_vec(),
        grants: "{}".into(),
        created_at: now(),
        disabled: false,
    };
    store.create_principal(&pr).await.unwrap();
    assert!(matches!(
        store.create_principal(&pr).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store
            .principal_by_token(&pr.token_hash)
            .await
            .unwrap()
            .as_ref(),
        Some(&pr)
    );
    assert_eq!(
        store.principals(Some(t.id)).await.unwrap(),
        vec![pr.clone()]
    );
    assert!(
        !store
            .disable_principal(TenantId::generate(), pr.id)
            .await
            .unwrap(),
        "other tenant cannot disable"
    );
    assert!(store.disable_principal(t.id, pr.id).await.unwrap());
    assert_eq!(
        store.principal_by_token(&pr.token_hash).await.unwrap(),
        None,
        "disabled principals do not authenticate"
    );
}

async fn records_and_index(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-records"));
    store.create_tenant(&t, &k).await.unwrap();
    let col = CollectionRow {
        tenant: t.id,
        name: "customers".into(),
        schema: "{}".into(),
        version: 1,
        updated_at: now(),
    };
    store.put_collection(&col).await.unwrap();
    let col2 = CollectionRow {
        schema: r#"{"v":2}"#.into(),
        version: 2,
        ..col.clone()
    };
    store.put_collection(&col2).await.unwrap();
    assert_eq!(
        store.collection(t.id, "customers").await.unwrap(),
        Some(col2.clone())
    );
    assert_eq!(store.collections(t.id).await.unwrap(), vec![col2]);
    assert_eq!(store.collection(t.id, "nope").await.unwrap(), None);

    let s = SubjectId::generate();
    let a = record(t.id, s, b"sealed-a");
    let b = record(t.id, s, b"sealed-b");
    let idx = vec![
        entry(&a, "email", b"d1"),
        entry(&b, "email", b"d1"),
        entry(&b, "phone", b"d2"),
    ];
    store
        .insert_records(&[a.clone(), b.clone()], &idx, &[])
        .await
        .unwrap();
    assert_eq!(
        store
            .records(t.id, "customers", &[a.id, b.id, RecordId::generate()])
            .await
            .unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(
        store
            .records(t.id, "other", &[a.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .subject_records(t.id, "customers", &[s, SubjectId::generate()])
            .await
            .unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(
        store
            .subject_records(t.id, "other", &[s])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .subject_records(TenantId::generate(), "customers", &[s])
            .await
            .unwrap()
            .is_empty()
    );

    // A batch with one duplicate id inserts nothing.
    let c = record(t.id, s, b"sealed-c");
    let dup = a.clone();
    assert!(matches!(
        store
            .insert_records(&[c.clone(), dup], &[entry(&c, "email", b"d1")], &[])
            .await,
        Err(Error::Conflict(_))
    ));
    assert!(
        store
            .records(t.id, "customers", &[c.id])
            .await
            .unwrap()
            .is_empty(),
        "batches are atomic"
    );
    assert_eq!(
        store
            .count_digests(t.id, "customers", "email", &[b"d1".to_vec()])
            .await
            .unwrap(),
        vec![2]
    );

    let found = store
        .search(t.id, "customers", "email", b"d1", 10)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert_eq!(
        store
            .search(t.id, "customers", "email", b"d1", 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .count_digests(
                t.id,
                "customers",
                "email",
                &[b"d1".to_vec(), b"zz".to_vec()]
            )
            .await
            .unwrap(),
        vec![2, 0]
    );
    assert_eq!(
        store
            .top_digests(t.id, "customers", "email", 5)
            .await
            .unwrap(),
        vec![(b"d1".to_vec(), 2)]
    );

    let a2 = RecordRow {
        sealed: b"sealed-a2".to_vec(),
        version: 2,
        ..a.clone()
    };
    assert!(
        store
            .update_record(&a2, &[entry(&a2, "email", b"d3")], 1, &[])
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .update_record(&a2, &[], 1, &[])
            .await
            .unwrap()
            .is_none(),
        "stale version refused"
    );
    assert_eq!(
        store.records(t.id, "customers", &[a.id]).await.unwrap(),
        vec![a2.clone()]
    );
    assert_eq!(
        store
            .count_digests(
                t.id,
                "customers",
                "email",
                &[b"d1".to_vec(), b"d3".to_vec()]
            )
            .await
            .unwrap(),
        vec![1, 1]
    );

    assert!(
        store
            .delete_record(t.id, "customers", a.id, &[])
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .delete_record(t.id, "customers", a.id, &[])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .count_digests(t.id, "customers", "email", &[b"d3".to_vec()])
            .await
            .unwrap(),
        vec![0]
    );
}

async fn erasure_and_rewrap(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-erasure"));
    store.create_tenant(&t, &k).await.unwrap();
    let (s1, s2) = (SubjectId::generate(), SubjectId::generate());
    store
        .insert_subject_keys(&[subject_key(t.id, s1, 1), subject_key(t.id, s2, 1)])
        .await
        .unwrap();
    assert!(matches!(
        store.insert_subject_keys(&[subject_key(t.id, s1, 1)]).await,
        Err(Error::Conflict(_))
    ));
    let r1 = record(t.id, s1, b"x");
    let r2 = record(t.id, s2, b"y");
    store
        .insert_records(
            &[r1.clone(), r2.clone()],
            &[entry(&r1, "email", b"e"), entry(&r2, "email", b"e")],
            &[],
        )
        .await
        .unwrap();

    assert!(store.erase_subject(t.id, s1, &[]).await.unwrap().is_some());
    assert!(store.erase_subject(t.id, s1, &[]).await.unwrap().is_none());
    assert_eq!(store.subject_keys(t.id, &[s1, s2]).await.unwrap().len(), 1);
    assert!(
        store
            .records(t.id, "customers", &[r1.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .records(t.id, "customers", &[r2.id])
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .count_digests(t.id, "customers", "email", &[b"e".to_vec()])
            .await
            .unwrap(),
        vec![1]
    );

    store
        .add_tenant_key(&TenantKeyRow { version: 2, ..k })
        .await
        .unwrap();
    let pending = store.subject_keys_not_at(t.id, 2, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        store.subject_key_versions(t.id).await.unwrap(),
        vec![(1, 1)]
    );
    store
        .rewrap_subject_keys(1, &[subject_key(t.id, s2, 2)])
        .await
        .unwrap();
    assert_eq!(
        store.subject_key_versions(t.id).await.unwrap(),
        vec![(2, 1)]
    );
    assert!(
        store
            .subject_keys_not_at(t.id, 2, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn tenant_isolation(store: &dyn Store, p: &str) {
    let (a, ka) = tenant(&format!("{p}-iso-a"));
    let (b, kb) = tenant(&format!("{p}-iso-b"));
    store.create_tenant(&a, &ka).await.unwrap();
    store.create_tenant(&b, &kb).await.unwrap();
    let s = SubjectId::generate();
    store
        .insert_subject_keys(&[subject_key(a.id, s, 1)])
        .await
        .unwrap();
    let r = record(a.id, s, b"secret");
    store
        .insert_records(std::slice::from_ref(&r), &[entry(&r, "email", b"d")], &[])
        .await
        .unwrap();
    // Tenant B asks with tenant A's ids: nothing.
    assert!(
        store
            .records(b.id, "customers", &[r.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.subject_keys(b.id, &[s]).await.unwrap().is_empty());
    assert!(
        store
            .search(b.id, "customers", "email", b"d", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .delete_record(b.id, "customers", r.id, &[])
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.erase_subject(b.id, s, &[]).await.unwrap().is_none());
    let r_as_b = RecordRow {
        tenant: b.id,
        version: 2,
        ..r.clone()
    };
    assert!(
        store
            .update_record(&r_as_b, &[], 1, &[])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.records(a.id, "customers", &[r.id]).await.unwrap(),
        vec![r]
    );
}

async fn users_sessions_policies(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-users"));
    store.create_tenant(&t, &k).await.unwrap();
    let u = UserRow {
        tenant: t.id,
        id: PrincipalId::generate(),
        login_digest: b"login-1".to_vec(),
        state: "{}".into(),
        sealed: b"sealed".to_vec(),
        version: 1,
        created_at: now(),
    };
    store.create_user(&u).await.unwrap();
    let dup = UserRow {
        id: PrincipalId::generate(),
        ..u.clone()
    };
    assert!(
        matches!(store.create_user(&dup).await, Err(Error::Conflict(_))),
        "one login per tenant"
    );
    assert_eq!(store.user(t.id, u.id).await.unwrap().as_ref(), Some(&u));
    assert_eq!(
        store
            .user_by_login(t.id, b"login-1")
            .await
            .unwrap()
            .as_ref(),
        Some(&u)
    );
    assert_eq!(
        store
            .user_by_login(TenantId::generate(), b"login-1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.users(t.id).await.unwrap(), vec![u.clone()]);
    let u2 = UserRow {
        state: r#"{"failed":1}"#.into(),
        version: 2,
        ..u.clone()
    };
    assert!(store.update_user(&u2, 1).await.unwrap());
    assert!(
        !store
            .update_user(
                &UserRow {
                    version: 3,
                    ..u2.clone()
                },
                1
            )
            .await
            .unwrap(),
        "compare and swap"
    );
    assert_eq!(store.user(t.id, u.id).await.unwrap(), Some(u2));

    let s = SessionRow {
        token_hash: uuid::Uuid::now_v7().as_bytes().to_vec(),
        tenant: t.id,
        user: u.id,
        created_at: now(),
        last_seen_at: now(),
        expires_at: now() + 1000,
        mfa_at: now(),
        revoked: false,
    };
    store.create_session(&s).await.unwrap();
    assert_eq!(
        store.session(&s.token_hash).await.unwrap().as_ref(),
        Some(&s)
    );
    let touched = SessionRow {
        last_seen_at: now() + 5,
        mfa_at: now() + 5,
        ..s.clone()
    };
    assert!(store.update_session(&touched).await.unwrap());
    assert_eq!(store.session(&s.token_hash).await.unwrap(), Some(touched));
    assert_eq!(store.expire_session_mfa(t.id, u.id).await.unwrap(), 1);
    assert_eq!(
        store.session(&s.token_hash).await.unwrap().unwrap().mfa_at,
        0,
        "step-up needed"
    );
    assert_eq!(store.revoke_sessions(t.id, u.id).await.unwrap(), 1);
    assert_eq!(store.revoke_sessions(t.id, u.id).await.unwrap(), 0);
    assert!(store.session(&s.token_hash).await.unwrap().unwrap().revoked);

    assert_eq!(store.policy(t.id).await.unwrap(), None);
    let pol = PolicyRow {
        tenant: t.id,
        version: 1,
        document: "{}".into(),
        created_by: "x".into(),
        created_at: now(),
    };
    store.put_policy(&pol).await.unwrap();
    assert!(matches!(
        store.put_policy(&pol).await,
        Err(Error::Conflict(_))
    ));
    let pol2 = PolicyRow {
        version: 2,
        document: r#"{"rules":[]}"#.into(),
        ..pol
    };
    store.put_policy(&pol2).await.unwrap();
    assert_eq!(store.policy(t.id).await.unwrap(), Some(pol2));

    let (a, b) = (SubjectId::generate(), SubjectId::generate());
    assert_eq!(
        store
            .note_subject_access(t.id, u.id, 20_000, &[a, b])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .note_subject_access(t.id, u.id, 20_000, &[a])
            .await
            .unwrap(),
        2,
        "distinct subjects"
    );
    assert_eq!(
        store
            .note_subject_access(t.id, u.id, 20_001, &[a])
            .await
            .unwrap(),
        1,
        "per day"
    );
}

fn audit_event(t: TenantId, action: &'static str, subject: Option<[u8; 32]>) -> AuditEvent {
    let mut e = AuditEvent::new(
        *t.as_bytes(),
        now(),
        "p1",
        "service",
        action,
        boveda_audit::Outcome::Allowed,
        "req",
    );
    e.collection = Some("customers".into());
    e.purpose = Some("billing".into());
    if let Some(s) = subject {
        e.subjects = vec![s];
    }
    e
}

async fn audit_journal(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-audit"));
    store.create_tenant(&t, &k).await.unwrap();
    store.audit_probe().await.unwrap();
    assert_eq!(store.audit_head(t.id).await.unwrap(), None);
    let stored = store
        .append_audit(Arc::new(vec![
            audit_event(t.id, "record.read", Some([7; 32])),
            audit_event(t.id, "record.search", None),
        ]))
        .await
        .unwrap();
    assert_eq!(stored.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(
        stored[0].hash,
        boveda_audit::link_hash(
            &boveda_audit::genesis(t.id.as_bytes()),
            1,
            &stored[0].encoded
        )
    );
    assert_eq!(
        store.audit_head(t.id).await.unwrap(),
        Some((2, stored[1].hash))
    );

    // A write's events commit with the write, and not at all when the write fails.
    let s = SubjectId::generate();
    let r = record(t.id, s, b"x");
    let written = store
        .insert_records(
            std::slice::from_ref(&r),
            &[],
            &[audit_event(t.id, "record.write", None)],
        )
        .await
        .unwrap();
    assert_eq!(
        written.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3],
        "a write returns its stored events"
    );
    assert!(matches!(
        store
            .insert_records(
                std::slice::from_ref(&r),
                &[],
                &[audit_event(t.id, "record.write", None)]
            )
            .await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(
        store.audit_head(t.id).await.unwrap().unwrap().0,
        3,
        "a failed write leaves no event"
    );
    assert_eq!(
        store
            .delete_record(
                t.id,
                "customers",
                r.id,
                &[audit_event(t.id, "record.delete", None)]
            )
            .await
            .unwrap()
            .map(|e| e[0].seq),
        Some(4)
    );
    assert!(
        store
            .delete_record(
                t.id,
                "customers",
                r.id,
                &[audit_event(t.id, "record.delete", None)]
            )
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.audit_head(t.id).await.unwrap().unwrap().0, 4);

    let all = store
        .audit_events(t.id, &AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    let reads = store
        .audit_events(
            t.id,
            &AuditFilter {
                action: Some("record.read".into()),
                ..Default::default()
            },
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(reads.len(), 1);
    let by_subject = store
        .audit_events(
            t.id,
            &AuditFilter {
                subject: Some([7; 32]),
                ..Default::default()
            },
            0,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        by_subject.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1]
    );
    let slice = store
        .audit_events(
            t.id,
            &AuditFilter {
                to_seq: Some(3),
                ..Default::default()
            },
            1,
            100,
        )
        .await
        .unwrap();
    assert_eq!(
        slice.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![2, 3],
        "a slice of the log"
    );
    assert_eq!(
        store
            .audit_events(t.id, &AuditFilter::default(), 2, 1)
            .await
            .unwrap()[0]
            .seq,
        3,
        "pagination"
    );
    assert!(
        store
            .audit_events(TenantId::generate(), &AuditFilter::default(), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    let key = boveda_crypto::sign::SigningKey::generate().unwrap();
    let cp = Checkpoint::sign(*t.id.as_bytes(), 4, all[3].hash, now(), &key);
    store.add_checkpoint(&cp).await.unwrap();
    store.add_checkpoint(&cp).await.unwrap();
    assert_eq!(store.checkpoints(t.id).await.unwrap(), vec![cp.clone()]);
    let report = boveda_audit::verify(all, std::slice::from_ref(&cp), &key.public_key(), None);
    assert!(report.is_intact(), "{report:?}");
    // Retention up to a checkpoint keeps the rest verifiable.
    assert_eq!(store.prune_audit(t.id, 2).await.unwrap(), 2);
    let cp2 = Checkpoint::sign(*t.id.as_bytes(), 2, stored[1].hash, now(), &key);
    store.add_checkpoint(&cp2).await.unwrap();
    let rest = store
        .audit_events(t.id, &AuditFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
    let report = boveda_audit::verify(
        rest,
        &store.checkpoints(t.id).await.unwrap(),
        &key.public_key(),
        None,
    );
    assert!(report.is_intact(), "after retention: {report:?}");
}

async fn alerts(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-alerts"));
    store.create_tenant(&t, &k).await.unwrap();
    let a = AlertRow {
        tenant: t.id,
        id: AlertId::generate(),
        kind: "volume".into(),
        principal: "p1".into(),
        at_ms: now(),
        events: "[1,2]".into(),
        detail: "120 events in an hour".into(),
        state: "open".into(),
        updated_at: now(),
    };
    store.add_alert(&a).await.unwrap();
    assert_eq!(store.alerts(t.id, None, 10).await.unwrap(), vec![a.clone()]);
    assert_eq!(
        store.alerts(t.id, Some("resolved"), 10).await.unwrap(),
        vec![]
    );
    assert!(
        store
            .set_alert_state(t.id, a.id, "resolved", now() + 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_alert_state(TenantId::generate(), a.id, "resolved", now())
            .await
            .unwrap(),
        "other tenant"
    );
    assert_eq!(
        store.alerts(t.id, Some("resolved"), 10).await.unwrap()[0].state,
        "resolved"
    );
}

async fn incidents(store: &dyn Store, p: &str) {
    let (t, k) = tenant(&format!("{p}-incidents"));
    store.create_tenant(&t, &k).await.unwrap();
    let i = IncidentRow {
        tenant: t.id,
        id: IncidentId::generate(),
        doc: "{}".into(),
        version: 1,
        created_at: now(),
    };
    store.create_incident(&i).await.unwrap();
    assert_eq!(store.incident(t.id, i.id).await.unwrap(), Some(i.clone()));
    assert_eq!(
        store.incident(TenantId::generate(), i.id).await.unwrap(),
        None
    );
    let i2 = IncidentRow {
        doc: r#"{"state":"contained"}"#.into(),
        version: 2,
        ..i.clone()
    };
    assert!(store.update_incident(&i2, 1).await.unwrap());
    assert!(
        !store.update_incident(&i2, 1).await.unwrap(),
        "compare and swap"
    );
    assert_eq!(store.incidents(t.id).await.unwrap(), vec![i2]);

    // Notices: insert-or-ignore by key, key order, compare-and-swap, due order, tenant
    // isolation.
    let notice = |key: &str, doc: &str| NoticeRow {
        tenant: t.id,
        incident: i.id,
        key: key.into(),
        doc: doc.into(),
        version: 1,
        due_ms: Some(match key {
            "s:a" => 10,
            "s:b" => 20,
            _ => 30,
        }),
    };
    assert_eq!(
        store
            .insert_notices(&[notice("s:b", "{}"), notice("s:a", "{}")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .insert_notices(&[notice("s:a", r#"{"again":1}"#), notice("s:c", "{}")])
            .await
            .unwrap(),
        1,
        "an existing key is left as it is"
    );
    let got = store.notices(t.id, i.id).await.unwrap();
    assert_eq!(
        got.iter().map(|n| n.key.as_str()).collect::<Vec<_>>(),
        ["s:a", "s:b", "s:c"]
    );
    assert_eq!(got[0].doc, "{}");
    let due = |now, limit| async move {
        store
            .due_notices(t.id, i.id, now, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.key)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        due(25, 10).await,
        ["s:a", "s:b"],
        "due by time, earliest first"
    );
    let sent = NoticeRow {
        doc: r#"{"state":"sent"}"#.into(),
        version: 2,
        due_ms: None,
        ..notice("s:a", "")
    };
    assert!(store.update_notice(&sent, 1).await.unwrap());
    assert_eq!(due(100, 1).await, ["s:b"], "a finished notice is never due");
    assert!(
        store
            .due_notices(TenantId::generate(), i.id, 100, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !store.update_notice(&sent, 1).await.unwrap(),
        "compare and swap"
    );
    assert_eq!(store.notices(t.id, i.id).await.unwrap()[0], sent);
    assert_eq!(
        store.notice(t.id, i.id, "s:a").await.unwrap(),
        Some(sent.clone())
    );
    assert_eq!(store.notice(t.id, i.id, "s:z").await.unwrap(), None);
    assert_eq!(
        store
            .notice(TenantId::generate(), i.id, "s:a")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .notices(TenantId::generate(), i.id)
            .await
            .unwrap()
            .is_empty()
    );
    let (a, b) = (SubjectId::generate(), SubjectId::generate());
    store
        .insert_subject_keys(&[subject_key(t.id, a, 1), subject_key(t.id, b, 1)])
        .await
        .unwrap();
    let first = store.subject_ids(t.id, None, 1).await.unwrap();
    assert_eq!(first.len(), 1);
    let rest = store.subject_ids(t.id, Some(first[0]), 10).await.unwrap();
    let mut all: Vec<SubjectId> = first.into_iter().chain(rest).collect();
    all.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(all, want);
}

/// SQLite summarises the audit log in blocks off the commit path: a search by subject,
/// principal or time finds the same events whether they sit in summarised blocks, after the
/// last one, or on both sides.
pub async fn sqlite_audit_blocks(store: &crate::sqlite::SqliteStore) {
    let (t, k) = tenant("audit-blocks");
    store.create_tenant(&t, &k).await.unwrap();
    let by = |s: [u8; 32]| {
        let store = &store;
        async move {
            store
                .audit_events(
                    t.id,
                    &AuditFilter {
                        subject: Some(s),
                        ..Default::default()
                    },
                    0,
                    1000,
                )
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    let two = |a: [u8; 32], b: [u8; 32]| {
        let mut e = audit_event(t.id, "record.read", Some(a));
        e.subjects.push(b);
        e
    };
    store
        .append_audit(Arc::new(vec![
            audit_event(t.id, "record.read", Some([1; 32])),
            two([2; 32], [1; 32]),
            audit_event(t.id, "record.search", None),
        ]))
        .await
        .unwrap();
    assert_eq!(by([1; 32]).await, vec![1, 2], "before any indexing");
    store.index_audit().await.unwrap();
    assert_eq!(by([1; 32]).await, vec![1, 2], "too few for a block");
    assert_eq!(by([2; 32]).await, vec![2]);
    store
        .append_audit(Arc::new(vec![two([3; 32], [1; 32])]))
        .await
        .unwrap();
    assert_eq!(
        by([1; 32]).await,
        vec![1, 2, 4],
        "indexed and after the mark"
    );
    assert_eq!(by([3; 32]).await, vec![4]);
    assert_eq!(by([9; 32]).await, Vec::<u64>::new(), "a subject never seen");
    // A pseudonym never matches across the boundary of two others.
    let mut straddle = [1u8; 32];
    straddle[16..].copy_from_slice(&[3; 16]);
    assert_eq!(by(straddle).await, Vec::<u64>::new());
    // Enough events for two blocks and a few rows after them: one in a hundred has subject
    // 1, every third another principal, and each its own millisecond.
    let start = now();
    let many: Vec<AuditEvent> = (0..2100)
        .map(|i| {
            let mut e = audit_event(t.id, "record.read", (i % 100 == 0).then_some([1; 32]));
            e.at_ms = start + i;
            if i % 3 == 0 {
                e.principal = "p3".into();
            }
            e
        })
        .collect();
    store.append_audit(Arc::new(many)).await.unwrap();
    let filters = [
        AuditFilter {
            subject: Some([1; 32]),
            ..Default::default()
        },
        AuditFilter {
            principal: Some("p3".into()),
            ..Default::default()
        },
        AuditFilter {
            from_ms: Some(start + 1000),
            to_ms: Some(start + 1100),
            ..Default::default()
        },
        AuditFilter {
            principal: Some("p1".into()),
            subject: Some([1; 32]),
            from_ms: Some(start + 150),
            ..Default::default()
        },
    ];
    let search = |f: AuditFilter| {
        let store = &store;
        async move {
            store
                .audit_events(t.id, &f, 0, 5000)
                .await
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>()
        }
    };
    let mut before = Vec::new();
    for f in &filters {
        before.push(search(f.clone()).await);
    }
    let tail: Vec<u64> = (0..2100).filter(|i| i % 100 == 0).map(|i| i + 5).collect();
    assert_eq!(before[0], [vec![1, 2, 4], tail.clone()].concat());
    assert_eq!(
        before[1],
        (0..2100)
            .filter(|i| i % 3 == 0)
            .map(|i| i + 5)
            .collect::<Vec<_>>()
    );
    assert_eq!(before[2], (1005..1105).collect::<Vec<_>>());
    // p1 with subject 1 from the 150th: 200, 400, 500, 700, ... (not multiples of 3).
    assert_eq!(
        before[3],
        tail.iter()
            .copied()
            .filter(|s| s - 5 >= 150 && (s - 5) % 3 != 0)
            .collect::<Vec<_>>()
    );
    store.index_audit().await.unwrap();
    for (f, want) in filters.into_iter().zip(before) {
        assert_eq!(search(f).await, want, "the same through the blocks");
    }
    assert_eq!(by([3; 32]).await, vec![4]);
    assert_eq!(by(straddle).await, Vec::<u64>::new());
}
