//! Small wrappers over aws-lc-rs (the one crypto backend): random secrets
//! and SHA-256. No cryptography is implemented here.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` bytes from the operating system's CSPRNG.
pub fn random_bytes(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(buf)
}

/// A random URL-safe string of `bytes` random bytes, with a prefix that says
/// what it is (for example `egs_` for a client secret).
pub fn random_token(prefix: &str, bytes: usize) -> anyhow::Result<String> {
    Ok(format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(random_bytes(bytes)?)
    ))
}

pub fn sha256_hex(data: &[u8]) -> String {
    digest::digest(&digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let a = random_token("egs_", 32).unwrap();
        let b = random_token("egs_", 32).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("egs_") && a.len() == 4 + 43);
    }

    #[test]
    fn sha256_matches_a_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
