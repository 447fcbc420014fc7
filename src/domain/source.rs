//! [`WorkbookSource`]: where a workbook's content comes from (SPEC §6).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A workbook (or one of its tags) is either rendered from a template or
/// proxied from an upstream server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum WorkbookSource {
    Template {
        /// A file under `templates/workbooks/`.
        template: String,
        /// A CSV or JSON file under `data_dir`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dataset: Option<String>,
        /// The dataset column compared with the user's company.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        company_field: Option<String>,
    },
    Upstream {
        url: String,
    },
}

/// A relative file name that stays inside its folder.
fn check_relative_file(kind: &str, name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'));
    let ok_segments = name
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if name.is_empty() || name.len() > 255 || !ok_chars || !ok_segments {
        return Err(format!(
            "the {kind} {name:?} must be a relative file name (letters, digits, '_', '-', '.', '/') without '..'"
        ));
    }
    Ok(())
}

impl WorkbookSource {
    /// Checks the names and URL; existence of files is checked by the caller.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            WorkbookSource::Template {
                template,
                dataset,
                company_field,
            } => {
                check_relative_file("template", template)?;
                if let Some(d) = dataset {
                    check_relative_file("dataset", d)?;
                    if !(d.ends_with(".csv") || d.ends_with(".json")) {
                        return Err(format!("the dataset {d:?} must be a .csv or .json file"));
                    }
                }
                if let Some(field) = company_field
                    && (field.is_empty() || field.len() > 64)
                {
                    return Err("company_field must be 1 to 64 characters long".into());
                }
                Ok(())
            }
            WorkbookSource::Upstream { url } => match url::Url::parse(url) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.username().is_empty()
                        && u.password().is_none()
                        && u.query().is_none()
                        && u.fragment().is_none() =>
                {
                    Ok(())
                }
                _ => Err(format!(
                    "the upstream url {url:?} must be an absolute http(s) URL without credentials, query or fragment"
                )),
            },
        }
    }

    /// The dataset column that company separation filters on, if any.
    pub fn company_field(&self) -> Option<&str> {
        match self {
            WorkbookSource::Template { company_field, .. } => company_field.as_deref(),
            WorkbookSource::Upstream { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<WorkbookSource, String> {
        let s: WorkbookSource = serde_json::from_value(v).map_err(|e| e.to_string())?;
        s.validate().map(|_| s)
    }

    #[test]
    fn sources_parse_from_the_contract_shapes() {
        assert!(parse(json!({"type": "template", "template": "sales.html", "dataset": "sales.csv", "company_field": "company_id"})).is_ok());
        assert!(parse(json!({"type": "template", "template": "sales.html"})).is_ok());
        assert!(parse(json!({"type": "upstream", "url": "http://127.0.0.1:9000/app"})).is_ok());
    }

    #[test]
    fn unsafe_or_unknown_sources_are_refused() {
        for bad in [
            json!({"type": "template", "template": "../secret.html"}),
            json!({"type": "template", "template": "/etc/passwd"}),
            json!({"type": "template", "template": "a.html", "dataset": "x.txt"}),
            json!({"type": "template", "template": "a.html", "extra": 1}),
            json!({"type": "upstream", "url": "file:///etc/passwd"}),
            json!({"type": "upstream", "url": "http://user:pw@host/app"}),
            json!({"type": "upstream", "url": "/relative"}),
            json!({"type": "ftp", "url": "x"}),
        ] {
            assert!(parse(bad.clone()).is_err(), "{bad}");
        }
    }
}
