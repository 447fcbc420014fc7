//! [`RenderCache`]: workbook pages already rendered, keyed by every input of
//! the render, so that a session request for a page seen before skips
//! minijinja.
//!
//! The key is the JSON of the source (template, dataset, company field) and
//! of the whole [`Page`] context (user, teams, attributes, workbook id, name
//! and tag, permissions, query, page, company). Templates are compiled once
//! and datasets read once per process, so equal keys render equal pages: a
//! change to anything a template can show is a different key, and the old
//! entry is simply never asked for again. No invalidation is needed, only a
//! bound on memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use serde::Serialize;

use super::Page;
use crate::domain::{PermissionSet, WorkbookSource};
use crate::error::Problem;

/// Pages larger than this are rendered every time.
const MAX_PAGE_BYTES: usize = 256 * 1024;
/// When the cached pages and keys pass this many bytes, the cache starts
/// over (a rare, cheap event: pages are re-rendered on their next request).
const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct RenderCache {
    pages: DashMap<String, Arc<str>>,
    bytes: AtomicUsize,
}

/// What a render depends on, serialised into the cache key.
#[derive(Serialize)]
struct Key<'a> {
    source: &'a WorkbookSource,
    user: &'a super::TemplateUser<'a>,
    workbook_id: &'a str,
    workbook_name: &'a str,
    tag: Option<&'a str>,
    permissions: PermissionSet,
    query: &'a [(String, String)],
    page: Option<&'a str>,
    company: Option<&'a str>,
}

impl RenderCache {
    /// The page rendered before from the same inputs, or `render()`'s,
    /// remembered when it succeeds and is not too large.
    pub fn get_or_render(
        &self,
        source: &WorkbookSource,
        page: &Page<'_>,
        render: impl FnOnce() -> Result<String, Problem>,
    ) -> Result<String, Problem> {
        let key = Key {
            source,
            user: &page.user,
            workbook_id: &page.workbook.id,
            workbook_name: &page.workbook.name,
            tag: page.tag,
            permissions: page.permissions,
            query: page.query,
            page: page.page,
            company: page.company,
        };
        let Ok(key) = serde_json::to_string(&key) else {
            return render();
        };
        if let Some(hit) = self.pages.get(&key) {
            return Ok(hit.value().to_string());
        }
        let html = render()?;
        if html.len() <= MAX_PAGE_BYTES {
            let size = key.len() + html.len();
            if self.bytes.fetch_add(size, Ordering::Relaxed) + size > MAX_TOTAL_BYTES {
                self.pages.clear();
                self.bytes.store(size, Ordering::Relaxed);
            }
            self.pages.insert(key, Arc::from(html.as_str()));
        }
        Ok(html)
    }

    /// How many pages are cached.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::cell::Cell;

    use super::*;
    use crate::content::TemplateUser;
    use crate::domain::{Attributes, Email, UserKind, UserStatus};
    use crate::store::{UserRecord, WorkbookRecord};

    fn source() -> WorkbookSource {
        WorkbookSource::Template {
            template: "sales.html".into(),
            dataset: Some("sales.csv".into()),
            company_field: Some("company".into()),
        }
    }

    fn workbook() -> WorkbookRecord {
        WorkbookRecord {
            id: "sales".into(),
            name: "Sales".into(),
            workspace: None,
            source: source(),
            tags: Default::default(),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn user() -> UserRecord {
        UserRecord {
            id: 1,
            email: Email::from_trusted("ana@acme.example".to_owned()),
            kind: UserKind::Embed,
            status: UserStatus::Active,
            first_name: None,
            last_name: None,
            account_type: "Viewer".to_owned(),
            attributes: Attributes::from([("company".to_owned(), "acme".to_owned())]),
            client_id: None,
            session_epoch: 0,
            team_ids: vec![],
            created_at: 0,
            updated_at: 0,
            last_seen_at: None,
        }
    }

    /// Renders through the cache, counting how often `render` really runs.
    fn render(cache: &RenderCache, page: &Page<'_>, calls: &Cell<u32>) -> String {
        cache
            .get_or_render(&source(), page, || {
                calls.set(calls.get() + 1);
                Ok(format!(
                    "{} {:?} {:?}",
                    page.user.email, page.user.teams, page.company
                ))
            })
            .unwrap()
    }

    #[test]
    fn the_same_inputs_render_once_and_any_difference_renders_again() {
        let cache = RenderCache::default();
        let calls = Cell::new(0);
        let (wb, u) = (workbook(), user());
        let page = |teams: Vec<String>, company: Option<&'static str>| Page {
            user: TemplateUser::new(&u, teams),
            workbook: &wb,
            tag: None,
            permissions: PermissionSet::EMPTY,
            query: &[],
            page: None,
            company,
        };
        let first = render(&cache, &page(vec!["Acme".into()], Some("acme")), &calls);
        let again = render(&cache, &page(vec!["Acme".into()], Some("acme")), &calls);
        assert_eq!(first, again);
        assert_eq!(calls.get(), 1, "the second render came from the cache");

        // A renamed team, another company: rendered anew, never the old page.
        let renamed = render(&cache, &page(vec!["Acme EU".into()], Some("acme")), &calls);
        let other = render(&cache, &page(vec!["Acme".into()], Some("globex")), &calls);
        assert_eq!(calls.get(), 3);
        assert!(renamed.contains("Acme EU") && other.contains("globex"));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_failed_render_is_not_cached() {
        let cache = RenderCache::default();
        let (wb, u) = (workbook(), user());
        let page = Page {
            user: TemplateUser::new(&u, vec![]),
            workbook: &wb,
            tag: None,
            permissions: PermissionSet::EMPTY,
            query: &[],
            page: None,
            company: None,
        };
        assert!(
            cache
                .get_or_render(&source(), &page, || Err(Problem::internal()))
                .is_err()
        );
        assert!(cache.is_empty());
    }
}
