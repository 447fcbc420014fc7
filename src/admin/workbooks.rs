//! `/admin/api/workbooks` and their tagged versions.

use serde::Deserialize;
use utoipa::ToSchema;

use super::views::WorkbookView;
use super::{Actor, AdminResult, check_text, db, double_option, record_change, store_error};
use crate::domain::{TagName, WorkbookId, WorkbookSource, WorkspaceId};
use crate::error::Problem;
use crate::gateway::Gateway;
use crate::policy::Change;
use crate::store::WorkbookRecord;

/// A new workbook.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkbook {
    pub id: String,
    pub name: String,
    /// The id of the workspace it belongs to.
    #[schema(value_type = Option<i64>)]
    pub workspace: Option<WorkspaceId>,
    pub source: WorkbookSource,
}

/// Changes to a workbook: any subset of the fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchWorkbook {
    pub name: Option<String>,
    /// `null` moves the workbook out of its workspace.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub workspace: Option<Option<WorkspaceId>>,
    pub source: Option<WorkbookSource>,
}

/// The source of a tagged version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutTag {
    pub source: WorkbookSource,
}

/// Checks a source, including that its template and dataset files exist.
fn check_source(gw: &Gateway, field: &str, source: &WorkbookSource) -> AdminResult<()> {
    source
        .validate()
        .map_err(|e| Problem::validation(format!("{field}: {e}")))?;
    if let WorkbookSource::Template {
        template, dataset, ..
    } = source
    {
        if !gw.content.has_template(template) {
            return Err(Problem::validation(format!(
                "{field}: there is no template {template:?} in templates/workbooks"
            )));
        }
        if let Some(d) = dataset.as_ref().filter(|d| !gw.content.has_dataset(d)) {
            return Err(Problem::validation(format!(
                "{field}: there is no dataset {d:?} in the data folder"
            )));
        }
    }
    Ok(())
}

fn check_workspace(gw: &Gateway, ws: Option<WorkspaceId>) -> AdminResult<()> {
    match ws {
        Some(id) if gw.policy.read().workspace(id).is_none() => Err(Problem::validation(format!(
            "workspace: there is no workspace {id}"
        ))),
        _ => Ok(()),
    }
}

pub async fn list(gw: &Gateway) -> AdminResult<Vec<WorkbookView>> {
    Ok(gw
        .store
        .list_workbooks()
        .await
        .map_err(db)?
        .iter()
        .map(WorkbookView::from)
        .collect())
}

async fn find(gw: &Gateway, id: &str) -> AdminResult<WorkbookRecord> {
    gw.store
        .get_workbook(id)
        .await
        .map_err(db)?
        .ok_or_else(|| Problem::not_found(format!("There is no workbook {id:?}.")))
}

pub async fn get(gw: &Gateway, id: &str) -> AdminResult<WorkbookView> {
    Ok(WorkbookView::from(&find(gw, id).await?))
}

pub async fn create(
    gw: &Gateway,
    actor: &Actor,
    input: CreateWorkbook,
) -> AdminResult<WorkbookView> {
    let id = WorkbookId::parse(&input.id).map_err(|e| Problem::validation(format!("id: {e}")))?;
    check_text("name", &input.name, 255, false)?;
    check_source(gw, "source", &input.source)?;
    let guard = gw.policy.write_lock().await;
    check_workspace(gw, input.workspace)?;
    let now = gw.now_millis();
    let record = WorkbookRecord {
        id: id.to_string(),
        name: input.name,
        workspace: input.workspace,
        source: input.source,
        tags: Default::default(),
        created_at: now,
        updated_at: now,
    };
    gw.store
        .insert_workbook(&record)
        .await
        .map_err(store_error("A workbook with this id exists already."))?;
    gw.changed(&guard, &[Change::Workbook(record.id.clone())])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("workbook {:?} created", record.id));
    Ok(WorkbookView::from(&record))
}

pub async fn patch(
    gw: &Gateway,
    actor: &Actor,
    id: &str,
    input: PatchWorkbook,
) -> AdminResult<WorkbookView> {
    let guard = gw.policy.write_lock().await;
    let mut record = find(gw, id).await?;
    if let Some(name) = input.name {
        check_text("name", &name, 255, false)?;
        record.name = name;
    }
    if let Some(ws) = input.workspace {
        check_workspace(gw, ws)?;
        record.workspace = ws;
    }
    if let Some(source) = input.source {
        check_source(gw, "source", &source)?;
        record.source = source;
    }
    record.updated_at = gw.now_millis();
    gw.store.update_workbook(&record).await.map_err(db)?;
    gw.changed(&guard, &[Change::Workbook(id.to_owned())])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("workbook {id:?} changed"));
    Ok(WorkbookView::from(&record))
}

/// Deletes the workbook with its tags and grants.
pub async fn delete(gw: &Gateway, actor: &Actor, id: &str) -> AdminResult<()> {
    find(gw, id).await?;
    let guard = gw.policy.write_lock().await;
    gw.store.delete_workbook(id).await.map_err(db)?;
    gw.changed(&guard, &[Change::Workbook(id.to_owned())])
        .await
        .map_err(db)?;
    record_change(
        gw,
        actor,
        format!("workbook {id:?} deleted with its tags and grants"),
    );
    Ok(())
}

pub async fn put_tag(
    gw: &Gateway,
    actor: &Actor,
    id: &str,
    tag: &str,
    input: PutTag,
) -> AdminResult<WorkbookView> {
    TagName::parse(tag).map_err(|e| Problem::validation(format!("tag: {e}")))?;
    check_source(gw, "source", &input.source)?;
    let guard = gw.policy.write_lock().await;
    find(gw, id).await?;
    gw.store
        .put_workbook_tag(id, tag, &input.source)
        .await
        .map_err(db)?;
    gw.changed(&guard, &[Change::Workbook(id.to_owned())])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("workbook {id:?} tag {tag:?} set"));
    Ok(WorkbookView::from(&find(gw, id).await?))
}

/// Deletes a tag and the grants for it.
pub async fn delete_tag(gw: &Gateway, actor: &Actor, id: &str, tag: &str) -> AdminResult<()> {
    let guard = gw.policy.write_lock().await;
    if !gw.store.delete_workbook_tag(id, tag).await.map_err(db)? {
        return Err(Problem::not_found(format!(
            "Workbook {id:?} has no tag {tag:?}."
        )));
    }
    gw.changed(&guard, &[Change::Workbook(id.to_owned())])
        .await
        .map_err(db)?;
    record_change(gw, actor, format!("workbook {id:?} tag {tag:?} deleted"));
    Ok(())
}
