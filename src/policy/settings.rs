//! Runtime settings (SPEC §8): changed by admins while the gateway runs,
//! stored in the database and shared by all instances.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The runtime settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    #[schema(required = true)]
    pub auto_provisioning: bool,
    #[schema(required = true)]
    pub default_account_type: String,
    #[schema(required = true)]
    pub company_separation: CompanySeparation,
}

/// Company separation: users see only their company's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CompanySeparation {
    #[schema(required = true)]
    pub enabled: bool,
    /// The user attribute that holds the user's company.
    #[schema(required = true)]
    pub attribute: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            auto_provisioning: true,
            default_account_type: "Viewer".into(),
            company_separation: CompanySeparation::default(),
        }
    }
}

impl Default for CompanySeparation {
    fn default() -> Self {
        CompanySeparation {
            enabled: false,
            attribute: "company".into(),
        }
    }
}

/// A `PATCH /admin/api/settings` body: any subset, nested objects merged.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub auto_provisioning: Option<bool>,
    pub default_account_type: Option<String>,
    pub company_separation: Option<CompanySeparationPatch>,
}

/// Changes to company separation: any subset of the fields.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompanySeparationPatch {
    pub enabled: Option<bool>,
    pub attribute: Option<String>,
}

impl Settings {
    pub fn patched(&self, patch: &SettingsPatch) -> Settings {
        let mut out = self.clone();
        if let Some(v) = patch.auto_provisioning {
            out.auto_provisioning = v;
        }
        if let Some(v) = &patch.default_account_type {
            out.default_account_type = v.clone();
        }
        if let Some(cs) = &patch.company_separation {
            if let Some(v) = cs.enabled {
                out.company_separation.enabled = v;
            }
            if let Some(v) = &cs.attribute {
                out.company_separation.attribute = v.clone();
            }
        }
        out
    }

    /// What changed, as `name: old → new` lines for the audit log.
    pub fn diff(&self, new: &Settings) -> Vec<String> {
        let mut out = Vec::new();
        if self.auto_provisioning != new.auto_provisioning {
            out.push(format!(
                "auto_provisioning: {} -> {}",
                self.auto_provisioning, new.auto_provisioning
            ));
        }
        if self.default_account_type != new.default_account_type {
            out.push(format!(
                "default_account_type: {} -> {}",
                self.default_account_type, new.default_account_type
            ));
        }
        if self.company_separation.enabled != new.company_separation.enabled {
            out.push(format!(
                "company_separation.enabled: {} -> {}",
                self.company_separation.enabled, new.company_separation.enabled
            ));
        }
        if self.company_separation.attribute != new.company_separation.attribute {
            out.push(format!(
                "company_separation.attribute: {} -> {}",
                self.company_separation.attribute, new.company_separation.attribute
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_merge_nested_objects() {
        let s = Settings::default();
        let patch: SettingsPatch =
            serde_json::from_str(r#"{"company_separation": {"enabled": true}}"#).unwrap();
        let new = s.patched(&patch);
        assert!(new.company_separation.enabled);
        assert_eq!(new.company_separation.attribute, "company");
        assert!(new.auto_provisioning);
        assert_eq!(s.diff(&new), ["company_separation.enabled: false -> true"]);
    }

    #[test]
    fn unknown_setting_names_are_refused() {
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"auto_provision": false}"#).is_err());
        assert!(serde_json::from_str::<SettingsPatch>(r#"{"auto_provisioning": "no"}"#).is_err());
    }
}
