//! The gateway's own key material, in `[keys].dir`: the session key (HMAC
//! of session cookies) and the ES256 key that signs identity assertions for
//! upstream workbooks. Both are generated on first start (files `0600` in a
//! `0700` folder) and reused after, so sessions survive restarts; instances
//! of a cluster share the folder.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey};

use crate::crypto::{random_bytes, sha256_hex};

const SESSION_KEY_FILE: &str = "session.key";
const ASSERTION_KEY_FILE: &str = "assertion-es256.pem";
const RETIRED_PREFIX: &str = "assertion-es256.";
const RETIRED_SUFFIX: &str = ".retired.pem";
/// How long a retired assertion key stays in the JWKS: far longer than the
/// 60 s an assertion lives, so no upstream sees an unknown `kid`.
pub const RETIRED_LISTED_SECS: i64 = 3600;

/// A signing key for identity assertions.
pub struct AssertionKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub public: Jwk,
}

pub struct KeyRing {
    pub session: cookie::Key,
    /// Signs the admin console's cookie; derived from the session key so
    /// that neither cookie can ever pass for the other.
    pub console: cookie::Key,
    pub assertion: AssertionKey,
    /// Public keys of recently retired assertion keys, still in the JWKS.
    pub retired: Vec<Jwk>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("assertion_kid", &self.assertion.kid)
            .finish_non_exhaustive()
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_: &Path, _: u32) -> std::io::Result<()> {
    Ok(())
}

/// Writes `contents` to a new file only readable by us; if another instance
/// created it first, its contents win and are returned.
fn create_once(path: &Path, contents: &[u8]) -> anyhow::Result<Vec<u8>> {
    let tmp: PathBuf = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f =
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        restrict(&tmp, 0o600)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    // hard_link fails if the target exists: the first writer wins atomically.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(contents.to_vec()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(fs::read(path)?),
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}

fn load_or_create(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "generating gateway key");
            create_once(&path, &make()?)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn new_session_key() -> anyhow::Result<Vec<u8>> {
    Ok(STANDARD.encode(random_bytes(64)?).into_bytes())
}

fn new_assertion_key() -> anyhow::Result<Vec<u8>> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| anyhow::anyhow!("generating the ES256 key failed"))?;
    let der = pair
        .to_pkcs8v1()
        .map_err(|_| anyhow::anyhow!("encoding the ES256 key failed"))?;
    Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref())).into_bytes())
}

fn assertion_key(pem_bytes: &[u8]) -> anyhow::Result<AssertionKey> {
    let encoding =
        EncodingKey::from_ec_pem(pem_bytes).context("the assertion key is not an EC PEM key")?;
    let mut public = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
        .context("deriving the assertion public key")?;
    let kid = sha256_hex(pem_bytes)[..16].to_owned();
    public.common.key_id = Some(kid.clone());
    public.common.public_key_use = Some(PublicKeyUse::Signature);
    public.common.key_algorithm = Some(KeyAlgorithm::ES256);
    Ok(AssertionKey {
        kid,
        encoding,
        public,
    })
}

/// The retirement time of a retired key file, from its name.
fn retired_at(name: &str) -> Option<i64> {
    name.strip_prefix(RETIRED_PREFIX)?
        .strip_suffix(RETIRED_SUFFIX)?
        .parse()
        .ok()
}

fn retired_keys(dir: &Path, now: i64) -> anyhow::Result<Vec<Jwk>> {
    let mut keys = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(at) = retired_at(&name) else {
            continue;
        };
        if now - at < RETIRED_LISTED_SECS {
            keys.push(assertion_key(&fs::read(entry.path())?)?.public);
        }
    }
    Ok(keys)
}

/// Retires the current assertion key and generates a new one. Restart the
/// gateway (every instance) to sign with it; the old public key stays in
/// the JWKS for [`RETIRED_LISTED_SECS`].
pub fn rotate_assertion_key(dir: &Path, now: i64) -> anyhow::Result<String> {
    let current = dir.join(ASSERTION_KEY_FILE);
    if current.exists() {
        fs::rename(
            &current,
            dir.join(format!("{RETIRED_PREFIX}{now}{RETIRED_SUFFIX}")),
        )
        .context("retiring the current assertion key")?;
    }
    let pem_bytes = load_or_create(dir, ASSERTION_KEY_FILE, new_assertion_key)?;
    Ok(assertion_key(&pem_bytes)?.kid)
}

/// A 64-byte key for another purpose, derived from `master` with
/// HMAC-SHA256 (two blocks, each bound to the purpose and its index).
fn derive(master: &cookie::Key, purpose: &[u8]) -> cookie::Key {
    use aws_lc_rs::hmac;
    let key = hmac::Key::new(hmac::HMAC_SHA256, master.master());
    let mut bytes = Vec::with_capacity(64);
    for block in [1u8, 2u8] {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(purpose);
        ctx.update(&[block]);
        bytes.extend_from_slice(ctx.sign().as_ref());
    }
    cookie::Key::from(&bytes)
}

impl KeyRing {
    /// Loads the keys from `dir`, generating the missing ones. `now` (Unix
    /// seconds) decides which retired assertion keys are still listed.
    pub fn load_or_generate(dir: &Path, now: i64) -> anyhow::Result<KeyRing> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        restrict(dir, 0o700).with_context(|| format!("restricting {}", dir.display()))?;

        let session_b64 = load_or_create(dir, SESSION_KEY_FILE, new_session_key)?;
        let session_bytes = STANDARD
            .decode(String::from_utf8_lossy(&session_b64).trim())
            .context("keys/session.key is not base64")?;
        let session = cookie::Key::try_from(session_bytes.as_slice())
            .map_err(|_| anyhow::anyhow!("keys/session.key must hold at least 64 bytes"))?;

        let pem_bytes = load_or_create(dir, ASSERTION_KEY_FILE, new_assertion_key)?;
        Ok(KeyRing {
            console: derive(&session, b"embedgate admin console v1"),
            session,
            assertion: assertion_key(&pem_bytes).context("keys/assertion-es256.pem")?,
            retired: retired_keys(dir, now)?,
        })
    }

    /// The public keys of `GET /.well-known/jwks.json`: the current one,
    /// then the recently retired ones.
    pub fn jwks(&self) -> JwkSet {
        let mut keys = vec![self.assertion.public.clone()];
        keys.extend(self.retired.iter().cloned());
        JwkSet { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyRing::load_or_generate(dir.path(), 0).unwrap();
        let second = KeyRing::load_or_generate(dir.path(), 0).unwrap();
        assert_eq!(first.session.master(), second.session.master());
        assert_eq!(first.assertion.kid, second.assertion.kid);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(SESSION_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let jwks = serde_json::to_value(first.jwks()).unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "EC");
        assert_eq!(jwks["keys"][0]["kid"], first.assertion.kid.as_str());
        assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    }

    #[test]
    fn a_retired_key_stays_in_the_jwks_for_an_hour() {
        let dir = tempfile::tempdir().unwrap();
        let old = KeyRing::load_or_generate(dir.path(), 1000).unwrap();
        let new_kid = rotate_assertion_key(dir.path(), 1000).unwrap();
        assert_ne!(new_kid, old.assertion.kid);
        let soon = KeyRing::load_or_generate(dir.path(), 1000 + 59).unwrap();
        let kids: Vec<_> = soon
            .jwks()
            .keys
            .iter()
            .map(|k| k.common.key_id.clone().unwrap())
            .collect();
        assert_eq!(kids, [new_kid.clone(), old.assertion.kid.clone()]);
        let later = KeyRing::load_or_generate(dir.path(), 1000 + RETIRED_LISTED_SECS).unwrap();
        assert_eq!(later.jwks().keys.len(), 1);
        assert_eq!(later.assertion.kid, new_kid);
    }
}
