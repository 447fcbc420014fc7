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

/// A signing key for identity assertions.
pub struct AssertionKey {
    pub kid: String,
    pub encoding: EncodingKey,
    pub public: Jwk,
}

pub struct KeyRing {
    pub session: cookie::Key,
    pub assertion: AssertionKey,
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

impl KeyRing {
    /// Loads the keys from `dir`, generating the missing ones.
    pub fn load_or_generate(dir: &Path) -> anyhow::Result<KeyRing> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        restrict(dir, 0o700).with_context(|| format!("restricting {}", dir.display()))?;

        let session_b64 = load_or_create(dir, SESSION_KEY_FILE, new_session_key)?;
        let session_bytes = STANDARD
            .decode(String::from_utf8_lossy(&session_b64).trim())
            .context("keys/session.key is not base64")?;
        let session = cookie::Key::try_from(session_bytes.as_slice())
            .map_err(|_| anyhow::anyhow!("keys/session.key must hold at least 64 bytes"))?;

        let pem_bytes = load_or_create(dir, ASSERTION_KEY_FILE, new_assertion_key)?;
        let encoding = EncodingKey::from_ec_pem(&pem_bytes).context("keys/assertion-es256.pem")?;
        let mut public = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
            .context("deriving the assertion public key")?;
        let kid = sha256_hex(&pem_bytes)[..16].to_owned();
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        public.common.key_algorithm = Some(KeyAlgorithm::ES256);
        Ok(KeyRing {
            session,
            assertion: AssertionKey {
                kid,
                encoding,
                public,
            },
        })
    }

    /// The public keys of `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.assertion.public.clone()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyRing::load_or_generate(dir.path()).unwrap();
        let second = KeyRing::load_or_generate(dir.path()).unwrap();
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
}
