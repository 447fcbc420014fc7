//! `/admin/api/account-types`.

use serde::Deserialize;
use utoipa::ToSchema;

use super::views::AccountTypeView;
use super::{Actor, AdminResult, check_text, db, record_change, store_error};
use crate::domain::PermissionSet;
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::Change;
use crate::store::AccountTypeRecord;

/// A new account type.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountType {
    pub name: String,
    /// Any of `view`, `explore`, `export`, `edit`, `all_companies`.
    #[schema(example = json!(["view", "explore"]))]
    pub permissions: Vec<String>,
}

/// New permissions for an account type.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchAccountType {
    /// Any of `view`, `explore`, `export`, `edit`, `all_companies`.
    #[schema(example = json!(["view", "explore", "export"]))]
    pub permissions: Vec<String>,
}

fn permissions(names: &[String]) -> AdminResult<PermissionSet> {
    PermissionSet::parse(names.iter().map(String::as_str))
        .map_err(|e| Problem::validation(format!("permissions: {e}")))
}

pub async fn list(gw: &Gateway) -> AdminResult<Vec<AccountTypeView>> {
    Ok(gw
        .store
        .list_account_types()
        .await
        .map_err(db)?
        .iter()
        .map(AccountTypeView::from)
        .collect())
}

async fn find(gw: &Gateway, name: &str) -> AdminResult<AccountTypeRecord> {
    gw.store
        .get_account_type(name)
        .await
        .map_err(db)?
        .ok_or_else(|| Problem::not_found(format!("There is no account type {name:?}.")))
}

pub async fn get(gw: &Gateway, name: &str) -> AdminResult<AccountTypeView> {
    Ok(AccountTypeView::from(&find(gw, name).await?))
}

pub async fn create(
    gw: &Gateway,
    actor: &Actor,
    input: CreateAccountType,
) -> AdminResult<AccountTypeView> {
    check_text("name", &input.name, 64, false)?;
    let record = AccountTypeRecord {
        permissions: permissions(&input.permissions)?,
        name: input.name,
        builtin: false,
    };
    let guard = gw.policy.write_lock().await;
    gw.store
        .insert_account_type(&record)
        .await
        .map_err(store_error(
            "An account type with this name exists already.",
        ))?;
    gw.changed(&guard, &[Change::AccountType(record.name.clone())])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("account type {:?} created", record.name));
    Ok(AccountTypeView::from(&record))
}

pub async fn patch(
    gw: &Gateway,
    actor: &Actor,
    name: &str,
    input: PatchAccountType,
) -> AdminResult<AccountTypeView> {
    let mut record = find(gw, name).await?;
    if record.builtin {
        return Err(Problem::conflict(format!(
            "{name} is a built-in account type and cannot be changed."
        )));
    }
    record.permissions = permissions(&input.permissions)?;
    let guard = gw.policy.write_lock().await;
    gw.store
        .update_account_type(name, record.permissions)
        .await
        .map_err(db)?;
    gw.changed(&guard, &[Change::AccountType(name.to_owned())])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("account type {name:?} changed"));
    Ok(AccountTypeView::from(&record))
}

pub async fn delete(gw: &Gateway, actor: &Actor, name: &str) -> AdminResult<()> {
    let record = find(gw, name).await?;
    if record.builtin {
        return Err(Problem::conflict(format!(
            "{name} is a built-in account type and cannot be deleted."
        )));
    }
    if gw.policy.read().settings.default_account_type == name {
        return Err(Problem::conflict(format!(
            "{name} is the default account type; choose another default first."
        )));
    }
    let guard = gw.policy.write_lock().await;
    if !gw.store.delete_account_type(name).await.map_err(db)? {
        let users = gw
            .store
            .count_users_with_account_type(name)
            .await
            .map_err(db)?;
        return Err(Problem::conflict(format!(
            "{name} is in use by {users} user(s); give them another account type first."
        )));
    }
    gw.changed(&guard, &[Change::AccountType(name.to_owned())])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("account type {name:?} deleted"));
    Ok(())
}
