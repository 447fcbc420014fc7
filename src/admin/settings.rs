//! `GET/PATCH /admin/api/settings`.

use super::{Actor, AdminResult, db};
use crate::audit::{self, Entry};
use crate::domain::AttributeName;
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::{Change, Settings, SettingsPatch};

pub fn get(gw: &Gateway) -> Settings {
    gw.policy.read().settings.clone()
}

pub async fn patch(gw: &Gateway, actor: &Actor, patch: SettingsPatch) -> AdminResult<Settings> {
    let guard = gw.policy.write_lock().await;
    let (old, new) = {
        let state = gw.policy.read();
        let new = state.settings.patched(&patch);
        if state.account_type(&new.default_account_type).is_none() {
            return Err(Problem::validation(format!(
                "default_account_type {:?} is not an account type",
                new.default_account_type
            )));
        }
        (state.settings.clone(), new)
    };
    AttributeName::parse(&new.company_separation.attribute)
        .map_err(|e| Problem::validation(format!("company_separation.attribute: {e}")))?;
    let changes = old.diff(&new);
    if !changes.is_empty() {
        let document = serde_json::to_string(&new).map_err(|_| Problem::internal())?;
        gw.store.save_settings(&document).await.map_err(db)?;
        gw.changed(&guard, &[Change::Settings]).await.map_err(db)?;
        gw.recorder.record(
            &actor.origin,
            Entry {
                event: audit::SETTINGS_CHANGED,
                allowed: true,
                note: Some(format!(
                    "{} (by admin token {:?})",
                    changes.join("; "),
                    actor.admin
                )),
                ..Entry::default()
            },
        );
    }
    Ok(new)
}
