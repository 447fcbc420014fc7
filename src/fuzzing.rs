//! The bodies of the fuzz targets in `fuzz/fuzz_targets/`, kept in the
//! library so that the fuzzers (`cargo +nightly fuzz run token`) and the
//! regression test over the committed corpus (`tests/api/fuzz_corpus.rs`,
//! plain `cargo test`) run exactly the same code.
//!
//! Both functions take arbitrary bytes and must never panic; the `assert!`s
//! in them are invariants of SPEC §3 and §4, and one firing is a bug.
//!
//! * [`token`]: verification (§3) and the token inspector, on the input as a
//!   token and on the input signed with a known secret, so the claim checks
//!   see fuzzed JSON behind a valid signature.
//! * [`claims_to_user`](crate::fuzzing::claims_to_user): the claim checks, then user planning (§4) and the
//!   access decision (§5) against a small fixed policy.
//!
//! The first input byte chooses a scenario (flags documented on each
//! function); the rest is the token or JSON. `fuzz/README.md` says how to
//! run them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};

use crate::domain::{
    Attributes, ClientId, Email, Level, Permission, PermissionSet, UserKind, UserStatus,
    WorkbookSource,
};
use crate::error::ErrorCode;
use crate::identity::{self, Plan};
use crate::policy::{NoTrace, PolicyState, Reasons, Settings};
use crate::store::{
    AccountTypeRecord, ClientRecord, ClientStatus, GrantRecord, GrantTarget, TeamRecord,
    UserRecord, WorkbookRecord, WorkspaceRecord,
};
use crate::token::claims::MAX_TEAMS;
use crate::token::inspect::inspect;
use crate::token::{
    ClientKeys, KeyLookup, RawToken, SigningAlgorithm, TimeRules, VerificationKey, verify,
};

/// The frozen clock of the fuzz targets: 2027-01-15T08:00:00Z, as in the
/// tests and `tests/fixtures/`.
pub const NOW: i64 = 1_800_000_000;
pub const MAX_LIFETIME_SECS: i64 = 3600;
pub const CLOCK_SKEW_SECS: i64 = 60;
pub const AUDIENCE: &str = "embedgate";

/// The HS256 client: kid, current secret, a rotated-out secret still in its
/// grace period, and one whose grace period ended at [`NOW`].
pub const HS256_KID: &str = "acme-host";
pub const HS256_SECRET: &[u8] = b"acme-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
pub const HS256_PREVIOUS_SECRET: &[u8] = b"acme-previous-secret-0123456789-abcdefghijklmn";
pub const HS256_EXPIRED_SECRET: &[u8] = b"acme-expired-secret-0123456789-abcdefghijklmno";
pub const HS384_KID: &str = "hs384-host";
pub const HS384_SECRET: &[u8] = b"hs384-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789";
pub const ES256_KID: &str = "es256-host";
/// The public half of `fuzz/seeds/es256_private.pem` (a throw-away P-256
/// test key that signs the ES256 seed tokens).
pub const ES256_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcNKTtdd9z6h5Rl7wUY6QajHRj/BU
9WdTLjrUn+YXtqD61GUbdThfnNz7d76JTA+82mej9aEdLQD3MTn3XTabbA==
-----END PUBLIC KEY-----
";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rules(audience: bool) -> TimeRules {
    TimeRules {
        max_lifetime_secs: MAX_LIFETIME_SECS,
        clock_skew_secs: CLOCK_SKEW_SECS,
        audience: audience.then(|| AUDIENCE.to_owned()),
    }
}

// ---- token ----------------------------------------------------------------

/// The verification keys of the three fixed clients, built once.
struct Keyring {
    hs256: Arc<ClientKeys>,
    hs384: Arc<ClientKeys>,
    es256: Option<Arc<ClientKeys>>,
}

fn hmac_key(
    alg: SigningAlgorithm,
    secret: &[u8],
    valid_until: Option<i64>,
) -> Vec<VerificationKey> {
    alg.decoding_key(secret)
        .map(|key| VerificationKey { key, valid_until })
        .into_iter()
        .collect()
}

fn keyring() -> &'static Keyring {
    static KEYS: OnceLock<Keyring> = OnceLock::new();
    KEYS.get_or_init(|| {
        let hs = SigningAlgorithm::HS256;
        let mut hs256_keys = hmac_key(hs, HS256_SECRET, None);
        hs256_keys.extend(hmac_key(hs, HS256_PREVIOUS_SECRET, Some(NOW + 100)));
        // `valid_until` is excluded: this one is no longer accepted at NOW.
        hs256_keys.extend(hmac_key(hs, HS256_EXPIRED_SECRET, Some(NOW)));
        let es256 = SigningAlgorithm::ES256
            .decoding_key(ES256_PUBLIC_PEM.as_bytes())
            .ok()
            .map(|key| {
                Arc::new(ClientKeys {
                    client_id: ClientId::from_trusted(ES256_KID.to_owned()),
                    algorithm: SigningAlgorithm::ES256,
                    keys: vec![VerificationKey {
                        key,
                        valid_until: None,
                    }],
                })
            });
        Keyring {
            hs256: Arc::new(ClientKeys {
                client_id: ClientId::from_trusted(HS256_KID.to_owned()),
                algorithm: hs,
                keys: hs256_keys,
            }),
            hs384: Arc::new(ClientKeys {
                client_id: ClientId::from_trusted(HS384_KID.to_owned()),
                algorithm: SigningAlgorithm::HS384,
                keys: hmac_key(SigningAlgorithm::HS384, HS384_SECRET, None),
            }),
            es256,
        }
    })
}

/// The active clients of one run: always the HS256 client, the others when
/// the scenario registers them.
struct FixedKeys {
    clients: HashMap<&'static str, Arc<ClientKeys>>,
}

impl KeyLookup for FixedKeys {
    fn client_keys(&self, kid: &str) -> Option<Arc<ClientKeys>> {
        self.clients.get(kid).cloned()
    }
}

/// Which key the signed modes sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signer {
    Current,
    Previous,
    Expired,
    Hs384,
}

impl Signer {
    fn secret(self) -> &'static [u8] {
        match self {
            Signer::Current => HS256_SECRET,
            Signer::Previous => HS256_PREVIOUS_SECRET,
            Signer::Expired => HS256_EXPIRED_SECRET,
            Signer::Hs384 => HS384_SECRET,
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Signer::Hs384 => Algorithm::HS384,
            _ => Algorithm::HS256,
        }
    }

    fn default_header(self) -> &'static str {
        match self {
            Signer::Hs384 => r#"{"alg":"HS384","kid":"hs384-host","typ":"JWT"}"#,
            _ => r#"{"alg":"HS256","kid":"acme-host","typ":"JWT"}"#,
        }
    }
}

/// Signs `header.payload` (both raw bytes, base64url-encoded here).
fn sign(header: &[u8], payload: &[u8], signer: Signer) -> Option<String> {
    let input = format!("{}.{}", b64(header), b64(payload));
    let key = EncodingKey::from_secret(signer.secret());
    let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &key, signer.algorithm()).ok()?;
    Some(format!("{input}.{signature}"))
}

/// Changes the first character of the signature segment, which changes the
/// first signature byte (an HMAC fails then, whatever the rest).
fn tamper(token: &str) -> String {
    let Some(dot) = token.rfind('.') else {
        return token.to_owned();
    };
    let (head, sig) = token.split_at(dot + 1);
    let mut chars = sig.chars();
    match chars.next() {
        Some('A') => format!("{head}B{}", chars.as_str()),
        Some(_) => format!("{head}A{}", chars.as_str()),
        None => format!("{head}A"),
    }
}

/// Fuzz target `token`. Never panics but for a broken invariant.
///
/// `data[0]` is a set of flags, the rest the input:
///
/// * bits 0–1: `0`/`1` the rest is the token (lossy UTF-8); `2` the rest is a
///   payload, signed under the default header; `3` the rest is
///   `header\npayload`, signed as given.
/// * bit 2: the HS384 client is registered; bit 3: the ES256 client is.
/// * bit 4: an audience is configured.
/// * bits 5–6: the signing key: the HS256 client's current secret, its
///   previous secret (in its grace period), its expired secret, or the HS384
///   client's secret (with the HS384 default header).
/// * bit 7: the signature is tampered with after signing.
pub fn token(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let ring = keyring();
    let mut clients = HashMap::new();
    clients.insert(HS256_KID, Arc::clone(&ring.hs256));
    if flags & 0b100 != 0 {
        clients.insert(HS384_KID, Arc::clone(&ring.hs384));
    }
    if flags & 0b1000 != 0
        && let Some(es) = &ring.es256
    {
        clients.insert(ES256_KID, Arc::clone(es));
    }
    let keys = FixedKeys { clients };
    let rules = rules(flags & 0b1_0000 != 0);
    let signer = match (flags >> 5) & 0b11 {
        0 => Signer::Current,
        1 => Signer::Previous,
        2 => Signer::Expired,
        _ => Signer::Hs384,
    };
    let tampered = flags & 0b1000_0000 != 0;

    match flags & 0b11 {
        0 | 1 => {
            let text = String::from_utf8_lossy(rest);
            check_token(&text, &keys, &rules, None);
        }
        mode => {
            let (header, payload) = if mode == 2 {
                (signer.default_header().as_bytes(), rest)
            } else {
                match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => (&rest[..i], &rest[i + 1..]),
                    None => (signer.default_header().as_bytes(), rest),
                }
            };
            let Some(mut signed) = sign(header, payload, signer) else {
                return;
            };
            if tampered {
                signed = tamper(&signed);
            }
            let expect = Signed {
                default_header: header == signer.default_header().as_bytes(),
                genuine: !tampered && signer != Signer::Expired,
                hs384_registered: keys.clients.contains_key(HS384_KID),
                signer,
            };
            check_token(&signed, &keys, &rules, Some(expect));
            // The same bytes unsigned, as a forger would send them.
            let unsigned = format!("{}.{}.", b64(header), b64(payload));
            check_token(&unsigned, &keys, &rules, None);
        }
    }
}

/// What is known about a token the target signed itself.
#[derive(Debug, Clone, Copy)]
struct Signed {
    default_header: bool,
    genuine: bool,
    hs384_registered: bool,
    signer: Signer,
}

fn check_token(token: &str, keys: &FixedKeys, rules: &TimeRules, signed: Option<Signed>) {
    let verdict = verify(token, keys, rules, NOW);
    let inspection = inspect(token, keys, rules, NOW);
    // The inspector's report is served as JSON by the admin API.
    let _ = serde_json::to_string(&inspection.checks);

    // Messages never show a secret the token did not itself contain (they
    // may quote the token's own kid, alg, claim names...), nor the signature
    // of a token the target signed (in raw mode a fuzzed kid could contain
    // its own "signature").
    let own_text: String = token
        .split('.')
        .take(2)
        .filter_map(|segment| URL_SAFE_NO_PAD.decode(segment).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect();
    let signature = token.rsplit('.').next().filter(|s| s.len() >= 43);
    let messages = verdict
        .as_ref()
        .err()
        .map(|e| e.message.as_str())
        .into_iter()
        .chain(inspection.checks.iter().map(|c| c.detail.as_str()));
    for message in messages {
        for secret in [
            HS256_SECRET,
            HS256_PREVIOUS_SECRET,
            HS256_EXPIRED_SECRET,
            HS384_SECRET,
        ] {
            let secret = String::from_utf8_lossy(secret);
            // JSON escapes (`\u0061`) can spell a secret the raw text lacks.
            let quoted = own_text.contains(&*secret) || own_text.contains("\\u");
            assert!(
                quoted || !message.contains(&*secret),
                "a message shows a secret: {message}"
            );
        }
        if signed.is_some()
            && let Some(sig) = signature
        {
            assert!(!message.contains(sig), "a message shows the signature");
        }
    }

    match &verdict {
        Ok(v) => {
            let c = &v.claims;
            let email = c.email.as_str();
            assert!(
                Email::parse(email).is_ok_and(|e| e.as_str() == email),
                "a verified email does not parse to itself: {email:?}"
            );
            assert_eq!(email, email.to_ascii_lowercase(), "email not lower-case");
            assert!(c.exp >= c.iat, "exp {} < iat {}", c.exp, c.iat);
            assert!(
                i128::from(c.exp) - i128::from(c.iat) <= i128::from(rules.max_lifetime_secs),
                "lifetime too long: iat {} exp {}",
                c.iat,
                c.exp
            );
            assert!(
                i128::from(NOW) <= i128::from(c.exp) + i128::from(rules.clock_skew_secs),
                "expired token accepted: exp {}",
                c.exp
            );
            assert!(
                i128::from(c.iat) <= i128::from(NOW) + i128::from(rules.clock_skew_secs),
                "future iat accepted: {}",
                c.iat
            );
            if let Some(nbf) = c.nbf {
                assert!(
                    i128::from(nbf) <= i128::from(NOW) + i128::from(rules.clock_skew_secs),
                    "future nbf accepted: {nbf}"
                );
            }
            assert!(c.teams.as_ref().is_none_or(|t| t.len() <= MAX_TEAMS));
            assert!(!c.jti.is_empty() && c.jti.chars().count() <= 255);
            assert!(c.session_length.is_none_or(|s| s > 0));
            assert!(
                c.user_attributes
                    .as_ref()
                    .is_none_or(|a| a.len() <= crate::domain::MAX_ATTRIBUTES)
            );
            // The client is the one the header names, with its own algorithm.
            let raw = RawToken::parse(token);
            assert!(raw.is_ok(), "a verified token does not parse");
            if let Ok(raw) = raw {
                assert_eq!(raw.header.kid, v.client_id.as_str());
                let client = keys.client_keys(&raw.header.kid);
                assert!(
                    client.is_some_and(|k| k.algorithm.as_str() == raw.header.alg),
                    "verified with an alg that is not the client's: {:?}",
                    raw.header.alg
                );
                if let Some(audience) = &rules.audience {
                    let ok = match raw.payload.get("aud") {
                        Some(Value::String(s)) => s == audience,
                        Some(Value::Array(items)) => {
                            items.iter().any(|i| i.as_str() == Some(audience))
                        }
                        _ => false,
                    };
                    assert!(ok, "audience not enforced");
                }
                if let Some(Value::String(iss)) = raw.payload.get("iss") {
                    assert_eq!(iss, v.client_id.as_str(), "issuer not enforced");
                }
            }
            assert!(
                signed.is_none_or(|s| s.genuine),
                "a token with a tampered or expired-key signature verified"
            );
            assert!(
                inspection.all_ok(),
                "verify accepted what the inspector refused: {:?}",
                inspection.checks
            );
            assert_eq!(inspection.first_code(), None);
            assert_eq!(inspection.client_id.as_deref(), Some(v.client_id.as_str()));
            assert_eq!(inspection.typed.as_ref(), Some(c));
        }
        Err(e) => {
            assert!(
                !inspection.all_ok(),
                "the inspector passed what verify refused with {}",
                e.code
            );
            assert_eq!(
                inspection.first_code(),
                Some(e.code),
                "the inspector's first failure is not verify's ({})",
                e.message
            );
            assert!(!e.message.is_empty());
            if let Some(s) = signed
                && s.genuine
                && s.default_header
                && (s.signer != Signer::Hs384 || s.hs384_registered)
            {
                // A token signed with a live key of the client its header
                // names never fails the client, algorithm or signature steps.
                assert!(
                    !matches!(
                        e.code,
                        ErrorCode::TokenUnknownClient
                            | ErrorCode::TokenAlgMismatch
                            | ErrorCode::TokenBadSignature
                    ),
                    "a genuinely signed token failed with {}: {}",
                    e.code,
                    e.message
                );
            }
            if let Some(s) = signed
                && !s.genuine
            {
                assert!(
                    !matches!(
                        e.code,
                        ErrorCode::TokenMissingClaim
                            | ErrorCode::TokenInvalidClaim
                            | ErrorCode::TokenIssuerMismatch
                            | ErrorCode::TokenAudienceMismatch
                            | ErrorCode::TokenExpired
                            | ErrorCode::TokenNotYetValid
                            | ErrorCode::TokenLifetimeTooLong
                    ),
                    "claims were checked behind a bad signature: {}",
                    e.code
                );
            }
        }
    }
}

// ---- claims_to_user -------------------------------------------------------

pub const ACME_KID: &str = "acme-host";
pub const GLOBEX_KID: &str = "globex-host";
const T_ANALYSTS: i64 = 1;
const T_MANAGERS: i64 = 2;
const T_GLOBEX: i64 = 3;
const T_STAFF: i64 = 4;

fn client_record(id: &str, allowed_teams: &[&str], allow_internal_users: bool) -> ClientRecord {
    ClientRecord {
        client_id: id.to_owned(),
        name: id.to_owned(),
        algorithm: SigningAlgorithm::HS256,
        secret: Some(format!("{id}-secret-0123456789-abcdefghijklmnopqrstuvwxyz")),
        previous_secret: None,
        previous_valid_until: None,
        public_key_pem: None,
        jwks_url: None,
        allowed_origins: vec!["https://app.example".to_owned()],
        allowed_teams: allowed_teams.iter().map(|t| (*t).to_owned()).collect(),
        allow_internal_users,
        status: ClientStatus::Active,
        created_at: 0,
        updated_at: 0,
    }
}

struct UserSpec<'a> {
    id: i64,
    email: &'a str,
    kind: UserKind,
    status: UserStatus,
    account_type: &'a str,
    client_id: Option<&'a str>,
    team_ids: &'a [i64],
    company: Option<&'a str>,
}

fn user(spec: UserSpec<'_>) -> UserRecord {
    let mut attributes = Attributes::new();
    if let Some(c) = spec.company {
        attributes.insert("company".to_owned(), c.to_owned());
    }
    UserRecord {
        id: spec.id,
        email: Email::from_trusted(spec.email.to_owned()),
        kind: spec.kind,
        status: spec.status,
        first_name: Some("Stored".to_owned()),
        last_name: None,
        account_type: spec.account_type.to_owned(),
        attributes,
        client_id: spec.client_id.map(str::to_owned),
        session_epoch: 0,
        team_ids: spec.team_ids.to_vec(),
        created_at: 0,
        updated_at: 0,
        last_seen_at: None,
    }
}

fn grant(
    id: i64,
    team_id: i64,
    target: GrantTarget,
    level: Level,
    tag: Option<&str>,
) -> GrantRecord {
    GrantRecord {
        id,
        team_id,
        target,
        level,
        tag: tag.map(str::to_owned),
        created_at: 0,
    }
}

/// The small policy of the `claims_to_user` target.
///
/// Teams: "Acme Analysts" (1), "Acme Managers" (2), "Globex" (3), "Staff"
/// (4). Clients: `acme-host` (allowed teams: the two Acme teams; no internal
/// users) and `globex-host` (any team; internal users allowed). Users:
/// `ana@acme.example` (embed, acme, team 1), `unbound@acme.example` (embed,
/// not yet bound to a client), `gone@acme.example` (embed, deactivated),
/// `bob@globex.example` (embed, globex), `admin@corp.example` (internal),
/// `old@corp.example` (internal, deactivated). Workbooks: `sales` (in the
/// "Acme" workspace, company-separated, with a `draft` tag) and
/// `globex-report` (upstream).
pub fn fuzz_policy(settings: Settings) -> PolicyState {
    let mut s = PolicyState::default();
    s.settings = settings;
    let perms = |p: &[Permission]| PermissionSet::of(p);
    for (name, permissions) in [
        ("Viewer", perms(&[Permission::View])),
        (
            "Explorer",
            perms(&[Permission::View, Permission::Explore, Permission::Export]),
        ),
        (
            "Auditor",
            perms(&[Permission::View, Permission::AllCompanies]),
        ),
    ] {
        s.put_account_type(
            name,
            Some(AccountTypeRecord {
                name: name.to_owned(),
                permissions,
                builtin: name == "Viewer",
            }),
        );
    }
    for (id, name) in [
        (T_ANALYSTS, "Acme Analysts"),
        (T_MANAGERS, "Acme Managers"),
        (T_GLOBEX, "Globex"),
        (T_STAFF, "Staff"),
    ] {
        s.put_team(
            id,
            Some(TeamRecord {
                id,
                name: name.to_owned(),
                description: String::new(),
                visibility: "visible".to_owned(),
                created_at: 0,
            }),
        );
    }
    s.put_client(
        ACME_KID,
        Some(client_record(
            ACME_KID,
            &["Acme Analysts", "Acme Managers"],
            false,
        )),
    );
    s.put_client(GLOBEX_KID, Some(client_record(GLOBEX_KID, &[], true)));
    use UserKind::{Embed, Internal};
    use UserStatus::{Active, Deactivated};
    for spec in [
        UserSpec {
            id: 1,
            email: "ana@acme.example",
            kind: Embed,
            status: Active,
            account_type: "Viewer",
            client_id: Some(ACME_KID),
            team_ids: &[T_ANALYSTS],
            company: Some("acme"),
        },
        UserSpec {
            id: 2,
            email: "unbound@acme.example",
            kind: Embed,
            status: Active,
            account_type: "Explorer",
            client_id: None,
            team_ids: &[T_MANAGERS],
            company: None,
        },
        UserSpec {
            id: 3,
            email: "gone@acme.example",
            kind: Embed,
            status: Deactivated,
            account_type: "Viewer",
            client_id: Some(ACME_KID),
            team_ids: &[T_ANALYSTS],
            company: Some("acme"),
        },
        UserSpec {
            id: 4,
            email: "bob@globex.example",
            kind: Embed,
            status: Active,
            account_type: "Viewer",
            client_id: Some(GLOBEX_KID),
            team_ids: &[T_GLOBEX],
            company: Some("globex"),
        },
        UserSpec {
            id: 5,
            email: "admin@corp.example",
            kind: Internal,
            status: Active,
            account_type: "Auditor",
            client_id: None,
            team_ids: &[T_STAFF, T_ANALYSTS],
            company: None,
        },
        UserSpec {
            id: 6,
            email: "old@corp.example",
            kind: Internal,
            status: Deactivated,
            account_type: "Viewer",
            client_id: None,
            team_ids: &[T_STAFF],
            company: None,
        },
    ] {
        s.put_user(spec.id, Some(user(spec)));
    }
    s.put_workspace(
        1,
        Some(WorkspaceRecord {
            id: 1,
            name: "Acme".to_owned(),
            parent: None,
        }),
        vec![grant(
            1,
            T_MANAGERS,
            GrantTarget::Workspace(1),
            Level::Explore,
            None,
        )],
    );
    let template = |company: bool| WorkbookSource::Template {
        template: "sales.html".to_owned(),
        dataset: Some("sales.csv".to_owned()),
        company_field: company.then(|| "company".to_owned()),
    };
    let sales = || GrantTarget::Workbook("sales".to_owned());
    s.put_workbook(
        "sales",
        Some(WorkbookRecord {
            id: "sales".to_owned(),
            name: "Sales".to_owned(),
            workspace: Some(1),
            source: template(true),
            tags: BTreeMap::from([("draft".to_owned(), template(false))]),
            created_at: 0,
            updated_at: 0,
        }),
        vec![
            grant(2, T_ANALYSTS, sales(), Level::View, None),
            grant(3, T_STAFF, sales(), Level::Edit, None),
            grant(4, T_ANALYSTS, sales(), Level::Edit, Some("draft")),
        ],
    );
    s.put_workbook(
        "globex-report",
        Some(WorkbookRecord {
            id: "globex-report".to_owned(),
            name: "Globex report".to_owned(),
            workspace: None,
            source: WorkbookSource::Upstream {
                url: "http://127.0.0.1:9/app".to_owned(),
            },
            tags: BTreeMap::new(),
            created_at: 0,
            updated_at: 0,
        }),
        vec![grant(
            5,
            T_GLOBEX,
            GrantTarget::Workbook("globex-report".to_owned()),
            Level::Explore,
            None,
        )],
    );
    s
}

/// Reads `bytes` as a token payload with the gateway's own strict JSON
/// (duplicate keys refused), as the handshake would.
fn payload_of(bytes: &[u8]) -> Option<Map<String, Value>> {
    let header = br#"{"alg":"HS256","kid":"acme-host"}"#;
    let token = format!("{}.{}.", b64(header), b64(bytes));
    RawToken::parse(&token).ok().map(|raw| raw.payload)
}

/// Fuzz target `claims_to_user`. Never panics but for a broken invariant.
///
/// `data[0]` is a set of flags, the rest a JSON payload whose signature is
/// taken as already verified:
///
/// * bit 0: auto-provisioning on; bit 1: the token is from `globex-host`
///   (else `acme-host`); bit 2: company separation on; bit 3: the default
///   account type does not exist;
/// * bit 4: missing `jti`/`iat`/`exp` are filled in with valid values, so
///   inputs reach planning without getting the times right;
/// * bit 5: the workbook is `globex-report` (else `sales`); bit 6: the `draft`
///   tag is asked for; bit 7: an audience is configured.
pub fn claims_to_user(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let auto = flags & 1 != 0;
    let client_id = if flags & 0b10 != 0 {
        GLOBEX_KID
    } else {
        ACME_KID
    };
    let defaults = Settings::default();
    let settings = Settings {
        auto_provisioning: auto,
        default_account_type: if flags & 0b1000 != 0 {
            "Ghost".to_owned()
        } else {
            defaults.default_account_type.clone()
        },
        company_separation: crate::policy::CompanySeparation {
            enabled: flags & 0b100 != 0,
            ..defaults.company_separation.clone()
        },
    };
    let workbook = if flags & 0b10_0000 != 0 {
        "globex-report"
    } else {
        "sales"
    };
    let tag = (flags & 0b100_0000 != 0).then_some("draft");
    let rules = rules(flags & 0b1000_0000 != 0);

    let Some(mut payload) = payload_of(rest) else {
        return;
    };
    if flags & 0b1_0000 != 0 {
        for (name, value) in [
            ("jti", Value::from("fuzz-jti")),
            ("iat", Value::from(NOW)),
            ("exp", Value::from(NOW + 300)),
        ] {
            payload.entry(name).or_insert(value);
        }
    }
    let Ok(claims) = crate::token::Claims::from_payload(&payload, client_id, &rules, NOW) else {
        return;
    };
    assert!(claims.teams.as_ref().is_none_or(|t| t.len() <= MAX_TEAMS));
    let email = claims.email.as_str();
    assert_eq!(email, email.to_ascii_lowercase());

    let state = fuzz_policy(settings);
    let Some(client) = state.active_client(client_id) else {
        return;
    };
    let allowed = &client.record.allowed_teams;
    let stored = state.user_by_email(email).cloned();
    let plan = identity::plan(&state, client, &claims);

    // Invariants of SPEC §4.
    if let Some(u) = &stored {
        if u.status == UserStatus::Deactivated {
            assert!(
                plan.as_ref()
                    .is_err_and(|p| p.code == ErrorCode::UserDeactivated),
                "a deactivated user got a plan"
            );
        }
        if u.kind == UserKind::Internal && u.status == UserStatus::Active {
            match &plan {
                Ok(Plan::Existing { user, .. }) => {
                    assert_eq!(user.id, u.id);
                    assert!(client.record.allow_internal_users);
                }
                Ok(other) => panic!("an internal user got a writing plan: {other:?}"),
                Err(p) => assert_eq!(p.code, ErrorCode::InternalUserNotAllowed),
            }
        }
        if u.kind == UserKind::Embed
            && u.client_id
                .as_deref()
                .is_some_and(|owner| owner != client_id)
        {
            assert!(
                plan.as_ref().is_err_and(|p| matches!(
                    p.code,
                    ErrorCode::UserBelongsToOtherClient | ErrorCode::UserDeactivated
                )),
                "another client's user got a plan"
            );
        }
    } else {
        assert!(
            !matches!(plan, Ok(Plan::Existing { .. } | Plan::Update { .. })),
            "an unknown email planned as an existing user"
        );
    }
    if let Ok(plan) = &plan
        && plan.writes()
        && let Some(names) = &claims.teams
        && !allowed.is_empty()
    {
        for name in names {
            assert!(
                allowed.iter().any(|a| a == name.as_str()),
                "a plan took the team {:?}, which {client_id} may not name",
                name.as_str()
            );
        }
    }
    let team_allowed = |id: &i64| {
        allowed.is_empty()
            || state
                .team(*id)
                .is_some_and(|t| allowed.iter().any(|a| *a == t.name))
    };
    match &plan {
        Ok(Plan::Create { fields }) => {
            assert!(auto, "a user was created with auto-provisioning off");
            assert!(stored.is_none());
            assert!(
                !fields.team_ids.is_empty(),
                "a user was created with no team"
            );
            assert!(fields.team_ids.iter().all(team_allowed));
            assert!(fields.team_ids.iter().all(|id| state.team(*id).is_some()));
            assert!(state.account_type(&fields.account_type).is_some());
            assert_eq!(fields.email, claims.email);
            assert_eq!(fields.kind, UserKind::Embed);
            assert_eq!(fields.status, UserStatus::Active);
            assert_eq!(fields.client_id.as_deref(), Some(client_id));
        }
        Ok(Plan::Update { user, fields, .. }) => {
            assert_eq!(user.kind, UserKind::Embed);
            assert_eq!(user.status, UserStatus::Active);
            assert!(user.client_id.as_deref().is_none_or(|c| c == client_id));
            assert_eq!(fields.client_id.as_deref(), Some(client_id));
            assert_eq!(fields.status, user.status);
            assert_eq!(fields.email, user.email);
            assert!(state.account_type(&fields.account_type).is_some());
            if auto && claims.teams.is_some() {
                assert!(!fields.team_ids.is_empty(), "an update wiped the teams");
                assert!(fields.team_ids.iter().all(team_allowed));
            }
            if !auto {
                // Only the binding to the client may change.
                let mut same = user.fields();
                same.client_id = fields.client_id.clone();
                assert_eq!(
                    &same, fields,
                    "claims were applied with auto-provisioning off"
                );
            }
        }
        Ok(Plan::Existing { user, .. }) => {
            assert!(stored.as_ref().is_some_and(|s| s.id == user.id));
        }
        Err(p) => {
            assert!(!p.message.is_empty());
            assert!(
                matches!(p.code.status(), 403),
                "plan failed with {}",
                p.code
            );
        }
    }
    let Ok(plan) = plan else {
        return;
    };

    // The access decision (SPEC §5) on the planned user.
    let subject = plan.subject();
    let mut reasons = Reasons::default();
    let traced = state.decide(subject, workbook, tag, &mut reasons);
    let fast = state.decide(subject, workbook, tag, &mut NoTrace);
    assert_eq!(traced, fast, "tracing changed the decision");
    assert!(!reasons.0.is_empty());
    // Who may open what in `fuzz_policy`, written out by hand (an oracle
    // independent of `decide`): the teams granted each version, with their
    // level, on the workbook or on a workspace containing it.
    let granted: &[(i64, Level)] = match (workbook, tag) {
        ("sales", None) => &[
            (T_MANAGERS, Level::Explore),
            (T_ANALYSTS, Level::View),
            (T_STAFF, Level::Edit),
        ],
        ("sales", Some("draft")) => &[(T_ANALYSTS, Level::Edit)],
        ("globex-report", None) => &[(T_GLOBEX, Level::Explore)],
        _ => &[],
    };
    let expected_level = granted
        .iter()
        .filter(|(team, _)| subject.team_ids.contains(team))
        .map(|(_, level)| *level)
        .max();
    if traced.is_allowed() {
        assert_eq!(subject.status, UserStatus::Active);
        assert!(traced.permissions.contains(Permission::View));
        let level = traced.level;
        assert!(
            expected_level.is_some(),
            "allowed without a granted team: teams {:?}",
            subject.team_ids
        );
        assert_eq!(level, expected_level, "not the best granted level");
        let account = state.account_type(subject.account_type);
        assert!(account.is_some());
        if let Some(account) = account {
            assert_eq!(
                traced.permissions,
                account.permissions.effective(level.unwrap_or(Level::View))
            );
            let separated = state.settings.company_separation.enabled
                && state
                    .workbook(workbook)
                    .and_then(|w| crate::policy::source_for(w, tag))
                    .is_some_and(|s| s.company_field().is_some());
            if separated && !account.permissions.contains(Permission::AllCompanies) {
                let company = subject.attributes.get("company");
                assert!(company.is_some_and(|c| !c.is_empty()));
                assert_eq!(traced.company.as_ref(), company);
            } else {
                assert_eq!(traced.company, None);
            }
        }
    } else {
        assert!(traced.level.is_none());
        assert_eq!(traced.permissions, PermissionSet::EMPTY);
    }
}
