//! What the gateway shows: workbooks rendered from templates with their
//! (company-filtered) datasets, the HTML error page, and the tenant
//! directory that embedded pages may query.
//!
//! Templates are compiled once by minijinja and cached in the environment;
//! HTML templates are auto-escaped. Rendered workbook pages are cached too
//! ([`RenderCache`]), keyed by everything the template sees.

pub mod assertion;
mod dataset;
pub mod directory;
mod render_cache;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::value::Serde;
use minijinja::{Environment, Value, context, path_loader};
use serde::Serialize;

pub use dataset::{Dataset, Datasets};
pub use render_cache::RenderCache;

use crate::domain::{PermissionSet, WorkbookSource};
use crate::error::Problem;
use crate::store::{UserRecord, WorkbookRecord};

/// The folder of workbook templates inside `templates_dir`.
pub const WORKBOOK_TEMPLATES: &str = "workbooks";

#[derive(Debug)]
pub struct Content {
    env: Environment<'static>,
    templates_dir: PathBuf,
    datasets: Datasets,
    rendered: RenderCache,
}

/// The user as a template sees it.
#[derive(Debug, Serialize)]
pub struct TemplateUser<'a> {
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub account_type: &'a str,
    pub teams: Vec<String>,
    pub attributes: &'a crate::domain::Attributes,
}

impl<'a> TemplateUser<'a> {
    pub fn new(user: &'a UserRecord, teams: Vec<String>) -> Self {
        TemplateUser {
            email: user.email.as_str(),
            first_name: user.first_name.as_deref(),
            last_name: user.last_name.as_deref(),
            account_type: &user.account_type,
            teams,
            attributes: &user.attributes,
        }
    }
}

/// Everything a workbook page is rendered from.
#[derive(Debug)]
pub struct Page<'a> {
    pub user: TemplateUser<'a>,
    pub workbook: &'a WorkbookRecord,
    pub tag: Option<&'a str>,
    pub permissions: PermissionSet,
    pub query: &'a [(String, String)],
    pub page: Option<&'a str>,
    /// With company separation, the only company whose rows are shown.
    pub company: Option<&'a str>,
}

impl Content {
    pub fn new(templates_dir: &Path, data_dir: &Path) -> Content {
        let mut env = Environment::new();
        let dir: PathBuf = templates_dir.into();
        env.set_loader(path_loader(dir));
        // Compiled once: no stat() per request.
        env.set_auto_reload(false);
        Content {
            env,
            templates_dir: templates_dir.to_path_buf(),
            datasets: Datasets::new(data_dir.to_path_buf()),
            rendered: RenderCache::default(),
        }
    }

    /// Does the workbook template `name` exist?
    pub fn has_template(&self, name: &str) -> bool {
        self.templates_dir
            .join(WORKBOOK_TEMPLATES)
            .join(name)
            .is_file()
    }

    pub fn has_dataset(&self, name: &str) -> bool {
        self.datasets.path(name).is_file()
    }

    /// Renders a page template (not a workbook) such as `error.html`.
    pub fn render_page(&self, name: &str, ctx: Value) -> anyhow::Result<String> {
        Ok(self.env.get_template(name)?.render(ctx)?)
    }

    /// Renders a template workbook, or answers the page rendered before
    /// from exactly the same inputs (templates and datasets do not change
    /// while the process runs).
    pub fn render_workbook(
        &self,
        source: &WorkbookSource,
        page: &Page<'_>,
    ) -> Result<bytes::Bytes, Problem> {
        self.rendered
            .get_or_render(source, page, || self.render_workbook_uncached(source, page))
    }

    /// Renders a template workbook with minijinja, bypassing the cache
    /// (what a first view costs; the benchmarks measure both).
    pub fn render_workbook_uncached(
        &self,
        source: &WorkbookSource,
        page: &Page<'_>,
    ) -> Result<String, Problem> {
        let WorkbookSource::Template {
            template,
            dataset,
            company_field,
        } = source
        else {
            return Err(Problem::internal());
        };
        let rows: Vec<Value> = match dataset {
            Some(name) => {
                let data = self.datasets.get(name).map_err(|e| {
                    tracing::error!(dataset = %name, error = %e, "dataset unavailable");
                    Problem::internal()
                })?;
                let filter = company_field.as_deref().zip(page.company);
                // With separation on and a company field, decide() only lets
                // users through with a company or with all_companies.
                data.rows(filter)
            }
            None => Vec::new(),
        };
        let query: std::collections::BTreeMap<&str, &str> = page
            .query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ctx = context! {
            user => Serde(&page.user),
            workbook => context! {
                id => &page.workbook.id,
                name => &page.workbook.name,
                tag => page.tag,
            },
            permissions => Serde(page.permissions),
            query => Serde(query),
            page => page.page,
            rows => Value::from(rows),
        };
        let name = format!("{WORKBOOK_TEMPLATES}/{template}");
        self.env
            .get_template(&name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| {
                tracing::error!(template = %name, error = %e, "rendering a workbook failed");
                Problem::internal()
            })
    }

    pub fn datasets(&self) -> &Datasets {
        &self.datasets
    }
}

/// Shared handle.
pub type SharedContent = Arc<Content>;
