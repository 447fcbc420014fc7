//! Names and ids chosen by people: embed client ids, workbook ids, team
//! names, tags and user attributes, each with the one rule it must follow.

use super::Attributes;
use std::fmt;

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

fn check_id(kind: &str, raw: &str, max: usize, extra_ok: fn(char) -> bool) -> Result<(), String> {
    if raw.is_empty() || raw.len() > max {
        return Err(format!("{kind} must be 1 to {max} characters long"));
    }
    if !raw.chars().all(extra_ok) {
        return Err(format!(
            "{kind} may contain only letters, digits, '_', '-' and '.'"
        ));
    }
    if raw == "." || raw == ".." {
        return Err(format!("{kind} may not be '.' or '..'"));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// For values read back from our own storage, which only holds
            /// parsed values.
            pub fn from_trusted(stored: String) -> Self {
                Self(stored)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype!(
    /// The id of an embed client: the `kid` of its tokens.
    ClientId
);
string_newtype!(
    /// A workbook id, safe as one URL path segment.
    WorkbookId
);
string_newtype!(
    /// A team's name, unique across the gateway.
    TeamName
);
string_newtype!(
    /// The name of a tagged version of a workbook.
    TagName
);
string_newtype!(
    /// The name of a user attribute: `[A-Za-z0-9_]{1,64}`.
    AttributeName
);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_id("a client id", raw, 64, is_id_char)?;
        Ok(Self(raw.to_owned()))
    }
}

impl WorkbookId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_id("a workbook id", raw, 64, is_id_char)?;
        Ok(Self(raw.to_owned()))
    }
}

impl TagName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_id("a tag", raw, 64, is_id_char)?;
        Ok(Self(raw.to_owned()))
    }
}

pub const MAX_TEAM_NAME_LEN: usize = 255;

impl TeamName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.chars().count() > MAX_TEAM_NAME_LEN {
            return Err(format!(
                "a team name must be 1 to {MAX_TEAM_NAME_LEN} characters long"
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err("a team name may not contain control characters".into());
        }
        if raw.trim() != raw {
            return Err("a team name may not start or end with white space".into());
        }
        Ok(Self(raw.to_owned()))
    }
}

impl AttributeName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty()
            || raw.len() > 64
            || !raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "the attribute name {raw:?} must match [A-Za-z0-9_]{{1,64}}"
            ));
        }
        Ok(Self(raw.to_owned()))
    }
}

pub const MAX_ATTRIBUTES: usize = 50;
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 1024;

/// Checks a JSON object as user attributes.
pub fn parse_attributes(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<Attributes, String> {
    if object.len() > MAX_ATTRIBUTES {
        return Err(format!(
            "there are {} user attributes; at most {MAX_ATTRIBUTES} are allowed",
            object.len()
        ));
    }
    let mut out = Attributes::new();
    for (name, value) in object {
        AttributeName::parse(name)?;
        let serde_json::Value::String(value) = value else {
            return Err(format!("the attribute {name:?} must be a string"));
        };
        check_attribute_value(name, value)?;
        out.insert(name.clone(), value.clone());
    }
    Ok(out)
}

pub fn check_attribute_value(name: &str, value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_ATTRIBUTE_VALUE_LEN {
        return Err(format!(
            "the attribute {name:?} is longer than {MAX_ATTRIBUTE_VALUE_LEN} characters"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(format!(
            "the attribute {name:?} contains control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_allow_url_safe_characters_only() {
        assert!(WorkbookId::parse("sales-2026_q1.v2").is_ok());
        for bad in ["", "..", ".", "a/b", "a%2Fb", "a b", "é", &"x".repeat(65)] {
            assert!(WorkbookId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ClientId::parse("acme-host").is_ok());
        assert!(ClientId::parse("../etc/passwd").is_err());
    }

    #[test]
    fn team_names_are_trimmed_printable_text() {
        assert!(TeamName::parse("Acme Analysts").is_ok());
        assert!(TeamName::parse("").is_err());
        assert!(TeamName::parse(" padded").is_err());
        assert!(TeamName::parse("tab\there").is_err());
        assert!(TeamName::parse(&"t".repeat(256)).is_err());
    }

    #[test]
    fn attributes_follow_the_claim_rules() {
        let ok = json!({"company": "acme", "region_1": "eu"});
        assert_eq!(parse_attributes(ok.as_object().unwrap()).unwrap().len(), 2);
        for bad in [
            json!({"bad-name": "x"}),
            json!({"company": 1}),
            json!({"company": "a\u{7}b"}),
            json!({"company": "x".repeat(1025)}),
            json!({ "x".repeat(65): "y" }),
        ] {
            assert!(parse_attributes(bad.as_object().unwrap()).is_err(), "{bad}");
        }
        let many: serde_json::Map<_, _> = (0..51).map(|i| (format!("a{i}"), json!("v"))).collect();
        assert!(parse_attributes(&many).is_err());
    }
}
