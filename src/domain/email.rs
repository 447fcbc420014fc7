//! [`Email`]: the identity of a user across the whole gateway.

use std::fmt;

/// A lower-cased, syntactically plain email address.
///
/// Deliberately strict: ASCII only, no white space or control characters,
/// exactly one `@`, a non-empty local part and a dotted domain. Look-alike
/// characters (dotless i, Kelvin sign, fullwidth letters, zero-width space)
/// are all non-ASCII and are refused rather than folded, so they can never
/// reach another user's account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Email(String);

pub const MAX_EMAIL_LEN: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("the email is empty".into());
        }
        if raw.len() > MAX_EMAIL_LEN {
            return Err(format!(
                "the email is longer than {MAX_EMAIL_LEN} characters"
            ));
        }
        if !raw.is_ascii() {
            return Err("the email contains non-ASCII characters".into());
        }
        if raw
            .chars()
            .any(|c| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return Err("the email contains white space or control characters".into());
        }
        let mut parts = raw.split('@');
        let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err("the email must contain exactly one '@'".into());
        };
        if local.is_empty() {
            return Err("the email has nothing before the '@'".into());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
            return Err("the email's domain must be a dotted name such as example.com".into());
        }
        Ok(Email(raw.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For values read back from our own storage, which only ever holds
    /// parsed emails.
    pub fn from_trusted(stored: String) -> Self {
        Email(stored)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_emails_are_lower_cased() {
        assert_eq!(
            Email::parse("Ana@Acme.COM").unwrap().as_str(),
            "ana@acme.com"
        );
        assert_eq!(
            Email::parse("first.last+tag@sub.example.co")
                .unwrap()
                .as_str(),
            "first.last+tag@sub.example.co"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "no-at-sign.example.com",
            "two@@example.com",
            "a@b@example.com",
            "@example.com",
            "ana@localhost",
            "ana@example.",
            "ana@.example.com",
            "ana@example..com",
            "ana @example.com",
            "ana@example.com\n",
            "ana\t@example.com",
            "ana\u{0}@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn look_alike_characters_are_refused_not_folded() {
        for bad in [
            "ana@examp\u{131}e.com",   // dotless i
            "\u{212a}im@example.com",  // Kelvin sign
            "\u{ff41}na@example.com",  // fullwidth a
            "ana\u{200b}@example.com", // zero-width space
            "\u{430}na@example.com",   // Cyrillic a
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn overly_long_emails_are_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
