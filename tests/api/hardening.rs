//! Hardening of the security boundary (SPEC §2, §3, §6, §8, §10):
//! asymmetric and JWKS-URL embed clients, secret rotation with the clock,
//! HTTPS, the security headers, secrets kept out of the logs at every log
//! level, and the server's abuse limits. The helpers marked `pub(crate)` are
//! shared with `attacks.rs`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use embedgate::clock::Clock;

use crate::helpers::*;

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

/// A seeded gateway whose failed-handshake limiter is off, so that one test
/// may try many bad tokens from the same address.
pub(crate) async fn seeded_app() -> TestApp {
    let app = spawn_app_with(|c| c.limits.failed_handshakes_per_minute = 0).await;
    seed(&app).await;
    app
}

/// Percent-encodes a query value.
pub(crate) fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A response as one comparable string: `"303"` for a handshake that set a
/// session cookie, else `"{status} {code}"`. A refusal must set no cookie.
pub(crate) async fn outcome(res: reqwest::Response) -> String {
    let status = res.status();
    let has_cookie = res.headers().get("set-cookie").is_some();
    let text = res.text().await.unwrap_or_default();
    if status == StatusCode::SEE_OTHER {
        assert!(has_cookie, "a 303 handshake must set the session cookie");
        return "303".into();
    }
    assert!(
        !has_cookie,
        "a refusal ({status}) must not set a cookie: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    format!(
        "{} {}",
        status.as_u16(),
        body["error"]["code"].as_str().unwrap_or("<no code>")
    )
}

/// A handshake with `token` (percent-encoded) on `workbook`, as an outcome.
pub(crate) async fn try_on(app: &TestApp, token: &str, workbook: &str) -> String {
    let res = app
        .http
        .get(app.url(&format!("/embed/workbooks/{workbook}?jwt={}", enc(token))))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    outcome(res).await
}

/// Asserts every `(label, token, expected outcome)` on `sales`, reporting
/// all the wrong ones at once.
pub(crate) async fn expect_all(app: &TestApp, cases: Vec<(String, String, &str)>) {
    let mut wrong = Vec::new();
    for (label, token, expected) in cases {
        let got = try_on(app, &token, "sales").await;
        if got != expected {
            wrong.push(format!("{label}: expected {expected}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

pub(crate) fn case(
    label: impl Into<String>,
    token: String,
    expected: &str,
) -> (String, String, &str) {
    (label.into(), token, expected)
}

/// Makes background writes (audit, `last_seen_at`) visible and returns the
/// user list, so that two snapshots compare only real changes.
pub(crate) async fn users_snapshot(app: &TestApp) -> Value {
    app.gateway.recorder.flush().await;
    app.admin().audit("limit=1").await;
    app.admin().users().await
}

/// An HMAC over `builder`'s header and claims with raw key bytes.
pub(crate) fn hmac_sign(builder: &TokenBuilder, key: &[u8], alg: Algorithm) -> String {
    let input = builder.signing_input();
    let sig =
        jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(key), alg).unwrap();
    format!("{input}.{sig}")
}

/// A key pair of one asymmetric algorithm, as PEM.
pub(crate) struct KeyPair {
    pub alg: Algorithm,
    pub private_pem: String,
    pub public_pem: String,
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_path(&format!("tests/fixtures/{name}"))).unwrap()
}

impl KeyPair {
    fn generated(alg: Algorithm, rcgen_alg: &'static rcgen::SignatureAlgorithm) -> KeyPair {
        let kp = rcgen::KeyPair::generate_for(rcgen_alg).unwrap();
        KeyPair {
            alg,
            private_pem: kp.serialize_pem(),
            public_pem: kp.public_key_pem(),
        }
    }

    pub fn es256() -> KeyPair {
        Self::generated(Algorithm::ES256, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    pub fn ed25519() -> KeyPair {
        Self::generated(Algorithm::EdDSA, &rcgen::PKCS_ED25519)
    }

    /// The RSA fixture key (its public half is `rsa_public.pem`).
    pub fn rsa() -> KeyPair {
        KeyPair {
            alg: Algorithm::RS256,
            private_pem: fixture("rsa_private.pem"),
            public_pem: fixture("rsa_public.pem"),
        }
    }

    /// Another RSA key (private only: its public half is never registered).
    pub fn rsa_other() -> KeyPair {
        KeyPair {
            alg: Algorithm::RS256,
            private_pem: fixture("rsa_other_private.pem"),
            public_pem: String::new(),
        }
    }

    pub fn name(&self) -> String {
        format!("{:?}", self.alg)
    }

    pub fn encoding_key(&self) -> EncodingKey {
        let pem = self.private_pem.as_bytes();
        match self.alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            other => panic!("no key pair for {other:?}"),
        }
        .unwrap()
    }

    /// Signs `builder`'s claims with this key, the header's `alg` set to
    /// this key's algorithm (the builder's `kid` is kept).
    pub fn sign(&self, builder: &TokenBuilder) -> String {
        let b = builder.clone().header("alg", json!(self.name()));
        let input = b.signing_input();
        let sig =
            jsonwebtoken::crypto::sign(input.as_bytes(), &self.encoding_key(), self.alg).unwrap();
        format!("{input}.{sig}")
    }

    /// The public JWK of this key with `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(), self.alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        serde_json::to_value(&jwk).unwrap()
    }
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// The `error.code` of a JSON error body.
    pub fn code(&self) -> String {
        let start = self.body.find('{').unwrap_or(0);
        let end = self.body.rfind('}').map_or(self.body.len(), |e| e + 1);
        let body: Value = serde_json::from_str(self.body.get(start..end).unwrap_or_default())
            .unwrap_or(Value::Null);
        body["error"]["code"]
            .as_str()
            .unwrap_or("<no code>")
            .to_owned()
    }

    pub fn message(&self) -> String {
        let start = self.body.find('{').unwrap_or(0);
        let end = self.body.rfind('}').map_or(self.body.len(), |e| e + 1);
        let body: Value = serde_json::from_str(self.body.get(start..end).unwrap_or_default())
            .unwrap_or(Value::Null);
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn decode_chunked(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(at) = body.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&body[..at]);
        let Ok(n) = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16) else {
            break;
        };
        if n == 0 || body.len() < at + 2 + n {
            break;
        }
        out.extend_from_slice(&body[at + 2..at + 2 + n]);
        body = &body[(at + 4 + n).min(body.len())..];
    }
    out
}

/// Sends `request` as it is over a new connection to the gateway and reads
/// until the server closes it (send `Connection: close`). `None` when the
/// server closed the connection without an answer.
pub(crate) async fn raw_request(port: u16, request: &[u8]) -> Option<RawResponse> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (mut read, mut write) = stream.into_split();
    let request = request.to_vec();
    // Write while reading: the server may answer before taking it all.
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        write
    });
    let mut answer = Vec::new();
    let read_all = async {
        let mut chunk = [0u8; 8192];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the gateway neither answered nor closed within 30 s");
    drop(writer.await);
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..split]).into_owned();
    let raw_body = &answer[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        decode_chunked(raw_body)
    } else {
        raw_body.to_vec()
    };
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(RawResponse {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A `GET` over a raw connection, path sent byte for byte, JSON errors.
pub(crate) async fn raw_get(port: u16, path: &str, extra_headers: &str) -> RawResponse {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n{extra_headers}Connection: close\r\n\r\n"
    );
    raw_request(port, request.as_bytes())
        .await
        .unwrap_or_else(|| panic!("no answer to GET {path}"))
}

// ---------------------------------------------------------------------------
// A key host: a tiny HTTP server that serves a JWKS and counts its hits
// ---------------------------------------------------------------------------

#[derive(Default)]
struct HostState {
    jwks: String,
    hits: HashMap<String, usize>,
}

/// Serves the current JWK set on every path, in the way the path names:
///
/// - `/jwks.json`: `200` with the set
/// - `/exact.json`: the set padded to exactly 64 KiB (the gateway's limit)
/// - `/big.json`: the set padded to 64 KiB + 1, with a `Content-Length`
/// - `/big-unsized.json`: the same without a length (read until close)
/// - `/not-json`: `200` with an HTML page
/// - `/error`: `500` with the set as its body
/// - `/redirect`: `302` to the host's `redirect_to`
/// - `/slow.json`: the set after 8 seconds
#[derive(Clone)]
pub(crate) struct KeyHost {
    pub base: String,
    state: Arc<Mutex<HostState>>,
    redirect_to: String,
}

const JWKS_LIMIT: usize = 64 * 1024;

fn padded(jwks: &str, len: usize) -> String {
    let open = &jwks[..jwks.len() - 1];
    let empty = format!("{open},\"pad\":\"\"}}");
    assert!(empty.len() <= len);
    let text = format!("{open},\"pad\":\"{}\"}}", "x".repeat(len - empty.len()));
    assert_eq!(text.len(), len);
    text
}

impl KeyHost {
    pub async fn start(redirect_to: &str) -> KeyHost {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = KeyHost {
            base: format!("http://{}", listener.local_addr().unwrap()),
            state: Arc::new(Mutex::new(HostState::default())),
            redirect_to: redirect_to.to_owned(),
        };
        let server = host.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = server.clone();
                tokio::spawn(async move { server.answer(stream).await });
            }
        });
        host
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// From now on, serve exactly these keys.
    pub fn serve_keys(&self, keys: &[Value]) {
        self.state.lock().unwrap().jwks = json!({ "keys": keys }).to_string();
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        self.state.lock().unwrap().hits.values().sum()
    }

    async fn answer(&self, mut stream: tokio::net::TcpStream) {
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&chunk[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let target = text.split(' ').nth(1).unwrap_or("/").to_owned();
        let path = target.split('?').next().unwrap_or("/").to_owned();
        let jwks = {
            let mut state = self.state.lock().unwrap();
            *state.hits.entry(path.clone()).or_insert(0) += 1;
            state.jwks.clone()
        };
        let json = "application/json";
        let (status, ctype, body, sized, extra) = match path.as_str() {
            "/jwks.json" => ("200 OK", json, jwks, true, String::new()),
            "/exact.json" => (
                "200 OK",
                json,
                padded(&jwks, JWKS_LIMIT),
                true,
                String::new(),
            ),
            "/big.json" => (
                "200 OK",
                json,
                padded(&jwks, JWKS_LIMIT + 1),
                true,
                String::new(),
            ),
            "/big-unsized.json" => (
                "200 OK",
                json,
                padded(&jwks, JWKS_LIMIT + 1),
                false,
                String::new(),
            ),
            "/not-json" => (
                "200 OK",
                "text/html",
                "<html><body>keys</body></html>".to_owned(),
                true,
                String::new(),
            ),
            "/error" => ("500 Internal Server Error", json, jwks, true, String::new()),
            "/redirect" => (
                "302 Found",
                "text/plain",
                String::new(),
                true,
                format!("Location: {}\r\n", self.redirect_to),
            ),
            "/slow.json" => {
                tokio::time::sleep(Duration::from_secs(8)).await;
                ("200 OK", json, jwks, true, String::new())
            }
            _ => (
                "404 Not Found",
                "text/plain",
                String::new(),
                true,
                String::new(),
            ),
        };
        let length = if sized {
            format!("Content-Length: {}\r\n", body.len())
        } else {
            String::new()
        };
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n{length}{extra}Connection: close\r\n\r\n"
        );
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        for part in body.as_bytes().chunks(4096) {
            if stream.write_all(part).await.is_err() {
                return;
            }
        }
        let _ = stream.shutdown().await;
    }
}

// ---------------------------------------------------------------------------
// 1. Asymmetric clients with a registered public key
// ---------------------------------------------------------------------------

/// Registers `key`'s public half for a client `id` with `key`'s algorithm,
/// then checks that only a signature by that very key is accepted, and that
/// the public key is never usable as an HMAC secret.
async fn an_asymmetric_client_accepts_only_its_own_key(key: KeyPair, other: KeyPair) {
    let app = seeded_app().await;
    let algorithm = key.name();
    let id = format!("acme-{}", algorithm.to_lowercase());
    let created = app
        .admin()
        .post(
            "/clients",
            json!({"client_id": id, "name": id, "algorithm": algorithm, "public_key_pem": key.public_pem}),
        )
        .await;
    assert_eq!(created["algorithm"], algorithm.as_str(), "{created}");
    assert!(
        created["secret"].is_null(),
        "an asymmetric client has no secret: {created}"
    );
    let listed = app.admin().get(&format!("/clients/{id}")).await;
    assert!(listed.get("secret").is_none_or(Value::is_null), "{listed}");

    let email = format!("{id}@acme.example");
    let pem = key.public_pem.clone();
    let t = || TokenBuilder::new(&id, &pem, app.clock.unix()).email(&email);
    let der = pem::parse(&pem).unwrap().into_contents();
    let mut cases = vec![
        case(
            "signed with another key",
            other.sign(&t()),
            "401 token_bad_signature",
        ),
        case(
            "HS256 keyed with the public key PEM",
            t().sign(),
            "401 token_alg_mismatch",
        ),
        case(
            "HS256 keyed with the PEM without its last newline",
            hmac_sign(&t(), pem.trim_end().as_bytes(), Algorithm::HS256),
            "401 token_alg_mismatch",
        ),
        case(
            "HS256 keyed with the DER public key",
            hmac_sign(&t(), &der, Algorithm::HS256),
            "401 token_alg_mismatch",
        ),
        case(
            "HS384 keyed with the public key PEM",
            t().alg(Algorithm::HS384).sign(),
            "401 token_alg_mismatch",
        ),
        case(
            "HS512 keyed with the public key PEM",
            t().alg(Algorithm::HS512).sign(),
            "401 token_alg_mismatch",
        ),
        case(
            "the client's alg over an HMAC keyed with the PEM",
            t().header("alg", json!(algorithm)).sign(),
            "401 token_bad_signature",
        ),
        case(
            "the client's alg over an HMAC keyed with the DER",
            hmac_sign(&t().header("alg", json!(algorithm)), &der, Algorithm::HS256),
            "401 token_bad_signature",
        ),
        case(
            "the client's alg without a signature",
            format!("{}.", t().header("alg", json!(algorithm)).signing_input()),
            "401 token_bad_signature",
        ),
        case(
            "alg none",
            format!("{}.", t().header("alg", json!("none")).signing_input()),
            "401 token_alg_mismatch",
        ),
        case(
            "the alg in lower case",
            {
                let signed = key.sign(&t());
                let b = t().header("alg", json!(algorithm.to_lowercase()));
                let sig = signed.rsplit('.').next().unwrap().to_owned();
                format!("{}.{sig}", b.signing_input())
            },
            "401 token_alg_mismatch",
        ),
    ];
    // A signature by a key of another asymmetric family is the wrong alg.
    for foreign in [KeyPair::rsa(), KeyPair::es256(), KeyPair::ed25519()] {
        if foreign.alg != key.alg {
            cases.push(case(
                format!("signed with {}", foreign.name()),
                foreign.sign(&t()),
                "401 token_alg_mismatch",
            ));
        }
    }
    expect_all(&app, cases).await;
    assert!(
        users_snapshot(&app).await.as_array().unwrap().is_empty(),
        "a refused token created a user"
    );
    expect_all(
        &app,
        vec![case(
            "signed with the registered key",
            key.sign(&t()),
            "303",
        )],
    )
    .await;
    let users = users_snapshot(&app).await;
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    assert_eq!(users[0]["email"], email.as_str());
}

#[tokio::test]
async fn an_rs256_client_accepts_its_key_only_and_never_its_pem_as_an_hmac_secret() {
    an_asymmetric_client_accepts_only_its_own_key(KeyPair::rsa(), KeyPair::rsa_other()).await;
}

#[tokio::test]
async fn an_es256_client_accepts_its_key_only_and_never_its_pem_as_an_hmac_secret() {
    an_asymmetric_client_accepts_only_its_own_key(KeyPair::es256(), KeyPair::es256()).await;
}

#[tokio::test]
async fn an_eddsa_client_accepts_its_key_only_and_never_its_pem_as_an_hmac_secret() {
    an_asymmetric_client_accepts_only_its_own_key(KeyPair::ed25519(), KeyPair::ed25519()).await;
}

#[tokio::test]
async fn an_asymmetric_client_needs_a_valid_public_key_of_its_algorithm() {
    let app = seeded_app().await;
    let before = app.admin().get("/clients").await;
    let es = KeyPair::es256();
    for (label, body) in [
        (
            "an RSA key for ES256",
            json!({"name": "x", "algorithm": "ES256", "public_key_pem": fixture("rsa_public.pem")}),
        ),
        (
            "an EC key for EdDSA",
            json!({"name": "x", "algorithm": "EdDSA", "public_key_pem": es.public_pem}),
        ),
        (
            "a private key where the public one belongs",
            json!({"name": "x", "algorithm": "ES256", "public_key_pem": es.private_pem}),
        ),
        (
            "garbage",
            json!({"name": "x", "algorithm": "RS256", "public_key_pem": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}),
        ),
        ("no key at all", json!({"name": "x", "algorithm": "ES256"})),
        (
            "a secret for an asymmetric client",
            json!({"name": "x", "algorithm": "ES256", "public_key_pem": es.public_pem, "secret": ACME_SECRET}),
        ),
        (
            "a public key for an HMAC client",
            json!({"name": "x", "algorithm": "HS256", "public_key_pem": es.public_pem}),
        ),
    ] {
        let res = app.admin().send(Method::POST, "/clients", Some(body)).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, 400, "{label}: {text}");
        assert!(text.contains("validation_failed"), "{label}: {text}");
    }
    assert_eq!(
        app.admin().get("/clients").await,
        before,
        "a refused client was created"
    );
}

// ---------------------------------------------------------------------------
// 2. JWKS-URL clients
// ---------------------------------------------------------------------------

async fn jwks_client(app: &TestApp, id: &str, url: &str) {
    let created = app
        .admin()
        .post(
            "/clients",
            json!({"client_id": id, "name": id, "algorithm": "ES256", "jwks_url": url}),
        )
        .await;
    assert_eq!(created["algorithm"], "ES256", "{created}");
    assert!(created["secret"].is_null(), "{created}");
}

fn jwks_token(app: &TestApp, client: &str, email: &str) -> TokenBuilder {
    TokenBuilder::new(client, "", app.clock.unix()).email(email)
}

#[tokio::test]
async fn a_jwks_client_follows_a_key_rotation_but_refetches_at_most_once_a_minute() {
    let app = seeded_app().await;
    let host = KeyHost::start("").await;
    let (old, new, attacker) = (KeyPair::es256(), KeyPair::es256(), KeyPair::es256());
    host.serve_keys(&[old.jwk("k1")]);
    jwks_client(&app, "jwks-rot", &host.url("/jwks.json")).await;
    let t = || jwks_token(&app, "jwks-rot", "rot@acme.example").kid("jwks-rot");
    let hits = || host.hits("/jwks.json");

    // The first token makes the gateway fetch the set once.
    assert_eq!(try_on(&app, &old.sign(&t()), "sales").await, "303");
    let first = hits();
    assert_eq!(first, 1, "the first token fetched the set {first} times");
    assert_eq!(try_on(&app, &old.sign(&t()), "sales").await, "303");
    assert_eq!(hits(), 1, "valid tokens must be verified from the cache");

    // The host rotates. Within the minute of the last fetch, the new key is
    // not known yet and the gateway does not refetch.
    host.serve_keys(&[new.jwk("k2")]);
    app.clock.advance_secs(30);
    assert_eq!(
        try_on(&app, &new.sign(&t()), "sales").await,
        "401 token_bad_signature"
    );
    assert_eq!(hits(), 1, "refetched within a minute of the last fetch");

    // A minute after the last fetch, a failed signature refetches once.
    app.clock.advance_secs(31);
    assert_eq!(try_on(&app, &new.sign(&t()), "sales").await, "303");
    assert_eq!(hits(), 2);
    assert_eq!(
        try_on(&app, &old.sign(&t()), "sales").await,
        "401 token_bad_signature",
        "the rotated-out key must stop working once the new set is fetched"
    );
    assert_eq!(hits(), 2);

    // A burst of bad signatures a minute later costs at most one fetch.
    app.clock.advance_secs(61);
    for i in 0..20 {
        assert_eq!(
            try_on(&app, &attacker.sign(&t()), "sales").await,
            "401 token_bad_signature",
            "bad token {i}"
        );
    }
    assert_eq!(
        hits(),
        3,
        "20 bad signatures must cause exactly one refetch"
    );
    // The cache still holds the host's current key.
    assert_eq!(try_on(&app, &new.sign(&t()), "sales").await, "303");
    assert_eq!(hits(), 3);

    // A rotation to a set of two keys: both work after the next refetch.
    let newer = KeyPair::es256();
    host.serve_keys(&[new.jwk("k2"), newer.jwk("k3")]);
    app.clock.advance_secs(61);
    assert_eq!(try_on(&app, &newer.sign(&t()), "sales").await, "303");
    assert_eq!(try_on(&app, &new.sign(&t()), "sales").await, "303");
    assert_eq!(hits(), 4);
}

#[tokio::test]
async fn a_jwks_too_big_not_json_failing_or_redirected_never_makes_a_token_valid() {
    let app = seeded_app().await;
    let canary = KeyHost::start("").await;
    let key = KeyPair::es256();
    canary.serve_keys(&[key.jwk("k1")]);
    let host = KeyHost::start(&canary.url("/jwks.json")).await;
    host.serve_keys(&[key.jwk("k1")]);

    // The positive control: a set of exactly 64 KiB is read and used, so
    // the refusals below are the limits at work, not a broken key.
    jwks_client(&app, "jwks-exact", &host.url("/exact.json")).await;
    let t = |client: &str| jwks_token(&app, client, &format!("{client}@acme.example")).kid(client);
    assert_eq!(
        try_on(&app, &key.sign(&t("jwks-exact")), "sales").await,
        "303"
    );

    let bad = [
        ("jwks-big", "/big.json"),
        ("jwks-big-unsized", "/big-unsized.json"),
        ("jwks-not-json", "/not-json"),
        ("jwks-error", "/error"),
        ("jwks-redirect", "/redirect"),
    ];
    for (client, path) in bad {
        jwks_client(&app, client, &host.url(path)).await;
    }
    for (client, path) in bad {
        let got = try_on(&app, &key.sign(&t(client)), "sales").await;
        assert_eq!(got, "401 token_bad_signature", "{path}");
        assert_eq!(
            host.hits(path),
            1,
            "{path} was fetched {} times",
            host.hits(path)
        );
    }
    // Trying again at once neither succeeds nor hammers the host.
    for (client, path) in bad {
        let got = try_on(&app, &key.sign(&t(client)), "sales").await;
        assert_eq!(got, "401 token_bad_signature", "{path}, again");
        assert_eq!(host.hits(path), 1, "{path} was refetched within the minute");
    }
    assert_eq!(
        canary.total_hits(),
        0,
        "the gateway followed the JWKS URL's redirect"
    );
    assert!(
        users_snapshot(&app).await.as_array().unwrap().len() == 1,
        "only the positive control may have created a user"
    );
}

#[tokio::test]
async fn a_slow_jwks_url_times_out_and_never_makes_a_token_valid() {
    let app = seeded_app().await;
    let host = KeyHost::start("").await;
    let key = KeyPair::es256();
    host.serve_keys(&[key.jwk("k1")]);
    jwks_client(&app, "jwks-slow", &host.url("/slow.json")).await;
    let token = key.sign(&jwks_token(&app, "jwks-slow", "slow@acme.example").kid("jwks-slow"));
    // The host answers after 8 s; the gateway gives up after its own
    // timeout. The deadline only keeps a hanging gateway from hanging CI.
    let got = tokio::time::timeout(Duration::from_secs(30), try_on(&app, &token, "sales"))
        .await
        .expect("the handshake hung on a slow JWKS URL");
    assert_eq!(got, "401 token_bad_signature");
    assert_eq!(host.hits("/slow.json"), 1);
    // Meanwhile and afterwards, the gateway serves other clients.
    assert_eq!(try_on(&app, &app.token().sign(), "sales").await, "303");
}

#[tokio::test]
async fn key_urls_and_keys_in_a_token_header_are_never_fetched_or_used() {
    let app = seeded_app().await;
    let host = KeyHost::start("").await;
    let attacker_host = KeyHost::start("").await;
    let (key, attacker) = (KeyPair::es256(), KeyPair::es256());
    host.serve_keys(&[key.jwk("k1")]);
    attacker_host.serve_keys(&[attacker.jwk("k1")]);
    jwks_client(&app, "jwks-hdr", &host.url("/jwks.json")).await;
    let cert = rcgen::generate_simple_self_signed(vec!["attacker.example".to_owned()]).unwrap();
    let x5c = STANDARD.encode(cert.cert.der());
    let t = || jwks_token(&app, "jwks-hdr", "hdr@acme.example").kid("jwks-hdr");
    let mut cases = Vec::new();
    for (name, value) in [
        ("jku", json!(attacker_host.url("/jwks.json"))),
        ("x5u", json!(attacker_host.url("/cert.pem"))),
        ("jwk", attacker.jwk("k1")),
        ("x5c", json!([x5c])),
    ] {
        cases.push(case(
            format!("{name} naming the attacker's key"),
            attacker.sign(&t().header(name, value)),
            "401 token_bad_signature",
        ));
    }
    cases.push(case(
        "every header at once",
        attacker.sign(
            &t().header("jku", json!(attacker_host.url("/jwks.json")))
                .header("x5u", json!(attacker_host.url("/cert.pem")))
                .header("jwk", attacker.jwk("k1"))
                .header("x5c", json!([x5c])),
        ),
        "401 token_bad_signature",
    ));
    // The registered key still works with the same headers present.
    cases.push(case(
        "the registered key with a jku header",
        key.sign(&t().header("jku", json!(attacker_host.url("/jwks.json")))),
        "303",
    ));
    expect_all(&app, cases).await;
    assert_eq!(
        attacker_host.total_hits(),
        0,
        "the gateway fetched a URL named in a token header"
    );
    assert!(
        host.hits("/jwks.json") >= 1,
        "the registered URL was never used"
    );
}

#[tokio::test]
async fn a_jwks_url_must_be_an_absolute_http_or_https_url() {
    let app = seeded_app().await;
    let before = app.admin().get("/clients").await;
    for url in [
        "jwks.json",
        "/jwks.json",
        "//127.0.0.1/jwks.json",
        "file:///etc/passwd",
        "ftp://127.0.0.1/jwks.json",
        "gopher://127.0.0.1:70/_x",
        "javascript:alert(1)",
        "data:application/json,{\"keys\":[]}",
        "http://user:pw@127.0.0.1/jwks.json",
        "",
        "http://",
    ] {
        let res = app
            .admin()
            .send(
                Method::POST,
                "/clients",
                Some(json!({"name": "bad", "algorithm": "ES256", "jwks_url": url})),
            )
            .await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        assert_eq!(status, 400, "jwks_url {url:?}: {text}");
        assert!(text.contains("validation_failed"), "{url:?}: {text}");
    }
    let key = KeyPair::es256();
    for (label, body) in [
        (
            "both a PEM and a URL",
            json!({"name": "bad", "algorithm": "ES256", "public_key_pem": key.public_pem, "jwks_url": "https://keys.example/jwks.json"}),
        ),
        (
            "a URL for an HMAC client",
            json!({"name": "bad", "algorithm": "HS256", "jwks_url": "https://keys.example/jwks.json"}),
        ),
        (
            "a URL that is not a string",
            json!({"name": "bad", "algorithm": "ES256", "jwks_url": ["https://keys.example/jwks.json"]}),
        ),
    ] {
        let res = app.admin().send(Method::POST, "/clients", Some(body)).await;
        assert_eq!(res.status().as_u16(), 400, "{label}");
    }
    assert_eq!(
        app.admin().get("/clients").await,
        before,
        "a refused client was created"
    );
    for url in [
        "http://127.0.0.1:9/jwks.json",
        "https://keys.example/.well-known/jwks.json",
    ] {
        let created = app
            .admin()
            .post(
                "/clients",
                json!({"name": "ok", "algorithm": "ES256", "jwks_url": url}),
            )
            .await;
        assert_eq!(created["algorithm"], "ES256", "{created}");
    }
}

// ---------------------------------------------------------------------------
// 3. Secret rotation with the clock
// ---------------------------------------------------------------------------

async fn rotate(app: &TestApp, grace: i64) -> String {
    app.admin()
        .expect(
            Method::POST,
            &format!("/clients/{ACME_CLIENT}/rotate"),
            Some(json!({ "grace_secs": grace })),
            200,
        )
        .await["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Only the immediately previous secret is kept (`rotate_client_secret`
/// moves `secret` into `previous_secret`): a second rotation ends the first
/// secret at once, even inside the grace period it was given.
#[tokio::test]
async fn a_second_rotation_ends_the_oldest_secret_at_once_even_inside_its_grace() {
    let app = seeded_app().await;
    let with = |secret: &str| TokenBuilder::new(ACME_CLIENT, secret, app.clock.unix()).sign();
    let second = rotate(&app, 3600).await;
    assert_eq!(try_on(&app, &with(ACME_SECRET), "sales").await, "303");
    assert_eq!(try_on(&app, &with(&second), "sales").await, "303");

    app.clock.advance_secs(600);
    let third = rotate(&app, 3600).await;
    assert_ne!(third, second);
    assert_eq!(
        try_on(&app, &with(ACME_SECRET), "sales").await,
        "401 token_bad_signature",
        "the first secret must stop at the second rotation"
    );
    assert_eq!(try_on(&app, &with(&second), "sales").await, "303");
    assert_eq!(try_on(&app, &with(&third), "sales").await, "303");

    // The second secret's grace runs from the second rotation.
    app.clock.advance_secs(3599);
    assert_eq!(try_on(&app, &with(&second), "sales").await, "303");
    app.clock.advance_secs(2);
    assert_eq!(
        try_on(&app, &with(&second), "sales").await,
        "401 token_bad_signature"
    );
    assert_eq!(
        try_on(&app, &with(ACME_SECRET), "sales").await,
        "401 token_bad_signature"
    );
    assert_eq!(try_on(&app, &with(&third), "sales").await, "303");
    // The list never shows a secret.
    let list = app.admin().get("/clients").await.to_string();
    for secret in [ACME_SECRET, second.as_str(), third.as_str()] {
        assert!(!list.contains(secret), "the client list shows a secret");
    }
}

#[tokio::test]
async fn a_session_opened_with_a_rotated_out_secret_keeps_working_until_it_ends() {
    // Rotation changes what signs tokens, not who is signed in: a session
    // is bound to the client, which stays active.
    let app = seeded_app().await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    rotate(&app, 0).await;
    assert_eq!(
        try_on(&app, &app.token().sign(), "sales").await,
        "401 token_bad_signature"
    );
    let res = app.get_with_cookie("/embed/workbooks/sales", &cookie).await;
    assert_eq!(res.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------
// 4. TLS
// ---------------------------------------------------------------------------

struct TlsFiles {
    _dir: tempfile::TempDir,
    cert: String,
    key: String,
    root: reqwest::Certificate,
}

fn tls_files() -> TlsFiles {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert_pem = ck.cert.pem();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    TlsFiles {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        root: reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap(),
        _dir: dir,
    }
}

fn tls_client(root: &reqwest::Certificate, http1_only: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([root.clone()])
        .redirect(reqwest::redirect::Policy::none());
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

async fn tls_app(files: &TlsFiles) -> TestApp {
    let (cert, key) = (files.cert.clone(), files.key.clone());
    let mut app = spawn_app_with(move |c| {
        c.server.tls_cert = cert;
        c.server.tls_key = key;
    })
    .await;
    app.address = format!("https://127.0.0.1:{}", app.port);
    app.http = tls_client(&files.root, false);
    app
}

#[tokio::test]
async fn over_tls_the_gateway_speaks_http1_and_http2_and_refuses_plain_http() {
    let files = tls_files();
    let app = tls_app(&files).await;
    let url = format!("https://127.0.0.1:{}/healthz", app.port);

    let res = tls_client(&files.root, true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), reqwest::Version::HTTP_11);

    let res = tls_client(&files.root, false)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.version(),
        reqwest::Version::HTTP_2,
        "ALPN should negotiate HTTP/2"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");

    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", app.port))
        .timeout(Duration::from_secs(20))
        .send()
        .await;
    assert!(
        plain.as_ref().is_err() || !plain.as_ref().unwrap().status().is_success(),
        "plain HTTP was answered on the TLS port: {plain:?}"
    );
    // An untrusting client refuses the self-signed certificate.
    let other_root = tls_files().root;
    let res = tls_client(&other_root, true).get(&url).send().await;
    assert!(res.is_err(), "a certificate from another root was accepted");
    // The server keeps serving TLS after both.
    let res = tls_client(&files.root, true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_handshake_and_its_session_work_end_to_end_over_tls() {
    let files = tls_files();
    let app = tls_app(&files).await;
    seed(&app).await;
    let res = app.handshake(&app.token().sign(), "sales").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("Secure"), "{set_cookie}");
    let cookie = session_cookie(&res).unwrap();
    assert_eq!(res.headers()["location"], "/embed/workbooks/sales");
    let me = app
        .get_with_cookie("/embed/workbooks/sales/_api/me", &cookie)
        .await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["email"], "ana@acme.example");
    // Over HTTP/1.1 too, with the same cookie.
    let res = tls_client(&files.root, true)
        .get(app.url("/embed/workbooks/sales"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
}

// ---------------------------------------------------------------------------
// 5. Security headers
// ---------------------------------------------------------------------------

fn header_of(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn every_response_says_nosniff() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    let bearer = format!("Bearer {}", app.admin_token);
    let c = &app.http;
    let u = |p: &str| app.url(p);
    let requests: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("healthz", c.get(u("/healthz"))),
        ("readyz", c.get(u("/readyz"))),
        ("metrics", c.get(u("/metrics"))),
        ("jwks", c.get(u("/.well-known/jwks.json"))),
        ("unknown path", c.get(u("/nope"))),
        ("wrong method", c.post(u("/healthz"))),
        (
            "handshake 303",
            c.get(u(&format!(
                "/embed/workbooks/sales?jwt={}",
                app.token().sign()
            ))),
        ),
        (
            "handshake 401",
            c.get(u("/embed/workbooks/sales?jwt=x"))
                .header("Accept", "application/json"),
        ),
        (
            "handshake 401 html",
            c.get(u("/embed/workbooks/sales?jwt=x")),
        ),
        (
            "handshake 403",
            c.get(u(&format!(
                "/embed/workbooks/inventory?jwt={}",
                app.token().sign()
            ))),
        ),
        (
            "session 200",
            c.get(u("/embed/workbooks/sales")).header("Cookie", &cookie),
        ),
        (
            "directory 200",
            c.get(u("/embed/workbooks/sales/_api/me"))
                .header("Cookie", &cookie),
        ),
        (
            "session 404",
            c.get(u("/embed/workbooks/sales/nope"))
                .header("Cookie", &cookie),
        ),
        ("embed 404", c.get(u("/embed/nope"))),
        ("admin 401", c.get(u("/admin/api/users"))),
        (
            "admin 200",
            c.get(u("/admin/api/users"))
                .header("Authorization", &bearer),
        ),
        (
            "admin 404",
            c.get(u("/admin/api/nope")).header("Authorization", &bearer),
        ),
        (
            "admin 400",
            c.post(u("/admin/api/teams"))
                .header("Authorization", &bearer)
                .header("Content-Type", "application/json")
                .body("{not json"),
        ),
        ("openapi", c.get(u("/admin/api/openapi.json"))),
        ("console login page", c.get(u("/admin/login"))),
        ("console redirect", c.get(u("/admin/"))),
    ];
    for (what, request) in requests {
        let res = request.send().await.unwrap();
        assert_eq!(
            header_of(&res, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{what} ({})",
            res.status()
        );
    }
}

#[tokio::test]
async fn handshakes_and_embed_errors_are_no_store_and_no_referrer_in_json_and_html() {
    let app = spawn_app_with(|c| c.limits.failed_handshakes_per_minute = 2).await;
    seed(&app).await;
    let check = |res: &reqwest::Response, what: &str| {
        assert_eq!(
            header_of(res, "cache-control").as_deref(),
            Some("no-store"),
            "{what}"
        );
        assert_eq!(
            header_of(res, "referrer-policy").as_deref(),
            Some("no-referrer"),
            "{what}"
        );
    };
    let res = app.handshake(&app.token().sign(), "sales").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    check(&res, "303");
    let location = header_of(&res, "location").unwrap();
    assert!(!location.contains("jwt"), "{location}");
    let cookie = session_cookie(&res).unwrap();
    let html = |path: &str| app.http.get(app.url(path)).send();
    for (what, res, status) in [
        (
            "html 401 malformed",
            html("/embed/workbooks/sales?jwt=x").await,
            401,
        ),
        (
            "html 401 missing",
            html("/embed/workbooks/sales").await,
            401,
        ),
        (
            "html 403",
            html(&format!(
                "/embed/workbooks/inventory?jwt={}",
                app.token().sign()
            ))
            .await,
            403,
        ),
        ("html 404", html("/embed/other").await, 404),
        (
            "html session 401",
            app.http
                .get(app.url("/embed/workbooks/sales"))
                .header("Cookie", format!("{cookie}x"))
                .send()
                .await,
            401,
        ),
        ("json 429", Ok(app.handshake("x", "sales").await), 429),
        ("html 429", html("/embed/workbooks/sales?jwt=x").await, 429),
    ] {
        let res = res.unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(res.status().as_u16(), status, "{what}");
        check(&res, what);
        assert!(res.headers().get("set-cookie").is_none(), "{what}");
    }
}

#[tokio::test]
async fn content_and_the_directory_carry_the_clients_frame_ancestors() {
    let app = spawn_app().await;
    seed(&app).await;
    let cookie = app.open(&app.token().sign(), "sales").await;
    for path in [
        "/embed/workbooks/sales",
        "/embed/workbooks/sales?tag=v2",
        "/embed/workbooks/sales/pages/summary",
        "/embed/workbooks/sales/_api/me",
        "/embed/workbooks/sales/_api/teams",
    ] {
        let res = app.get_with_cookie(path, &cookie).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header_of(&res, "content-security-policy").as_deref(),
            Some(format!("frame-ancestors {ACME_ORIGIN}").as_str()),
            "{path}"
        );
    }
    // A client with no allowed origins may not be framed at all.
    let globex = app
        .open(&TokenBuilder::globex(app.clock.unix()).sign(), "inventory")
        .await;
    let res = app
        .get_with_cookie("/embed/workbooks/inventory/_api/me", &globex)
        .await;
    assert_eq!(
        header_of(&res, "content-security-policy").as_deref(),
        Some("frame-ancestors 'none'")
    );
}

// ---------------------------------------------------------------------------
// 6. Logs never contain secrets
// ---------------------------------------------------------------------------

/// The wall clock: the binary verifies tokens against the real time.
#[allow(clippy::disallowed_methods)]
fn real_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The binary, run in `dir` with no `EMBEDGATE*` variables inherited.
fn embedgate(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_embedgate"));
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("EMBEDGATE") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn write_config(dir: &Path) -> PathBuf {
    let file = dir.join("embedgate.toml");
    let toml = format!(
        r#"[server]
bind = "127.0.0.1:0"
public_url = "http://127.0.0.1:8080"
workers = 2
shutdown_timeout_secs = 1

[database]
url = "sqlite://{db}"

[keys]
dir = "{keys}"

[content]
templates_dir = "{templates}"
data_dir = "{data}"

[limits]
failed_handshakes_per_minute = 0
"#,
        db = dir.join("embedgate.db").display(),
        keys = dir.join("keys").display(),
        templates = repo_path("templates").display(),
        data = repo_path("data").display(),
    );
    std::fs::write(&file, toml).unwrap();
    file
}

/// A `serve` process with its logs going to files; killed on drop.
struct Served {
    child: std::process::Child,
    port: u16,
    stderr: PathBuf,
    stdout: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn logs(&self) -> String {
        format!(
            "{}\n{}",
            std::fs::read_to_string(&self.stderr).unwrap_or_default(),
            std::fs::read_to_string(&self.stdout).unwrap_or_default()
        )
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The port the serving process printed in its "embedgate is serving" line.
fn served_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.contains("embedgate is serving"))?;
    let at = line
        .find("port=")
        .map(|i| i + 5)
        .or_else(|| line.find("\"port\":").map(|i| i + 7))?;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

async fn serve(dir: &Path, config: &Path, rust_log: &str, format: &str) -> Served {
    let stderr = dir.join("stderr.log");
    let stdout = dir.join("stdout.log");
    let child = embedgate(dir)
        .args(["--config"])
        .arg(config)
        .args(["--log-format", format, "serve"])
        .env("RUST_LOG", rust_log)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("the binary starts");
    let mut served = Served {
        child,
        port: 0,
        stderr,
        stdout,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(port) = served_port(&served.logs()) {
            served.port = port;
            break;
        }
        if let Ok(Some(status)) = served.child.try_wait() {
            panic!("serve exited with {status}: {}", served.logs());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve did not start: {}",
            served.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let http = reqwest::Client::new();
    loop {
        let up = http
            .get(format!("{}/healthz", served.base()))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "serve never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    served
}

/// Drives a real `serve` process through sign-in, admin calls, good and bad
/// handshakes and session requests; returns every secret it used, labelled.
async fn exercise(served: &Served, admin_token: &str) -> Vec<(String, String)> {
    let base = served.base();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut secrets: Vec<(String, String)> = vec![("the admin token".into(), admin_token.into())];

    // The console sign-in, and a page with its cookie.
    let res = http
        .post(format!("{base}/admin/login"))
        .form(&[("token", admin_token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "console sign-in");
    let console = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("embedgate_admin="))
        .expect("a console cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let console_value = console.split_once('=').unwrap().1.to_owned();
    secrets.push(("the console cookie".into(), console_value));
    let res = http
        .get(format!("{base}/admin/"))
        .header("Cookie", &console)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "console page");

    // The admin API: a team, a workbook, a grant, a client.
    let admin = |method: Method, path: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{base}/admin/api{path}"))
            .bearer_auth(admin_token)
            .header("X-Request-Id", "logs-admin-call");
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    for (path, body) in [
        ("/teams", json!({"name": "acme-analysts"})),
        (
            "/workbooks",
            json!({"id": "sales", "name": "Sales", "source": {"type": "template", "template": "sales.html", "dataset": "sales.csv", "company_field": "company"}}),
        ),
        (
            "/grants",
            json!({"team": "acme-analysts", "workbook": "sales", "level": "view"}),
        ),
    ] {
        let res = admin(Method::POST, path, Some(body)).await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "POST {path}");
    }
    let created: Value = admin(
        Method::POST,
        "/clients",
        Some(json!({"client_id": "acme-host", "name": "Acme", "allowed_origins": [ACME_ORIGIN]})),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let secret = created["secret"]
        .as_str()
        .expect("a generated secret")
        .to_owned();
    secrets.push(("the client secret".into(), secret.clone()));

    let now = real_now();
    let token = || TokenBuilder::new("acme-host", &secret, now);
    let mut sent: Vec<(&str, String)> = Vec::new();
    let handshake = |query: String| {
        http.get(format!("{base}/embed/workbooks/sales?{query}"))
            .header("Accept", "application/json")
            .send()
    };

    // A good handshake, then its session.
    let good = token().sign();
    let res = handshake(format!("jwt={good}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the good handshake");
    let cookie = session_cookie(&res).expect("a session cookie");
    secrets.push((
        "the session cookie".into(),
        cookie.split_once('=').unwrap().1.to_owned(),
    ));
    sent.push(("the good token", good.clone()));
    for path in ["", "/_api/me", "/pages/summary"] {
        let res = http
            .get(format!("{base}/embed/workbooks/sales{path}"))
            .header("Cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "session request {path}");
    }
    // The `:jwt` alias.
    let alias = token().sign();
    let res = handshake(format!("%3Ajwt={alias}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "the :jwt handshake");
    sent.push(("the :jwt token", alias));

    // Failed handshakes.
    let bad_signature = token().secret(ACME_SECRET).sign();
    let expired = token()
        .claim("iat", json!(now - 1000))
        .claim("exp", json!(now - 500))
        .sign();
    let malformed_base = token().sign();
    let malformed = format!("{malformed_base}.extra");
    let too_large = token().claim("x_pad", json!("p".repeat(9000))).sign();
    for (label, t, code) in [
        (
            "the bad-signature token",
            bad_signature,
            "token_bad_signature",
        ),
        ("the expired token", expired, "token_expired"),
        ("the replayed token", good.clone(), "token_replayed"),
        ("the malformed token", malformed, "token_malformed"),
        ("the too-large token", too_large, "token_too_large"),
    ] {
        let res = handshake(format!("theme=dark&jwt={t}")).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{label}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{label}");
        sent.push((label, t));
    }
    // Two tokens at once, and a token that fails after verification (403).
    let (one, two) = (token().sign(), token().sign());
    let res = handshake(format!("jwt={one}&jwt={two}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    sent.push(("the first of two tokens", one));
    sent.push(("the second of two tokens", two));
    let denied = token()
        .claim("teams", json!(["no-such-team"]))
        .email("dan@acme.example")
        .sign();
    let res = handshake(format!("jwt={denied}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    sent.push(("the denied token", denied));

    // The admin API reading a token (the inspector) and listing users.
    let inspected = token().sign();
    let res = admin(
        Method::POST,
        "/tokens/inspect",
        Some(json!({ "token": inspected })),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "inspect");
    sent.push(("the inspected token", inspected));
    let res = admin(Method::GET, "/users", None).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "list users");
    // An admin call with a wrong token (the wrong token is a secret too).
    let wrong = "egadm_wrong-but-secret-0123456789abcdefghij";
    let res = http
        .get(format!("{base}/admin/api/users"))
        .bearer_auth(wrong)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    secrets.push(("a wrong admin token".into(), wrong.into()));

    for (label, t) in sent {
        let parts: Vec<&str> = t.split('.').collect();
        secrets.push((label.to_owned(), t.clone()));
        secrets.push((format!("{label}'s payload segment"), parts[1].to_owned()));
        secrets.push((format!("{label}'s signature segment"), parts[2].to_owned()));
    }
    secrets
}

/// Runs the binary at `rust_log` in `format`, exercises it and returns the
/// logs, asserting that none of the secrets appears in them.
async fn logs_at(rust_log: &str, format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let out = embedgate(dir.path())
        .args(["--config"])
        .arg(&config)
        .args(["admin-token", "create", "--name", "logs"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let admin_token = stdout.lines().last().unwrap().trim().to_owned();

    let served = serve(dir.path(), &config, rust_log, format).await;
    let secrets = exercise(&served, &admin_token).await;
    // Let the last request lines reach the file, then stop the process.
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(served);
    let log = format!(
        "{}\n{}",
        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap(),
        std::fs::read_to_string(dir.path().join("stdout.log")).unwrap()
    );

    let mut leaks = Vec::new();
    for (label, secret) in &secrets {
        assert!(secret.len() >= 16, "{label} is too short to search for");
        if let Some(line) = log.lines().find(|l| l.contains(secret.as_str())) {
            let shown: String = line.chars().take(400).collect();
            leaks.push(format!("{label} appears in: {shown}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "RUST_LOG={rust_log} --log-format {format}: {} secret(s) in the logs:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    // What may be logged is there: the client id and the jti of a used
    // token (so the search above ran over the right, non-empty log).
    assert!(
        log.contains("acme-host") && log.contains("jti-"),
        "the log has no client id or jti"
    );
    assert!(
        !log.contains("jwt=ey"),
        "a query string with a token is in the logs"
    );
    log
}

#[tokio::test]
async fn debug_logs_have_request_lines_and_no_secrets() {
    let log = logs_at("debug", "text").await;
    let request_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request_id=") && l.contains("/embed/workbooks/sales"))
        .collect();
    assert!(
        request_lines.len() >= 10,
        "too few request lines in the log:\n{log}"
    );
    assert!(
        log.contains("status=303") && log.contains("status=401"),
        "the request lines carry no status:\n{log}"
    );
    assert!(
        log.contains("logs-admin-call"),
        "the given X-Request-Id is not logged"
    );
}

#[tokio::test]
async fn json_logs_are_json_lines_with_a_request_id_and_no_secrets() {
    let log = logs_at("debug", "json").await;
    let mut requests = 0;
    let mut given_id = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        if v["message"] == "request" || v["fields"]["message"] == "request" {
            let id = v["request_id"]
                .as_str()
                .or_else(|| v["span"]["request_id"].as_str())
                .unwrap_or_default();
            assert!(!id.is_empty(), "a request line without request_id: {line}");
            given_id |= id == "logs-admin-call";
            requests += 1;
        }
    }
    assert!(requests >= 10, "too few request lines:\n{log}");
    assert!(
        given_id,
        "no request line carries the X-Request-Id the client sent"
    );
}

#[tokio::test]
async fn trace_logs_of_every_crate_have_no_secrets() {
    let log = logs_at("trace", "text").await;
    assert!(
        log.lines().any(|l| l.contains("request_id=")),
        "no request lines at trace level"
    );
}

// ---------------------------------------------------------------------------
// 7. Abuse limits
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_request_head_over_the_limit_is_refused_and_the_server_keeps_serving() {
    let app = seeded_app().await;
    let big_header = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    let many_headers = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\n{}Connection: close\r\n\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let big_cookie = format!(
        "GET /embed/workbooks/sales HTTP/1.1\r\nHost: x\r\nCookie: embedgate_session={}\r\nConnection: close\r\n\r\n",
        "c".repeat(200 * 1024)
    );
    for (what, request) in [
        ("a 256 KiB header", big_header),
        ("500 headers", many_headers),
        ("a 200 KiB cookie", big_cookie),
    ] {
        let res = raw_request(app.port, request.as_bytes())
            .await
            .unwrap_or_else(|| panic!("{what}: the connection closed without an answer"));
        assert_eq!(res.status, 431, "{what}: {}", res.head);
        assert!(res.header("set-cookie").is_none(), "{what}");
        let ok = app.get("/healthz").await;
        assert_eq!(ok.status(), StatusCode::OK, "after {what}");
    }
    assert_eq!(try_on(&app, &app.token().sign(), "sales").await, "303");
}

#[tokio::test]
async fn an_admin_body_over_1_mib_is_refused_and_creates_nothing() {
    let app = seeded_app().await;
    let before = app.admin().get("/teams").await;
    let big = json!({"name": "big-team", "description": "d".repeat(1_100_000)}).to_string();
    let res = app
        .http
        .post(app.url("/admin/api/teams"))
        .bearer_auth(&app.admin_token)
        .header("Content-Type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert!(
        status == 400 || status == 413,
        "a body over 1 MiB got {status}"
    );
    // The same body streamed without a Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .as_bytes()
        .chunks(64 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let res = app
        .http
        .post(app.url("/admin/api/teams"))
        .bearer_auth(&app.admin_token)
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    if let Ok(res) = res {
        let status = res.status().as_u16();
        assert!(
            status == 400 || status == 413,
            "a streamed body over 1 MiB got {status}"
        );
    }
    // 10 000 levels of nesting is a 400, not a crash.
    let deep = format!(
        "{{\"name\":\"deep-team\",\"description\":{}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let res = app
        .http
        .post(app.url("/admin/api/teams"))
        .bearer_auth(&app.admin_token)
        .header("Content-Type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400, "deeply nested admin body");
    assert_eq!(
        app.admin().get("/teams").await,
        before,
        "a team was created"
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

/// Connects and sends `first` (maybe nothing); the server must close the
/// connection on its own. Returns whether it did within the deadline.
async fn closed_by_server(port: u16, first: &[u8]) -> bool {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    if !first.is_empty() {
        stream.write_all(first).await.unwrap();
    }
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // A 408 or similar before the close is fine.
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .is_ok()
}

#[tokio::test]
async fn a_client_that_sends_nothing_or_half_a_head_is_disconnected() {
    let app = spawn_app().await;
    let (silent, half) = tokio::join!(
        closed_by_server(app.port, b""),
        closed_by_server(app.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
    );
    assert!(silent, "a silent connection stayed open for 30 s");
    assert!(
        half,
        "a connection with half a request head stayed open for 30 s"
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_raw_helpers_see_what_a_browser_would() {
    // Keeps the raw request helper honest: a plain request gets the answer
    // a normal client gets.
    let app = seeded_app().await;
    let res = raw_get(app.port, "/healthz", "").await;
    assert_eq!(res.status, 200, "{}", res.head);
    assert_eq!(
        res.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let res = raw_get(app.port, "/embed/workbooks/sales?jwt=x", "").await;
    assert_eq!((res.status, res.code().as_str()), (401, "token_malformed"));
}
