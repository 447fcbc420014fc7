//! Micro-benchmarks of the steps every embed request takes (criterion):
//!
//! - `token_verify/*`: SPEC §3 verification of a signed embed token
//!   (shape, client, algorithm, signature, claims), HS256 and ES256;
//! - `decide/*`: the access decision [`PolicyState::decide`] with
//!   [`NoTrace`], as a handshake and every session request make it;
//! - `session/*`: checking a session cookie ([`SessionCodec::validate`]):
//!   its first request (`validate_first`: MAC, decoding) and the later ones
//!   (`validate`: the codec remembers the verified value); and sealing a new
//!   one (what a handshake's `Set-Cookie` costs);
//! - `render/*`: rendering the demo's sales template workbook with the
//!   repository's `templates/` and `data/`: with minijinja
//!   ([`Content::render_workbook_uncached`], a first view) and from the
//!   render cache ([`Content::render_workbook`], a repeated view).
//!
//!     CARGO_TARGET_DIR=/work/target-bench cargo bench --bench hot_paths
//!
//! The policy is small (a few teams, nested workspaces, a few grants): the
//! scale of a big tenant is `examples/policy_scale.rs`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use embedgate::content::{Content, Page, TemplateUser};
use embedgate::domain::{Email, Level, PermissionSet, UserKind, UserStatus, WorkbookSource};
use embedgate::policy::{NoTrace, PolicyState, Reasons, Subject};
use embedgate::session::{COOKIE_NAME, SessionClaims, SessionCodec};
use embedgate::sign::{SignRequest, sign_token};
use embedgate::store::{
    AccountTypeRecord, ClientRecord, ClientStatus, GrantRecord, GrantTarget, TeamRecord,
    UserRecord, WorkbookRecord, WorkspaceRecord,
};
use embedgate::token::{SigningAlgorithm, TimeRules, verify};
use serde::Serialize;

/// `expect` for a benchmark's set-up (the crate denies `expect_used`).
trait Must<T> {
    fn must(self, what: &str) -> T;
}

impl<T, E: std::fmt::Debug> Must<T> for Result<T, E> {
    fn must(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e:?}"))
    }
}

impl<T> Must<T> for Option<T> {
    fn must(self, what: &str) -> T {
        self.unwrap_or_else(|| panic!("{what}: missing"))
    }
}

/// A fixed "now" (Unix seconds) for tokens and sessions.
const NOW: i64 = 1_790_000_000;
const SECRET: &str = "bench-secret-bench-secret-bench-secret-0123";
const HS_CLIENT: &str = "bench-hs";
const ES_CLIENT: &str = "bench-es";

fn client(
    id: &str,
    algorithm: SigningAlgorithm,
    secret: Option<&str>,
    pem: Option<&str>,
) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        name: id.to_owned(),
        algorithm,
        secret: secret.map(str::to_owned),
        previous_secret: None,
        previous_valid_until: None,
        public_key_pem: pem.map(str::to_owned),
        jwks_url: None,
        allowed_origins: vec!["https://host.example".to_owned()],
        allowed_teams: Vec::new(),
        allow_internal_users: false,
        status: ClientStatus::Active,
        created_at: 0,
        updated_at: 0,
    }
}

fn template_source() -> WorkbookSource {
    WorkbookSource::Template {
        template: "sales.html".to_owned(),
        dataset: Some("sales.csv".to_owned()),
        company_field: Some("company".to_owned()),
    }
}

fn user(id: i64, team_ids: Vec<i64>) -> UserRecord {
    UserRecord {
        id,
        email: Email::from_trusted(format!("user{id}@bench.example")),
        kind: UserKind::Embed,
        status: UserStatus::Active,
        first_name: Some("Ana".to_owned()),
        last_name: None,
        account_type: "Explorer".to_owned(),
        attributes: embedgate::domain::Attributes::from([(
            "company".to_owned(),
            "acme".to_owned(),
        )]),
        client_id: Some(HS_CLIENT.to_owned()),
        session_epoch: 0,
        team_ids,
        created_at: 0,
        updated_at: 1,
        last_seen_at: None,
    }
}

/// A small tenant: 20 teams, workspaces three deep, 50 workbooks, grants on
/// workbooks and on workspaces; user 1 reaches `sales` through the
/// outermost workspace.
struct Fixture {
    state: PolicyState,
    es_private_pem: String,
}

fn fixture() -> Fixture {
    let mut state = PolicyState::default();
    state.put_client(
        HS_CLIENT,
        Some(client(
            HS_CLIENT,
            SigningAlgorithm::HS256,
            Some(SECRET),
            None,
        )),
    );
    let es = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).must("EC key");
    let public = es.public_key_pem();
    // Registered as a client registers it: SigningAlgorithm::decoding_key on the PEM.
    SigningAlgorithm::ES256
        .decoding_key(public.as_bytes())
        .must("ES256 PEM");
    state.put_client(
        ES_CLIENT,
        Some(client(
            ES_CLIENT,
            SigningAlgorithm::ES256,
            None,
            Some(&public),
        )),
    );
    for (name, perms) in [
        ("Viewer", &["view"][..]),
        ("Explorer", &["view", "explore", "export"][..]),
        ("Creator", &["view", "explore", "export", "edit"][..]),
    ] {
        state.put_account_type(
            name,
            Some(AccountTypeRecord {
                name: name.to_owned(),
                permissions: PermissionSet::parse(perms.iter().copied()).must("permissions"),
                builtin: true,
            }),
        );
    }
    for id in 1..=20 {
        state.put_team(
            id,
            Some(TeamRecord {
                id,
                name: format!("Team {id}"),
                description: String::new(),
                visibility: "private".to_owned(),
                created_at: 0,
            }),
        );
    }
    for (id, parent) in [(1, None), (2, Some(1)), (3, Some(2))] {
        state.put_workspace(
            id,
            Some(WorkspaceRecord {
                id,
                name: format!("ws{id}"),
                parent,
            }),
            Vec::new(),
        );
    }
    for n in 0..50 {
        let id = if n == 0 {
            "sales".to_owned()
        } else {
            format!("wb{n}")
        };
        state.put_workbook(
            &id.clone(),
            Some(WorkbookRecord {
                id,
                name: "Sales".to_owned(),
                workspace: Some(3),
                source: template_source(),
                tags: BTreeMap::new(),
                created_at: 0,
                updated_at: 0,
            }),
            Vec::new(),
        );
    }
    let mut grant_id = 0;
    let mut grant = |state: &mut PolicyState, team, target: GrantTarget, level| {
        grant_id += 1;
        state.put_grant(
            grant_id,
            Some(GrantRecord {
                id: grant_id,
                team_id: team,
                target,
                level,
                tag: None,
                created_at: 0,
            }),
        );
    };
    // Other teams' grants on the workbook and its workspaces: the decision
    // has to look past them.
    for team in 5..=12 {
        grant(
            &mut state,
            team,
            GrantTarget::Workbook("sales".to_owned()),
            Level::View,
        );
        grant(&mut state, team, GrantTarget::Workspace(3), Level::View);
        grant(&mut state, team, GrantTarget::Workspace(2), Level::View);
    }
    grant(&mut state, 2, GrantTarget::Workspace(1), Level::Explore);
    state.put_user(1, Some(user(1, vec![1, 2, 3])));
    state.put_user(2, Some(user(2, vec![4])));
    Fixture {
        state,
        es_private_pem: es.serialize_pem(),
    }
}

fn rules() -> TimeRules {
    TimeRules {
        max_lifetime_secs: 2_592_000,
        clock_skew_secs: 60,
        audience: None,
    }
}

fn hs256_token() -> String {
    sign_token(&SignRequest {
        client_id: HS_CLIENT.to_owned(),
        secret: SECRET.to_owned(),
        algorithm: SigningAlgorithm::HS256,
        email: "user1@bench.example".to_owned(),
        workbook: "sales".to_owned(),
        teams: Some(vec!["Team 1".to_owned(), "Team 2".to_owned()]),
        account_type: Some("Explorer".to_owned()),
        attributes: embedgate::domain::Attributes::from([(
            "company".to_owned(),
            "acme".to_owned(),
        )]),
        first_name: None,
        last_name: None,
        ttl_secs: 300,
        tag: None,
        base_url: String::new(),
        now: NOW,
    })
    .must("HS256 token")
}

#[derive(Serialize)]
struct EsClaims {
    sub: &'static str,
    jti: &'static str,
    iat: i64,
    exp: i64,
    teams: [&'static str; 2],
    account_type: &'static str,
    user_attributes: BTreeMap<&'static str, &'static str>,
}

fn es256_token(private_pem: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(ES_CLIENT.to_owned());
    header.typ = Some("JWT".to_owned());
    let claims = EsClaims {
        sub: "user1@bench.example",
        jti: "es-bench-1",
        iat: NOW,
        exp: NOW + 300,
        teams: ["Team 1", "Team 2"],
        account_type: "Explorer",
        user_attributes: BTreeMap::from([("company", "acme")]),
    };
    let key = jsonwebtoken::EncodingKey::from_ec_pem(private_pem.as_bytes()).must("EC PEM");
    jsonwebtoken::encode(&header, &claims, &key).must("ES256 token")
}

fn token_verification(c: &mut Criterion) {
    let f = fixture();
    let rules = rules();
    let hs = hs256_token();
    let es = es256_token(&f.es_private_pem);
    verify(&hs, &f.state, &rules, NOW).must("HS256 verifies");
    verify(&es, &f.state, &rules, NOW).must("ES256 verifies");
    let mut g = c.benchmark_group("token_verify");
    g.bench_function("hs256", |b| {
        b.iter(|| verify(black_box(&hs), &f.state, &rules, NOW))
    });
    g.bench_function("es256", |b| {
        b.iter(|| verify(black_box(&es), &f.state, &rules, NOW))
    });
    g.finish();
}

fn access_decision(c: &mut Criterion) {
    let f = fixture();
    let allowed = f.state.user(1).must("user 1");
    let denied = f.state.user(2).must("user 2");
    assert!(
        f.state
            .decide(Subject::from(&**allowed), "sales", None, &mut NoTrace)
            .is_allowed()
    );
    assert!(
        !f.state
            .decide(Subject::from(&**denied), "sales", None, &mut NoTrace)
            .is_allowed()
    );
    let mut g = c.benchmark_group("decide");
    g.bench_function("allowed_via_workspace", |b| {
        b.iter(|| {
            f.state.decide(
                Subject::from(&**allowed),
                black_box("sales"),
                None,
                &mut NoTrace,
            )
        })
    });
    g.bench_function("denied", |b| {
        b.iter(|| {
            f.state.decide(
                Subject::from(&**denied),
                black_box("sales"),
                None,
                &mut NoTrace,
            )
        })
    });
    g.bench_function("allowed_with_reasons", |b| {
        b.iter(|| {
            let mut reasons = Reasons::default();
            f.state.decide(
                Subject::from(&**allowed),
                black_box("sales"),
                None,
                &mut reasons,
            )
        })
    });
    g.finish();
}

fn session_claims() -> SessionClaims {
    SessionClaims {
        sid: "Z3n1cUq4mT8bXw0vHk2pLa".to_owned(),
        uid: 1,
        em: "user1@bench.example".to_owned(),
        uv: 1,
        cid: HS_CLIENT.to_owned(),
        wb: "sales".to_owned(),
        ep: 0,
        exp: NOW + 3600,
    }
}

fn session_validation(c: &mut Criterion) {
    let f = fixture();
    let key = cookie::Key::generate();
    let codec = SessionCodec::new(&key);
    let value = codec.seal(&session_claims());
    // As browsers send it: another cookie of the host page first.
    let header = format!("theme=dark; {COOKIE_NAME}={value}");
    assert!(
        codec
            .validate(&f.state, std::iter::once(header.as_str()), "sales", NOW)
            .is_ok()
    );
    let mut g = c.benchmark_group("session");
    g.bench_function("validate", |b| {
        b.iter(|| {
            codec
                .validate(
                    &f.state,
                    std::iter::once(black_box(header.as_str())),
                    "sales",
                    NOW,
                )
                .is_ok()
        })
    });
    g.bench_function("validate_first", |b| {
        b.iter_batched(
            || SessionCodec::new(&key),
            |fresh| {
                let ok = fresh
                    .validate(
                        &f.state,
                        std::iter::once(black_box(header.as_str())),
                        "sales",
                        NOW,
                    )
                    .is_ok();
                (fresh, ok)
            },
            BatchSize::SmallInput,
        )
    });
    let claims = session_claims();
    g.bench_function("set_cookie", |b| {
        b.iter(|| codec.set_cookie(black_box(&claims), 3600))
    });
    g.finish();
}

fn template_rendering(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let content = Content::new(&root.join("templates"), &root.join("data"));
    let f = fixture();
    let user = Arc::clone(f.state.user(1).must("user 1"));
    let workbook = Arc::clone(f.state.workbook("sales").must("sales"));
    let source = template_source();
    let decision = f
        .state
        .decide(Subject::from(&*user), "sales", None, &mut NoTrace);
    let query: Vec<(String, String)> = vec![("theme".to_owned(), "dark".to_owned())];
    let render = |company: Option<&str>, cached: bool| {
        let page = Page {
            user: TemplateUser::new(&user, f.state.team_names(&user.team_ids)),
            workbook: &workbook,
            tag: None,
            permissions: decision.permissions,
            query: &query,
            page: None,
            company,
        };
        if cached {
            content.render_workbook(&source, &page).must("rendered")
        } else {
            content
                .render_workbook_uncached(&source, &page)
                .must("rendered")
                .into()
        }
    };
    let html = render(None, false);
    println!("render/sales: {} bytes of HTML (all companies)", html.len());
    let mut g = c.benchmark_group("render");
    g.bench_function("sales_all_companies", |b| {
        b.iter(|| render(black_box(None), false))
    });
    g.bench_function("sales_one_company", |b| {
        b.iter(|| render(black_box(Some("acme")), false))
    });
    g.bench_function("sales_one_company_cached", |b| {
        b.iter(|| render(black_box(Some("acme")), true))
    });
    g.finish();
}

criterion_group!(
    benches,
    token_verification,
    access_decision,
    session_validation,
    template_rendering
);
criterion_main!(benches);
