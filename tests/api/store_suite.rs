//! One storage suite, two backends: every test below is an async function
//! over a connected, migrated [`Store`], run once against SQLite (a temp
//! file) and once against PostgreSQL (a fresh database; skipped with a
//! message when `EMBEDGATE_TEST_POSTGRES_URL` is not set).
//!
//! Test names: `store_suite::{name}::sqlite` and `store_suite::{name}::postgres`.

use std::collections::BTreeMap;

use embedgate::config::DatabaseUrl;
use embedgate::domain::{
    Email, Level, Permission, PermissionSet, TeamId, UserKind, UserStatus, WorkbookSource,
};
use embedgate::store::{
    AccountTypeRecord, AuditFilter, AuditRecord, ClientRecord, ClientStatus, GrantFilter,
    GrantTarget, JtiUse, Store, StoreError, UserFields, UserFilter, WorkbookRecord,
};
use embedgate::token::SigningAlgorithm;

use crate::cluster::pg::TestDb;

/// Milliseconds: the storage format of timestamps.
const T: i64 = crate::helpers::NOW * 1000;

pub async fn sqlite_store(dir: &std::path::Path) -> Store {
    let url = DatabaseUrl(format!("sqlite://{}", dir.join("store.db").display()));
    let store = Store::connect(&url, 4).await.expect("sqlite connects");
    store.migrate().await.expect("sqlite migrates");
    store
}

pub async fn postgres_store(db: &TestDb) -> Store {
    let store = Store::connect(&DatabaseUrl(db.url.clone()), 4)
        .await
        .expect("postgres connects");
    store.migrate().await.expect("postgres migrates");
    store
}

/// For each name, a module with a `sqlite` and a `postgres` test that run
/// the async function of that name.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = super::sqlite_store(dir.path()).await;
                super::$name(&store).await;
                store.close().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = crate::cluster::pg::TestDb::create(
                    concat!("store_suite::", stringify!($name), "::postgres"),
                )
                .await
                else {
                    return;
                };
                let store = super::postgres_store(&db).await;
                super::$name(&store).await;
                store.close().await;
            }
        }
    )*};
}

on_both_backends!(
    clients,
    teams,
    users,
    insert_users,
    account_types,
    workspaces,
    workbooks_and_tags,
    grants,
    settings_document,
    admin_tokens,
    jtis,
    audit,
    audit_by_email,
    audit_text_round_trips,
);

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

fn email(s: &str) -> Email {
    Email::parse(s).unwrap()
}

fn template(name: &str) -> WorkbookSource {
    WorkbookSource::Template {
        template: name.into(),
        dataset: Some("sales.csv".into()),
        company_field: Some("company".into()),
    }
}

fn upstream(url: &str) -> WorkbookSource {
    WorkbookSource::Upstream { url: url.into() }
}

fn workbook(id: &str, workspace: Option<i64>) -> WorkbookRecord {
    WorkbookRecord {
        id: id.into(),
        name: format!("{id} workbook"),
        workspace,
        source: template("sales.html"),
        tags: BTreeMap::new(),
        created_at: T,
        updated_at: T,
    }
}

pub(crate) fn user_fields(address: &str, teams: &[TeamId]) -> UserFields {
    UserFields {
        email: email(address),
        kind: UserKind::Embed,
        status: UserStatus::Active,
        first_name: None,
        last_name: None,
        account_type: "Viewer".into(),
        attributes: embedgate::domain::Attributes::new(),
        client_id: Some("acme-host".into()),
        team_ids: teams.to_vec(),
    }
}

async fn team(store: &Store, name: &str) -> TeamId {
    store
        .insert_team(name, &format!("{name} team"), "private", T)
        .await
        .unwrap()
        .id
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: id.into(),
        name: format!("{id} host"),
        algorithm: SigningAlgorithm::HS256,
        secret: Some(format!("{id}-secret-0123456789-0123456789")),
        previous_secret: None,
        previous_valid_until: None,
        public_key_pem: None,
        jwks_url: None,
        allowed_origins: vec!["https://app.example".into(), "https://b.example".into()],
        allowed_teams: vec!["t1".into()],
        allow_internal_users: true,
        status: ClientStatus::Active,
        created_at: T,
        updated_at: T,
    }
}

fn assert_same_client(got: &ClientRecord, want: &ClientRecord) {
    assert_eq!(got.client_id, want.client_id);
    assert_eq!(got.name, want.name);
    assert_eq!(got.algorithm, want.algorithm);
    assert_eq!(got.secret, want.secret);
    assert_eq!(got.previous_secret, want.previous_secret);
    assert_eq!(got.previous_valid_until, want.previous_valid_until);
    assert_eq!(got.public_key_pem, want.public_key_pem);
    assert_eq!(got.jwks_url, want.jwks_url);
    assert_eq!(got.allowed_origins, want.allowed_origins);
    assert_eq!(got.allowed_teams, want.allowed_teams);
    assert_eq!(got.allow_internal_users, want.allow_internal_users);
    assert_eq!(got.status, want.status);
    assert_eq!(got.created_at, want.created_at);
    assert_eq!(got.updated_at, want.updated_at);
}

async fn clients(store: &Store) {
    let zeta = client("zeta");
    store.insert_client(&zeta).await.unwrap();
    let mut alpha = client("alpha");
    alpha.algorithm = SigningAlgorithm::ES256;
    alpha.secret = None;
    alpha.public_key_pem =
        Some("-----BEGIN PUBLIC KEY-----\nMFk=\n-----END PUBLIC KEY-----\n".into());
    alpha.jwks_url = Some("https://keys.example/jwks.json".into());
    alpha.allowed_origins = vec![];
    alpha.allowed_teams = vec![];
    alpha.allow_internal_users = false;
    store.insert_client(&alpha).await.unwrap();

    assert_same_client(&store.get_client("zeta").await.unwrap().unwrap(), &zeta);
    assert_same_client(&store.get_client("alpha").await.unwrap().unwrap(), &alpha);
    assert!(store.get_client("nobody").await.unwrap().is_none());
    let ids: Vec<String> = store
        .list_clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["alpha", "zeta"]);

    assert!(is_conflict(store.insert_client(&client("zeta")).await));

    // Rotation keeps the old secret until the end of the grace period.
    assert!(
        store
            .rotate_client_secret("zeta", "new-secret", T + 3_600_000, T + 1)
            .await
            .unwrap()
    );
    let rotated = store.get_client("zeta").await.unwrap().unwrap();
    assert_eq!(rotated.secret.as_deref(), Some("new-secret"));
    assert_eq!(rotated.previous_secret, zeta.secret);
    assert_eq!(rotated.previous_valid_until, Some(T + 3_600_000));
    assert_eq!(rotated.updated_at, T + 1);
    assert!(
        !store
            .rotate_client_secret("nobody", "x", T, T)
            .await
            .unwrap()
    );

    // Revocation forgets the secrets; the client stays listed.
    assert!(store.revoke_client("zeta", T + 2).await.unwrap());
    let revoked = store.get_client("zeta").await.unwrap().unwrap();
    assert_eq!(revoked.status, ClientStatus::Revoked);
    assert_eq!(revoked.secret, None);
    assert_eq!(revoked.previous_secret, None);
    assert_eq!(revoked.updated_at, T + 2);
    assert_eq!(store.list_clients().await.unwrap().len(), 2);
    // A revoked client cannot be rotated back to life.
    assert!(
        !store
            .rotate_client_secret("zeta", "again", T, T + 3)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_client("zeta").await.unwrap().unwrap().secret,
        None
    );
    assert!(!store.revoke_client("nobody", T).await.unwrap());
}

// ---------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------

async fn teams(store: &Store) {
    let beta = store
        .insert_team("beta", "Beta team", "private", T)
        .await
        .unwrap();
    let alpha = store
        .insert_team("alpha", "Alpha team", "public", T + 1)
        .await
        .unwrap();
    assert_ne!(alpha.id, beta.id);
    assert_eq!(store.get_team(alpha.id).await.unwrap(), Some(alpha.clone()));
    assert_eq!(store.get_team(9_999).await.unwrap(), None);
    let names: Vec<String> = store
        .list_teams()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert!(is_conflict(
        store.insert_team("alpha", "", "private", T).await
    ));

    let mut renamed = alpha.clone();
    renamed.name = "alpha-2".into();
    renamed.description = "renamed".into();
    renamed.visibility = "private".into();
    assert!(store.update_team(&renamed).await.unwrap());
    assert_eq!(
        store.get_team(alpha.id).await.unwrap(),
        Some(renamed.clone())
    );
    let mut clash = renamed.clone();
    clash.name = "beta".into();
    assert!(is_conflict(store.update_team(&clash).await));
    let mut missing = renamed.clone();
    missing.id = 9_999;
    assert!(!store.update_team(&missing).await.unwrap());

    // Deleting a team removes its memberships and grants, nothing else.
    let user = store
        .insert_user(&user_fields("ana@acme.example", &[alpha.id, beta.id]), T)
        .await
        .unwrap()
        .unwrap();
    store
        .insert_workbook(&workbook("sales", None))
        .await
        .unwrap();
    let wb = GrantTarget::Workbook("sales".into());
    store
        .insert_grant(alpha.id, &wb, Level::View, None, T)
        .await
        .unwrap();
    let kept = store
        .insert_grant(beta.id, &wb, Level::Edit, None, T)
        .await
        .unwrap();
    assert_eq!(store.team_member_ids(alpha.id).await.unwrap(), [user]);

    assert!(store.delete_team(alpha.id).await.unwrap());
    assert_eq!(store.get_team(alpha.id).await.unwrap(), None);
    assert!(store.team_member_ids(alpha.id).await.unwrap().is_empty());
    assert_eq!(
        store.get_user(user).await.unwrap().unwrap().team_ids,
        [beta.id]
    );
    let grants = store.list_grants(&GrantFilter::default()).await.unwrap();
    assert_eq!(grants, [kept]);
    assert!(!store.delete_team(alpha.id).await.unwrap());
}

// ---------------------------------------------------------------------------
// Users
// ---------------------------------------------------------------------------

async fn users(store: &Store) {
    let a = team(store, "a").await;
    let b = team(store, "b").await;
    let c = team(store, "c").await;

    let mut ana = user_fields("Ana@Acme.example", &[b, a]);
    ana.first_name = Some("Ana".into());
    ana.attributes.insert("company".into(), "acme".into());
    let ana_id = store.insert_user(&ana, T).await.unwrap().unwrap();
    let got = store.get_user(ana_id).await.unwrap().unwrap();
    // What a first handshake puts into the policy without reading it back.
    assert_eq!(ana.clone().into_new_record(ana_id, T), got);
    assert_eq!(got.email.as_str(), "ana@acme.example");
    assert_eq!(got.team_ids, [a.min(b), a.max(b)]);
    assert_eq!(got.first_name.as_deref(), Some("Ana"));
    assert_eq!(got.attributes, ana.attributes);
    assert_eq!(got.client_id.as_deref(), Some("acme-host"));
    assert_eq!(got.kind, UserKind::Embed);
    assert_eq!(got.status, UserStatus::Active);
    assert_eq!(got.account_type, "Viewer");
    assert_eq!((got.created_at, got.updated_at), (T, T));
    assert_eq!(got.session_epoch, 0);
    assert_eq!(got.last_seen_at, None);
    let by_email = store
        .get_user_by_email(&email("ana@acme.example"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_email, got);
    assert!(
        store
            .get_user_by_email(&email("nobody@acme.example"))
            .await
            .unwrap()
            .is_none()
    );

    // A taken email: None, and the existing user is untouched.
    assert_eq!(
        store
            .insert_user(&user_fields("ana@acme.example", &[c]), T + 5)
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_user(ana_id).await.unwrap().unwrap(), got);

    // A failed insert (unknown team) leaves nothing behind.
    assert!(is_conflict(
        store
            .insert_user(&user_fields("ghost@acme.example", &[9_999]), T)
            .await
    ));
    assert!(
        store
            .get_user_by_email(&email("ghost@acme.example"))
            .await
            .unwrap()
            .is_none()
    );

    let mut bob = user_fields("bob@acme.example", &[c]);
    bob.kind = UserKind::Internal;
    bob.client_id = None;
    let bob_id = store.insert_user(&bob, T).await.unwrap().unwrap();

    // Update replaces every field and the memberships.
    let mut changed = ana.clone();
    changed.email = email("ana@acme.example");
    changed.team_ids = vec![c];
    changed.status = UserStatus::Deactivated;
    changed.account_type = "Explorer".into();
    changed.first_name = None;
    changed.last_name = Some("Lovelace".into());
    changed.attributes =
        embedgate::domain::Attributes::from([("region".to_owned(), "eu".to_owned())]);
    changed.client_id = Some("other-host".into());
    assert!(store.update_user(ana_id, &changed, T + 1).await.unwrap());
    let updated = store.get_user(ana_id).await.unwrap().unwrap();
    assert_eq!(updated.fields(), changed);
    assert_eq!((updated.created_at, updated.updated_at), (T, T + 1));
    assert!(!store.update_user(9_999, &changed, T).await.unwrap());

    // Filters.
    let ids = |users: Vec<embedgate::store::UserRecord>| -> Vec<i64> {
        users.into_iter().map(|u| u.id).collect()
    };
    let list = |f: UserFilter| async move { ids(store.list_users(&f).await.unwrap()) };
    assert_eq!(list(UserFilter::default()).await, [ana_id, bob_id]);
    assert_eq!(
        list(UserFilter {
            email: Some("ANA@acme.example".into()),
            ..Default::default()
        })
        .await,
        [ana_id]
    );
    assert_eq!(
        list(UserFilter {
            kind: Some(UserKind::Internal),
            ..Default::default()
        })
        .await,
        [bob_id]
    );
    assert_eq!(
        list(UserFilter {
            team_id: Some(c),
            ..Default::default()
        })
        .await,
        [ana_id, bob_id]
    );
    assert!(
        list(UserFilter {
            team_id: Some(a),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(UserFilter {
            kind: Some(UserKind::Embed),
            team_id: Some(c),
            ..Default::default()
        })
        .await,
        [ana_id]
    );
    let listed = store.list_users(&UserFilter::default()).await.unwrap();
    assert_eq!(listed[1].team_ids, [c], "lists carry the teams");
    let all = store.all_users().await.unwrap();
    assert_eq!(all, listed);

    // Session epochs and last seen.
    assert!(store.bump_session_epoch(ana_id, T + 2).await.unwrap());
    assert!(store.bump_session_epoch(ana_id, T + 3).await.unwrap());
    let bumped = store.get_user(ana_id).await.unwrap().unwrap();
    assert_eq!((bumped.session_epoch, bumped.updated_at), (2, T + 3));
    assert!(!store.bump_session_epoch(9_999, T).await.unwrap());
    store.touch_users(&[], T + 4).await.unwrap();
    store.touch_users(&[ana_id, bob_id], T + 5).await.unwrap();
    for id in [ana_id, bob_id] {
        assert_eq!(
            store.get_user(id).await.unwrap().unwrap().last_seen_at,
            Some(T + 5)
        );
    }

    // Delete removes the memberships with the user.
    assert!(store.delete_user(bob_id).await.unwrap());
    assert_eq!(store.get_user(bob_id).await.unwrap(), None);
    assert_eq!(store.team_member_ids(c).await.unwrap(), [ana_id]);
    assert!(!store.delete_user(bob_id).await.unwrap());
}

// ---------------------------------------------------------------------------
// Account types
// ---------------------------------------------------------------------------

/// `insert_users`: a batch of new users with their memberships, all or
/// nothing; a taken email (stored, or earlier in the batch) gives `None`.
async fn insert_users(store: &Store) {
    let (a, b, c) = (
        team(store, "a").await,
        team(store, "b").await,
        team(store, "c").await,
    );
    let zed = store
        .insert_user(&user_fields("zed@acme.example", &[a]), T)
        .await
        .unwrap()
        .unwrap();
    let zed_before = store.get_user(zed).await.unwrap().unwrap();

    let batch = [
        user_fields("ana@acme.example", &[b, a]),
        user_fields("bob@acme.example", &[]),
        user_fields("ana@acme.example", &[c]),
        user_fields("carol@acme.example", &[c]),
        user_fields("zed@acme.example", &[b, c]),
    ];
    let refs: Vec<&UserFields> = batch.iter().collect();
    let ids = store.insert_users(&refs, T + 1, None).await.unwrap();
    assert_eq!(ids.len(), 5);
    assert!(
        ids[0].is_some() && ids[1].is_some() && ids[3].is_some(),
        "{ids:?}"
    );
    assert_eq!(
        (ids[2], ids[4]),
        (None, None),
        "taken emails create nothing"
    );
    for i in [0, 1, 3] {
        let id = ids[i].unwrap();
        let got = store.get_user(id).await.unwrap().unwrap();
        assert_eq!(batch[i].clone().into_new_record(id, T + 1), got);
    }
    let ana = store.get_user(ids[0].unwrap()).await.unwrap().unwrap();
    assert_eq!(
        ana.team_ids,
        [a, b],
        "the first ana's teams, not the second's"
    );
    assert!(
        store
            .get_user(ids[1].unwrap())
            .await
            .unwrap()
            .unwrap()
            .team_ids
            .is_empty()
    );
    assert_eq!(store.get_user(zed).await.unwrap().unwrap(), zed_before);
    assert_eq!(store.team_member_ids(c).await.unwrap(), [ids[3].unwrap()]);
    assert_eq!(store.insert_users(&[], T, None).await.unwrap(), []);

    // One user with a missing team fails the whole batch: nothing of it
    // is written, and the next batch works.
    let bad = [
        user_fields("dan@acme.example", &[a]),
        user_fields("ghost@acme.example", &[9_999]),
    ];
    let refs: Vec<&UserFields> = bad.iter().collect();
    assert!(is_conflict(store.insert_users(&refs, T + 2, None).await));
    for address in ["dan@acme.example", "ghost@acme.example"] {
        assert!(
            store
                .get_user_by_email(&email(address))
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        store
            .list_users(&UserFilter::default())
            .await
            .unwrap()
            .len(),
        4
    );
    let dan = store.insert_users(&refs[..1], T + 3, None).await.unwrap();
    assert!(dan[0].is_some());

    // The largest batch, each user in 100 teams, fits.
    let mut teams = Vec::new();
    for i in 0..100 {
        teams.push(team(store, &format!("big-{i}")).await);
    }
    let many: Vec<UserFields> = (0..embedgate::store::MAX_USER_BATCH)
        .map(|i| user_fields(&format!("user-{i}@acme.example"), &teams))
        .collect();
    let refs: Vec<&UserFields> = many.iter().collect();
    let ids = store.insert_users(&refs, T + 4, None).await.unwrap();
    assert!(ids.iter().all(Option::is_some));
    assert_eq!(
        store.team_member_ids(teams[99]).await.unwrap().len(),
        embedgate::store::MAX_USER_BATCH
    );
    let last = store.get_user(ids[255].unwrap()).await.unwrap().unwrap();
    assert_eq!(last.team_ids, teams);
}

async fn account_types(store: &Store) {
    use Permission::*;
    let list = store.list_account_types().await.unwrap();
    let builtins: Vec<(String, PermissionSet, bool)> = list
        .iter()
        .map(|a| (a.name.clone(), a.permissions, a.builtin))
        .collect();
    for (name, perms) in [
        ("Viewer", PermissionSet::of(&[View])),
        ("Explorer", PermissionSet::of(&[View, Explore, Export])),
        ("Creator", PermissionSet::of(&[View, Explore, Export, Edit])),
    ] {
        assert!(
            builtins.contains(&(name.to_owned(), perms, true)),
            "{name} is built in: {builtins:?}"
        );
    }
    assert_eq!(list.len(), 3);

    let analyst = AccountTypeRecord {
        name: "Analyst".into(),
        permissions: PermissionSet::of(&[View, Export, AllCompanies]),
        builtin: false,
    };
    store.insert_account_type(&analyst).await.unwrap();
    assert_eq!(
        store.get_account_type("Analyst").await.unwrap(),
        Some(analyst.clone())
    );
    assert_eq!(store.get_account_type("Nobody").await.unwrap(), None);
    assert!(is_conflict(store.insert_account_type(&analyst).await));
    let names: Vec<String> = store
        .list_account_types()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(
        names.last().map(String::as_str),
        Some("Analyst"),
        "built-ins first"
    );

    assert!(
        store
            .update_account_type("Analyst", PermissionSet::of(&[View]))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_account_type("Analyst")
            .await
            .unwrap()
            .unwrap()
            .permissions,
        PermissionSet::of(&[View])
    );
    assert!(
        !store
            .update_account_type("Nobody", PermissionSet::of(&[View]))
            .await
            .unwrap()
    );

    // Built-in: never deleted.
    assert!(!store.delete_account_type("Viewer").await.unwrap());
    assert!(store.get_account_type("Viewer").await.unwrap().is_some());

    // In use: refused until no user has it.
    let mut fields = user_fields("ana@acme.example", &[]);
    fields.account_type = "Analyst".into();
    let user = store.insert_user(&fields, T).await.unwrap().unwrap();
    assert_eq!(
        store
            .count_users_with_account_type("Analyst")
            .await
            .unwrap(),
        1
    );
    assert!(!store.delete_account_type("Analyst").await.unwrap());
    assert!(store.get_account_type("Analyst").await.unwrap().is_some());
    assert!(store.delete_user(user).await.unwrap());
    assert_eq!(
        store
            .count_users_with_account_type("Analyst")
            .await
            .unwrap(),
        0
    );
    assert!(store.delete_account_type("Analyst").await.unwrap());
    assert_eq!(store.get_account_type("Analyst").await.unwrap(), None);
    assert!(!store.delete_account_type("Analyst").await.unwrap());
}

// ---------------------------------------------------------------------------
// Workspaces
// ---------------------------------------------------------------------------

async fn workspaces(store: &Store) {
    let reports = store.insert_workspace("reports", None, T).await.unwrap();
    let finance = store
        .insert_workspace("finance", Some(reports.id), T)
        .await
        .unwrap();
    assert_eq!(finance.parent, Some(reports.id));
    assert_eq!(
        store.get_workspace(finance.id).await.unwrap(),
        Some(finance.clone())
    );
    assert_eq!(store.get_workspace(9_999).await.unwrap(), None);
    assert_eq!(
        store.list_workspaces().await.unwrap(),
        [reports.clone(), finance.clone()]
    );

    // Not empty: a child workspace, then a workbook.
    assert!(!store.delete_workspace(reports.id).await.unwrap());
    store
        .insert_workbook(&workbook("sales", Some(finance.id)))
        .await
        .unwrap();
    assert!(!store.delete_workspace(finance.id).await.unwrap());
    assert_eq!(store.list_workspaces().await.unwrap().len(), 2);

    // Empty: deleted, with its grants.
    let t = team(store, "t").await;
    store
        .insert_grant(t, &GrantTarget::Workspace(finance.id), Level::View, None, T)
        .await
        .unwrap();
    assert!(store.delete_workbook("sales").await.unwrap());
    assert!(store.delete_workspace(finance.id).await.unwrap());
    assert!(
        store
            .list_grants(&GrantFilter {
                workspace: Some(finance.id),
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.delete_workspace(reports.id).await.unwrap());
    assert!(!store.delete_workspace(reports.id).await.unwrap());
    assert!(store.list_workspaces().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------
// Workbooks and their tags
// ---------------------------------------------------------------------------

async fn workbooks_and_tags(store: &Store) {
    let ws = store.insert_workspace("reports", None, T).await.unwrap();
    let sales = workbook("sales", None);
    store.insert_workbook(&sales).await.unwrap();
    assert_eq!(
        store.get_workbook("sales").await.unwrap(),
        Some(sales.clone())
    );
    assert_eq!(store.get_workbook("nothing").await.unwrap(), None);
    assert!(is_conflict(store.insert_workbook(&sales).await));

    // Tags: put, replace, list per workbook.
    store
        .put_workbook_tag("sales", "v2", &template("sales_v2.html"))
        .await
        .unwrap();
    store
        .put_workbook_tag("sales", "v2", &template("sales_v3.html"))
        .await
        .unwrap();
    store
        .put_workbook_tag("sales", "live", &upstream("http://127.0.0.1:9000/app"))
        .await
        .unwrap();
    let mut orders = workbook("orders", Some(ws.id));
    store.insert_workbook(&orders).await.unwrap();
    store
        .put_workbook_tag("orders", "v2", &template("orders.html"))
        .await
        .unwrap();
    let got = store.get_workbook("sales").await.unwrap().unwrap();
    assert_eq!(
        got.tags,
        BTreeMap::from([
            ("live".to_owned(), upstream("http://127.0.0.1:9000/app")),
            ("v2".to_owned(), template("sales_v3.html")),
        ])
    );
    let all = store.list_workbooks().await.unwrap();
    assert_eq!(
        all.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        ["orders", "sales"]
    );
    assert_eq!(
        all[0].tags,
        BTreeMap::from([("v2".to_owned(), template("orders.html"))])
    );
    assert_eq!(all[1].tags.len(), 2);

    // Deleting a tag deletes the grants given for it, and only those.
    let t = team(store, "t").await;
    let target = GrantTarget::Workbook("sales".into());
    let published = store
        .insert_grant(t, &target, Level::View, None, T)
        .await
        .unwrap();
    store
        .insert_grant(t, &target, Level::View, Some("v2"), T)
        .await
        .unwrap();
    let other_tag = store
        .insert_grant(t, &target, Level::View, Some("live"), T)
        .await
        .unwrap();
    let orders_v2 = store
        .insert_grant(
            t,
            &GrantTarget::Workbook("orders".into()),
            Level::View,
            Some("v2"),
            T,
        )
        .await
        .unwrap();
    assert!(store.delete_workbook_tag("sales", "v2").await.unwrap());
    assert!(!store.delete_workbook_tag("sales", "v2").await.unwrap());
    let got = store.get_workbook("sales").await.unwrap().unwrap();
    assert_eq!(got.tags.keys().collect::<Vec<_>>(), ["live"]);
    assert_eq!(
        store.list_grants(&GrantFilter::default()).await.unwrap(),
        [published, other_tag, orders_v2.clone()]
    );

    // Update.
    orders.name = "Orders 2".into();
    orders.workspace = None;
    orders.source = upstream("http://127.0.0.1:9001/");
    orders.updated_at = T + 1;
    assert!(store.update_workbook(&orders).await.unwrap());
    let got = store.get_workbook("orders").await.unwrap().unwrap();
    assert_eq!(
        (
            got.name.as_str(),
            got.workspace,
            &got.source,
            got.updated_at,
            got.created_at
        ),
        ("Orders 2", None, &orders.source, T + 1, T)
    );
    assert!(
        !store
            .update_workbook(&workbook("nothing", None))
            .await
            .unwrap()
    );

    // Delete: with its tags and grants.
    assert!(store.delete_workbook("sales").await.unwrap());
    assert_eq!(store.get_workbook("sales").await.unwrap(), None);
    assert!(!store.delete_workbook("sales").await.unwrap());
    assert_eq!(
        store.list_grants(&GrantFilter::default()).await.unwrap(),
        [orders_v2]
    );
    store.insert_workbook(&sales).await.unwrap();
    assert!(
        store
            .get_workbook("sales")
            .await
            .unwrap()
            .unwrap()
            .tags
            .is_empty(),
        "the old tags went with the workbook"
    );
}

// ---------------------------------------------------------------------------
// Grants
// ---------------------------------------------------------------------------

async fn grants(store: &Store) {
    let t1 = team(store, "t1").await;
    let t2 = team(store, "t2").await;
    let ws = store.insert_workspace("reports", None, T).await.unwrap();
    store
        .insert_workbook(&workbook("sales", None))
        .await
        .unwrap();
    let wb = GrantTarget::Workbook("sales".into());
    let space = GrantTarget::Workspace(ws.id);

    let g1 = store
        .insert_grant(t1, &wb, Level::View, None, T)
        .await
        .unwrap();
    assert_eq!(
        (
            g1.team_id,
            &g1.target,
            g1.level,
            g1.tag.as_deref(),
            g1.created_at
        ),
        (t1, &wb, Level::View, None, T)
    );
    assert_eq!(store.get_grant(g1.id).await.unwrap(), Some(g1.clone()));
    assert_eq!(store.get_grant(9_999).await.unwrap(), None);

    // Unique per team, target and version.
    assert!(is_conflict(
        store.insert_grant(t1, &wb, Level::Edit, None, T).await
    ));
    let g2 = store
        .insert_grant(t1, &wb, Level::Explore, Some("v2"), T)
        .await
        .unwrap();
    assert!(is_conflict(
        store
            .insert_grant(t1, &wb, Level::View, Some("v2"), T)
            .await
    ));
    let g3 = store
        .insert_grant(t2, &wb, Level::Edit, None, T)
        .await
        .unwrap();
    let g4 = store
        .insert_grant(t1, &space, Level::Explore, None, T)
        .await
        .unwrap();
    assert!(is_conflict(
        store.insert_grant(t1, &space, Level::View, None, T).await
    ));
    assert_eq!(store.get_grant(g2.id).await.unwrap(), Some(g2.clone()));
    assert_eq!(store.get_grant(g4.id).await.unwrap(), Some(g4.clone()));

    // Filters.
    let list = |f: GrantFilter| async move { store.list_grants(&f).await.unwrap() };
    assert_eq!(
        list(GrantFilter::default()).await,
        [g1.clone(), g2.clone(), g3.clone(), g4.clone()]
    );
    assert_eq!(
        list(GrantFilter {
            team_id: Some(t1),
            ..Default::default()
        })
        .await,
        [g1.clone(), g2.clone(), g4.clone()]
    );
    assert_eq!(
        list(GrantFilter {
            workbook: Some("sales".into()),
            ..Default::default()
        })
        .await,
        [g1.clone(), g2.clone(), g3.clone()]
    );
    assert_eq!(
        list(GrantFilter {
            workspace: Some(ws.id),
            ..Default::default()
        })
        .await,
        vec![g4.clone()]
    );
    assert_eq!(
        list(GrantFilter {
            team_id: Some(t2),
            workbook: Some("sales".into()),
            ..Default::default()
        })
        .await,
        vec![g3.clone()]
    );

    assert!(store.delete_grant(g1.id).await.unwrap());
    assert!(!store.delete_grant(g1.id).await.unwrap());
    assert_eq!(store.get_grant(g1.id).await.unwrap(), None);
    // The freed slot can be granted again.
    store
        .insert_grant(t1, &wb, Level::Edit, None, T)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// Settings and admin tokens
// ---------------------------------------------------------------------------

async fn settings_document(store: &Store) {
    assert_eq!(store.load_settings().await.unwrap(), None);
    let first = r#"{"auto_provisioning":false}"#;
    store.save_settings(first).await.unwrap();
    assert_eq!(store.load_settings().await.unwrap().as_deref(), Some(first));
    let second = r#"{"auto_provisioning":true,"default_account_type":"Explorer"}"#;
    store.save_settings(second).await.unwrap();
    assert_eq!(
        store.load_settings().await.unwrap().as_deref(),
        Some(second)
    );
}

async fn admin_tokens(store: &Store) {
    store.insert_admin_token("ci", "hash-1", T).await.unwrap();
    store.insert_admin_token("ci", "hash-2", T).await.unwrap();
    assert_eq!(
        store.admin_token_name("hash-1").await.unwrap().as_deref(),
        Some("ci")
    );
    assert_eq!(store.admin_token_name("hash-3").await.unwrap(), None);
    assert!(is_conflict(
        store.insert_admin_token("other", "hash-1", T).await
    ));
}

// ---------------------------------------------------------------------------
// The jti ledger
// ---------------------------------------------------------------------------

fn jti(client: &str, id: &str, expires_at: i64) -> JtiUse {
    JtiUse {
        client_id: client.into(),
        jti: id.into(),
        expires_at,
    }
}

async fn jtis(store: &Store) {
    let exp = crate::helpers::NOW + 360;
    assert_eq!(
        store.consume_jtis(&[jti("acme", "j1", exp)]).await.unwrap(),
        [true]
    );
    assert_eq!(
        store.consume_jtis(&[jti("acme", "j1", exp)]).await.unwrap(),
        [false]
    );
    assert_eq!(
        store
            .consume_jtis(&[
                jti("acme", "j2", exp),
                jti("acme", "j2", exp),
                jti("globex", "j2", exp),
                jti("acme", "j1", exp),
                jti("acme", "j3", exp),
                jti("globex", "j2", exp),
            ])
            .await
            .unwrap(),
        [true, false, true, false, true, false]
    );
    assert_eq!(store.consume_jtis(&[]).await.unwrap(), Vec::<bool>::new());
    assert!(store.jti_used("acme", "j2").await.unwrap());
    assert!(store.jti_used("globex", "j2").await.unwrap());
    assert!(!store.jti_used("initech", "j2").await.unwrap());
    assert!(!store.jti_used("acme", "j9").await.unwrap());

    // A batch larger than one statement, with a duplicate across statements.
    let mut big: Vec<JtiUse> = (0..250)
        .map(|i| jti("acme", &format!("big-{i}"), exp))
        .collect();
    big.push(jti("acme", "big-3", exp));
    big.push(jti("acme", "j1", exp));
    let results = store.consume_jtis(&big).await.unwrap();
    assert_eq!(results.len(), 252);
    assert!(results[..250].iter().all(|r| *r), "{results:?}");
    assert_eq!(&results[250..], [false, false]);

    // Purge: rows whose expiry passed go, the others stay.
    store
        .consume_jtis(&[jti("acme", "later", exp + 1000)])
        .await
        .unwrap();
    assert_eq!(
        store.purge_jtis(exp).await.unwrap(),
        0,
        "expires_at == now stays"
    );
    assert_eq!(store.purge_jtis(exp + 1).await.unwrap(), 254);
    assert!(!store.jti_used("acme", "j1").await.unwrap());
    assert!(store.jti_used("acme", "later").await.unwrap());
    // Once purged, an id can be consumed again (its token has expired).
    assert_eq!(
        store.consume_jtis(&[jti("acme", "j1", exp)]).await.unwrap(),
        [true]
    );
}

/// SQLite remembers the ids it consumed and logs them (`used_jtis_log`)
/// rather than indexing them; beyond its memory, and for rows written
/// before, the unique index of `used_jtis` decides.
mod jti_memory {
    use embedgate::store::Store;
    use sqlx::Connection;

    use super::jti;

    async fn open(dir: &std::path::Path) -> (Store, String) {
        let store = super::sqlite_store(dir).await;
        (
            store,
            format!("sqlite://{}", dir.join("store.db").display()),
        )
    }

    #[tokio::test]
    async fn consumed_ids_stay_consumed_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let exp = crate::helpers::NOW + 360;
        let (store, url) = open(dir.path()).await;
        let ids = [jti("acme", "r1", exp), jti("globex", "r1", exp)];
        assert_eq!(store.consume_jtis(&ids).await.unwrap(), [true, true]);
        assert_eq!(
            crate::helpers::jti_rows(&url).await,
            (2, 0),
            "logged, not indexed"
        );
        store.close().await;

        let (store, _) = open(dir.path()).await;
        // Before any batch has read the log back: the inspector searches it.
        assert!(store.jti_used("acme", "r1").await.unwrap());
        assert!(!store.jti_used("acme", "r2").await.unwrap());
        assert_eq!(
            store
                .consume_jtis(&[ids[0].clone(), jti("acme", "r2", exp), ids[1].clone()])
                .await
                .unwrap(),
            [false, true, false]
        );
        assert!(store.jti_used("globex", "r1").await.unwrap());
        assert!(!store.jti_used("initech", "r1").await.unwrap());
        store.close().await;
    }

    #[tokio::test]
    async fn beyond_the_memory_the_unique_index_decides() {
        let dir = tempfile::tempdir().unwrap();
        let exp = crate::helpers::NOW + 360;
        let (store, url) = open(dir.path()).await;
        store.set_jti_memory_max(2);
        let ids: Vec<_> = (0..5).map(|i| jti("acme", &format!("m{i}"), exp)).collect();
        assert_eq!(
            store.consume_jtis(&ids[..3]).await.unwrap(),
            [true, true, true]
        );
        assert_eq!(crate::helpers::jti_rows(&url).await, (2, 1));
        assert_eq!(
            store.consume_jtis(&ids).await.unwrap(),
            [false, false, false, true, true]
        );
        assert_eq!(crate::helpers::jti_rows(&url).await, (2, 3));
        for u in &ids {
            assert!(store.jti_used(&u.client_id, &u.jti).await.unwrap());
        }
        store.close().await;

        // Restarted with room to spare: still all consumed.
        let (store, url) = open(dir.path()).await;
        assert_eq!(
            store.consume_jtis(&ids).await.unwrap(),
            [false, false, false, false, false]
        );
        assert_eq!(
            crate::helpers::jti_rows(&url).await,
            (2, 3),
            "nothing written twice"
        );

        // Purged from both once expired (plus skew); then usable again.
        assert_eq!(store.purge_jtis(exp + 1).await.unwrap(), 5);
        assert_eq!(crate::helpers::jti_rows(&url).await, (0, 0));
        assert!(!store.jti_used("acme", "m0").await.unwrap());
        assert_eq!(store.consume_jtis(&ids[..1]).await.unwrap(), [true]);
        store.close().await;
    }

    /// Ids of a database written before the log existed are in `used_jtis`
    /// only: they are replays, and are not logged again.
    #[tokio::test]
    async fn ids_indexed_before_the_upgrade_are_replays() {
        let dir = tempfile::tempdir().unwrap();
        let exp = crate::helpers::NOW + 360;
        let (store, url) = open(dir.path()).await;
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO used_jtis (client_id, jti, expires_at) VALUES ('acme', 'old', $1)",
        )
        .bind(exp)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        assert_eq!(
            store
                .consume_jtis(&[jti("acme", "old", exp), jti("acme", "new", exp)])
                .await
                .unwrap(),
            [false, true]
        );
        assert_eq!(crate::helpers::jti_rows(&url).await, (1, 1));
        store.close().await;
    }
}

// ---------------------------------------------------------------------------
// The audit log
// ---------------------------------------------------------------------------

fn entry(i: i64, event: &str, email: Option<&str>, outcome: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        at: T + i,
        event: event.into(),
        request_id: Some(format!("req-{i}")),
        client_id: Some("acme-host".into()),
        email: email.map(str::to_owned),
        workbook: Some("sales".into()),
        outcome: outcome.into(),
        code: (outcome == "denied").then(|| "access_denied".to_owned()),
        remote_addr: Some("127.0.0.1".into()),
        note: Some(format!("note {i}")),
    }
}

async fn audit(store: &Store) {
    let entries = vec![
        entry(1, "handshake", Some("ana@acme.example"), "allowed"),
        entry(2, "user_created", Some("ana@acme.example"), "allowed"),
        entry(3, "handshake", Some("bob@acme.example"), "denied"),
        entry(4, "admin_change", None, "allowed"),
        entry(5, "handshake", Some("ana@acme.example"), "denied"),
    ];
    store.insert_audit(&entries).await.unwrap();
    let filter =
        |email: Option<&str>, event: Option<&str>, outcome: Option<&str>, limit| AuditFilter {
            email: email.map(str::to_owned),
            event: event.map(str::to_owned),
            outcome: outcome.map(str::to_owned),
            limit,
        };
    let notes = |list: Vec<AuditRecord>| -> Vec<i64> { list.iter().map(|e| e.at - T).collect() };

    let all = store
        .list_audit(&filter(None, None, None, 100))
        .await
        .unwrap();
    assert_eq!(notes(all.clone()), [5, 4, 3, 2, 1], "newest first");
    for got in &all {
        let want = &entries[usize::try_from(got.at - T - 1).unwrap()];
        assert_eq!(
            AuditRecord {
                id: 0,
                ..got.clone()
            },
            *want
        );
    }
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));

    let list = |f: AuditFilter| async move { notes(store.list_audit(&f).await.unwrap()) };
    assert_eq!(
        list(filter(Some("ana@acme.example"), None, None, 100)).await,
        [5, 2, 1]
    );
    assert_eq!(
        list(filter(None, Some("handshake"), None, 100)).await,
        [5, 3, 1]
    );
    assert_eq!(list(filter(None, None, Some("denied"), 100)).await, [5, 3]);
    assert_eq!(
        list(filter(
            Some("ana@acme.example"),
            Some("handshake"),
            Some("allowed"),
            100
        ))
        .await,
        [1]
    );
    assert_eq!(list(filter(None, None, None, 2)).await, [5, 4]);

    // Prune: entries older than the cut go.
    assert_eq!(store.prune_audit(T + 3).await.unwrap(), 2);
    assert_eq!(list(filter(None, None, None, 100)).await, [5, 4, 3]);

    // Many at once (more than one statement).
    let many: Vec<AuditRecord> = (10..160)
        .map(|i| entry(i, "handshake", Some("many@acme.example"), "allowed"))
        .collect();
    store.insert_audit(&many).await.unwrap();
    let got = list(filter(Some("many@acme.example"), None, None, 1000)).await;
    assert_eq!(got.len(), 150);
    assert_eq!(got[0], 159);
    assert_eq!(got[149], 10);
}

/// Audit entries keep every character and every absent field as written
/// (SQLite's batch carries them as JSON), and their order.
async fn audit_text_round_trips(store: &Store) {
    let odd = "quote \" backslash \\ slash / newline \n tab \t \u{1} é 漢字 🙂 $1 ? ' --";
    let mut full = entry(1, "handshake", Some("ana@acme.example"), "denied");
    full.note = Some(odd.to_owned());
    full.workbook = Some(odd.to_owned());
    let bare = AuditRecord {
        at: T + 2,
        event: "admin_change".into(),
        outcome: "allowed".into(),
        ..AuditRecord::default()
    };
    let many: Vec<AuditRecord> = (3..40)
        .map(|i| entry(i, "handshake", Some("bob@acme.example"), "allowed"))
        .collect();
    let written: Vec<AuditRecord> = [full, bare].into_iter().chain(many).collect();
    store.insert_audit(&written).await.unwrap();
    let got = store
        .list_audit(&AuditFilter {
            email: None,
            event: None,
            outcome: None,
            limit: 100,
        })
        .await
        .unwrap();
    let ids: Vec<i64> = got.iter().map(|e| e.id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "ids follow the order written"
    );
    let read: Vec<AuditRecord> = got
        .into_iter()
        .rev()
        .map(|e| AuditRecord { id: 0, ..e })
        .collect();
    assert_eq!(read, written);
}

/// A search by email, across the limit and the event and outcome filters;
/// pruned entries are no longer found and later ones are.
async fn audit_by_email(store: &Store) {
    store
        .insert_audit(&[
            entry(1, "handshake", Some("ana@acme.example"), "allowed"),
            entry(2, "handshake", Some("bob@acme.example"), "allowed"),
            entry(3, "user_created", Some("ana@acme.example"), "allowed"),
        ])
        .await
        .unwrap();
    store
        .insert_audit(&[
            entry(4, "handshake", Some("ana@acme.example"), "denied"),
            entry(5, "admin_change", None, "allowed"),
            entry(6, "handshake", Some("bob@acme.example"), "allowed"),
            entry(7, "handshake", Some("ana@acme.example"), "allowed"),
        ])
        .await
        .unwrap();
    let find = async |email: &str, event: Option<&str>, outcome: Option<&str>, limit| {
        let got = store
            .list_audit(&AuditFilter {
                email: Some(email.to_owned()),
                event: event.map(str::to_owned),
                outcome: outcome.map(str::to_owned),
                limit,
            })
            .await
            .unwrap();
        got.iter().map(|e| e.at - T).collect::<Vec<i64>>()
    };
    assert_eq!(
        find("ana@acme.example", None, None, 100).await,
        [7, 4, 3, 1]
    );
    assert_eq!(find("ana@acme.example", None, None, 3).await, [7, 4, 3]);
    assert_eq!(find("ana@acme.example", None, None, 1).await, [7]);
    assert_eq!(
        find("ana@acme.example", Some("handshake"), None, 100).await,
        [7, 4, 1]
    );
    assert_eq!(
        find("ana@acme.example", None, Some("denied"), 100).await,
        [4]
    );
    assert_eq!(
        find("ana@acme.example", Some("user_created"), None, 100).await,
        [3]
    );
    assert_eq!(find("bob@acme.example", None, None, 100).await, [6, 2]);
    assert_eq!(find("nobody@acme.example", None, None, 100).await, [0; 0]);

    assert_eq!(store.prune_audit(T + 4).await.unwrap(), 3);
    store
        .insert_audit(&[entry(8, "handshake", Some("ana@acme.example"), "allowed")])
        .await
        .unwrap();
    assert_eq!(find("ana@acme.example", None, None, 100).await, [8, 7, 4]);
    assert_eq!(find("bob@acme.example", None, None, 100).await, [6]);
}

/// SQLite's email index of the audit log: one row per email and chunk.
mod audit_email_chunks {
    use embedgate::store::{AuditFilter, EMAIL_CHUNK_BITS};
    use sqlx::Connection;

    const CHUNK: i64 = 1 << EMAIL_CHUNK_BITS;

    async fn connect(dir: &std::path::Path) -> sqlx::SqliteConnection {
        let url = format!("sqlite://{}", dir.join("store.db").display());
        sqlx::SqliteConnection::connect(&url).await.unwrap()
    }

    /// SQLite's email index: (email, chunk) in order.
    async fn chunks(dir: &std::path::Path) -> Vec<(String, i64)> {
        let mut conn = connect(dir).await;
        let rows =
            sqlx::query_as("SELECT email, chunk FROM audit_email_chunks ORDER BY email, chunk")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        conn.close().await.unwrap();
        rows
    }

    fn by(email: &str, event: Option<&str>, limit: i64) -> AuditFilter {
        AuditFilter {
            email: Some(email.to_owned()),
            event: event.map(str::to_owned),
            outcome: None,
            limit,
        }
    }

    /// Entries far apart in ids: a search reads the email's chunks newest
    /// first and stops at the limit, skips chunks without the email, finds
    /// entries on both sides of a chunk's edge, and pruning drops the
    /// chunks older than the oldest entry left.
    #[tokio::test]
    async fn sqlite_searches_chunk_by_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::sqlite_store(dir.path()).await;
        let mut conn = connect(dir.path()).await;
        let ana = "ana@acme.example";
        let bob = "bob@acme.example";
        // (id, at, email, event): ids 1 and CHUNK - 1 are in chunk 0,
        // CHUNK in chunk 1, 3 * CHUNK + 5 in chunk 3, 5 * CHUNK in chunk 5.
        let rows = [
            (1, 1, Some(ana), "handshake"),
            (CHUNK - 1, 2, Some(ana), "user_created"),
            (CHUNK, 3, Some(ana), "handshake"),
            (CHUNK + 1, 4, None, "admin_change"),
            (3 * CHUNK + 5, 5, Some(bob), "handshake"),
            (5 * CHUNK, 6, Some(ana), "handshake"),
        ];
        for (id, at, email, event) in rows {
            sqlx::query(
                "INSERT INTO audit (id, at, event, email, outcome) VALUES ($1, $2, $3, $4, 'allowed')",
            )
            .bind(id)
            .bind(super::T + at)
            .bind(event)
            .bind(email)
            .execute(&mut conn)
            .await
            .unwrap();
        }
        conn.close().await.unwrap();
        let owned = |v: &[(&str, i64)]| -> Vec<(String, i64)> {
            v.iter().map(|(e, c)| ((*e).to_owned(), *c)).collect()
        };
        assert_eq!(
            chunks(dir.path()).await,
            owned(&[(ana, 0), (ana, 1), (ana, 5), (bob, 3)]),
            "one row per email and chunk, written as entries are inserted"
        );
        let ats = async |f: AuditFilter| -> Vec<i64> {
            let got = store.list_audit(&f).await.unwrap();
            got.iter().map(|e| e.at - super::T).collect()
        };
        assert_eq!(ats(by(ana, None, 100)).await, [6, 3, 2, 1]);
        assert_eq!(ats(by(ana, None, 2)).await, [6, 3]);
        assert_eq!(ats(by(ana, None, 3)).await, [6, 3, 2]);
        assert_eq!(ats(by(ana, Some("handshake"), 100)).await, [6, 3, 1]);
        assert_eq!(ats(by(ana, Some("user_created"), 100)).await, [2]);
        assert_eq!(ats(by(bob, None, 100)).await, [5]);

        // Entries 1-3 go: chunk 0 (older than the oldest entry left, in
        // chunk 1) goes with them; chunk 1 stays and holds no entry of ana.
        assert_eq!(store.prune_audit(super::T + 4).await.unwrap(), 3);
        assert_eq!(
            chunks(dir.path()).await,
            owned(&[(ana, 1), (ana, 5), (bob, 3)])
        );
        assert_eq!(ats(by(ana, None, 100)).await, [6]);
        assert_eq!(store.prune_audit(super::T + 100).await.unwrap(), 3);
        assert_eq!(chunks(dir.path()).await, owned(&[]), "nothing left");
        assert_eq!(ats(by(ana, None, 100)).await, [0; 0]);
        store.close().await;
    }

    /// A database created before the email index was kept apart, and one
    /// that had 0002's index with entries on both sides of its mark: their
    /// entries are found by email after the upgrade.
    #[tokio::test]
    async fn sqlite_upgrade_indexes_existing_entries() {
        for applied in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("store.db").display()
            );
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            let mut first = sqlx::migrate!("./migrations/sqlite");
            first.migrations = first.migrations[..applied].to_vec().into();
            first.run(&mut conn).await.unwrap();
            for (at, email) in [
                (1, Some("ana@acme.example")),
                (2, None),
                (3, Some("ana@acme.example")),
            ] {
                sqlx::query(
                    "INSERT INTO audit (at, event, email, outcome) VALUES ($1, 'handshake', $2, 'allowed')",
                )
                .bind(super::T + at)
                .bind(email)
                .execute(&mut conn)
                .await
                .unwrap();
            }
            if applied == 3 {
                // As 0002's writer left it: the first entry indexed and
                // the mark after it, the later ones not yet.
                sqlx::query(
                    "INSERT INTO audit_emails (email, id) SELECT email, id FROM audit \
                     WHERE id = 1; UPDATE audit_emails_mark SET id = 1",
                )
                .execute(&mut conn)
                .await
                .unwrap();
            }
            conn.close().await.unwrap();

            let store = super::sqlite_store(dir.path()).await;
            assert_eq!(
                chunks(dir.path()).await,
                [("ana@acme.example".to_owned(), 0)],
                "after {applied} migration(s)"
            );
            let got = store
                .list_audit(&by("ana@acme.example", None, 10))
                .await
                .unwrap();
            assert_eq!(
                got.iter().map(|e| e.at - super::T).collect::<Vec<_>>(),
                [3, 1]
            );
            store.close().await;
        }
    }
}

// ---------------------------------------------------------------------------
// The batch writers' one statement
// ---------------------------------------------------------------------------

/// A trigger that refuses audit entries whose note is `refuse`, so that a
/// batch can fail part-way (after its ledger insert) on both backends.
const REFUSE_SQLITE: &str = "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit \
     WHEN NEW.note = 'refuse' BEGIN SELECT RAISE(ABORT, 'refused'); END";
const REFUSE_POSTGRES: [&str; 2] = [
    "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN IF NEW.note = 'refuse' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
    "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit \
     FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
];

/// `write_batch`: ids, audit entries and sign-ins in one statement; all of
/// it or none of it.
async fn write_batch(store: &Store, refuse: impl AsyncFnOnce()) {
    let exp = crate::helpers::NOW + 360;
    let a = team(store, "a").await;
    let ana = store
        .insert_user(&user_fields("ana@acme.example", &[a]), T)
        .await
        .unwrap()
        .unwrap();
    let bob = store
        .insert_user(&user_fields("bob@acme.example", &[a]), T)
        .await
        .unwrap()
        .unwrap();
    let audit_count = async || {
        store
            .list_audit(&AuditFilter {
                email: None,
                event: None,
                outcome: None,
                limit: 10_000,
            })
            .await
            .unwrap()
            .len()
    };
    let last_seen = async |id| store.get_user(id).await.unwrap().unwrap().last_seen_at;

    // Everything at once: a fresh id, a replay within the batch, entries
    // and sign-ins.
    let fresh = store
        .write_batch(
            &[jti("acme", "b1", exp), jti("acme", "b1", exp)],
            &[entry(1, "handshake", Some("ana@acme.example"), "allowed")],
            &[ana, bob],
            T + 5,
        )
        .await
        .unwrap();
    assert_eq!(fresh, [true, false]);
    assert_eq!(audit_count().await, 1);
    assert_eq!(last_seen(ana).await, Some(T + 5));
    assert_eq!(last_seen(bob).await, Some(T + 5));

    // Only entries, or only sign-ins: no ids to answer for.
    assert!(
        store
            .write_batch(&[], &[entry(2, "admin_change", None, "allowed")], &[], 0)
            .await
            .unwrap()
            .is_empty()
    );
    store.write_batch(&[], &[], &[bob], T + 7).await.unwrap();
    assert_eq!(audit_count().await, 2);
    assert_eq!(
        (last_seen(ana).await, last_seen(bob).await),
        (Some(T + 5), Some(T + 7))
    );

    // A batch that fails part-way changes nothing: its id stays unused,
    // no entry is written, no sign-in recorded.
    refuse().await;
    let mut refused = entry(3, "handshake", Some("bob@acme.example"), "allowed");
    refused.note = Some("refuse".into());
    let err = store
        .write_batch(
            &[jti("acme", "b2", exp)],
            &[entry(4, "handshake", None, "allowed"), refused],
            &[ana],
            T + 9,
        )
        .await;
    assert!(err.is_err(), "{err:?}");
    assert!(!store.jti_used("acme", "b2").await.unwrap());
    // What earlier batches consumed stays consumed (SQLite reads its
    // remembered ids back after a failed batch).
    assert!(store.jti_used("acme", "b1").await.unwrap());
    assert_eq!(
        store.consume_jtis(&[jti("acme", "b1", exp)]).await.unwrap(),
        [false]
    );
    assert_eq!(audit_count().await, 2);
    assert_eq!(last_seen(ana).await, Some(T + 5));

    // The connection is usable afterwards (no transaction left open), and
    // the id can still be consumed.
    assert_eq!(
        store.consume_jtis(&[jti("acme", "b2", exp)]).await.unwrap(),
        [true]
    );
    store
        .write_batch(
            &[],
            &[entry(5, "handshake", None, "allowed")],
            &[ana],
            T + 11,
        )
        .await
        .unwrap();
    assert_eq!(audit_count().await, 3);
    assert_eq!(last_seen(ana).await, Some(T + 11));

    // Batches as large as the limits allow fit in one statement.
    let ids: Vec<JtiUse> = (0..embedgate::store::MAX_JTI_BATCH)
        .map(|i| jti("acme", &format!("max-{i}"), exp))
        .collect();
    let entries: Vec<AuditRecord> = (0..embedgate::store::MAX_AUDIT_BATCH)
        .map(|i| {
            entry(
                100 + i as i64,
                "handshake",
                Some("max@acme.example"),
                "allowed",
            )
        })
        .collect();
    let mut seen: Vec<i64> =
        (1_000_000..1_000_000 + embedgate::store::MAX_SEEN_BATCH as i64 - 1).collect();
    seen.push(bob);
    let fresh = store
        .write_batch(&ids, &entries, &seen, T + 13)
        .await
        .unwrap();
    assert!(fresh.iter().all(|f| *f) && fresh.len() == ids.len());
    assert_eq!(audit_count().await, 3 + embedgate::store::MAX_AUDIT_BATCH);
    assert_eq!(last_seen(bob).await, Some(T + 13));
}

mod write_batch {
    #[tokio::test]
    async fn sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::sqlite_store(dir.path()).await;
        let url = format!("sqlite://{}", dir.path().join("store.db").display());
        super::write_batch(&store, async || {
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query(super::REFUSE_SQLITE)
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        })
        .await;
        store.close().await;
    }

    #[tokio::test]
    async fn postgres() {
        let Some(db) =
            crate::cluster::pg::TestDb::create("store_suite::write_batch::postgres").await
        else {
            return;
        };
        let store = super::postgres_store(&db).await;
        super::write_batch(&store, async || {
            for sql in super::REFUSE_POSTGRES {
                sqlx::query(sql).execute(&db.pool).await.unwrap();
            }
        })
        .await;
        store.close().await;
    }
}
