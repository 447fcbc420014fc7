//! [`RenderCache`]: workbook pages already rendered, keyed by every input of
//! the render, so that a session request for a page seen before skips
//! minijinja.
//!
//! The key holds the source (template, dataset, company field) and the
//! whole [`Page`] context (user, teams, attributes, workbook id, name and
//! tag, permissions, query, page, company), each string prefixed with its
//! length so that no two different contexts share a key. Templates are
//! compiled once and datasets read once per process, so equal keys render
//! equal pages: a change to anything a template can show is a different
//! key, and the old entry is simply never asked for again. No invalidation
//! is needed, only a bound on memory.
//!
//! Pages are kept as [`Bytes`]: a hit hands the response the cached buffer
//! itself, not a copy.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use dashmap::DashMap;

use super::Page;
use crate::domain::WorkbookSource;
use crate::error::Problem;

/// Pages larger than this are rendered every time.
const MAX_PAGE_BYTES: usize = 256 * 1024;
/// When the cached pages and keys pass this many bytes, the cache starts
/// over (a rare, cheap event: pages are re-rendered on their next request).
const MAX_TOTAL_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct RenderCache {
    pages: DashMap<Box<[u8]>, Bytes, crate::HashState>,
    bytes: AtomicUsize,
}

/// Writes the inputs of a render as one byte string: every string with its
/// length before it, every optional value with a presence byte.
struct Key(Vec<u8>);

impl Key {
    fn str(&mut self, s: &str) -> &mut Self {
        self.0.extend_from_slice(&(s.len() as u64).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => {
                self.0.push(1);
                self.str(s)
            }
            None => {
                self.0.push(0);
                self
            }
        }
    }

    fn pairs<'a>(
        &mut self,
        len: usize,
        pairs: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> &mut Self {
        self.0.extend_from_slice(&(len as u64).to_le_bytes());
        for (k, v) in pairs {
            self.str(k).str(v);
        }
        self
    }

    fn strs(&mut self, strs: &[String]) -> &mut Self {
        self.pairs(strs.len(), strs.iter().map(|s| (s.as_str(), "")))
    }

    fn of(source: &WorkbookSource, page: &Page<'_>) -> Key {
        let mut key = Key(Vec::with_capacity(256));
        match source {
            WorkbookSource::Template {
                template,
                dataset,
                company_field,
            } => key
                .str("template")
                .str(template)
                .opt(dataset.as_deref())
                .opt(company_field.as_deref()),
            WorkbookSource::Upstream { url } => key.str("upstream").str(url),
        };
        let user = &page.user;
        key.str(user.email)
            .opt(user.first_name)
            .opt(user.last_name)
            .str(user.account_type)
            .strs(&user.teams)
            .pairs(
                user.attributes.len(),
                user.attributes
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .str(&page.workbook.id)
            .str(&page.workbook.name)
            .opt(page.tag)
            .opt(page.page)
            .opt(page.company)
            .pairs(
                page.query.len(),
                page.query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            );
        key.0.push(page.permissions.bits());
        key
    }
}
impl RenderCache {
    /// The page rendered before from the same inputs, or `render()`'s,
    /// remembered when it succeeds and is not too large.
    pub fn get_or_render(
        &self,
        source: &WorkbookSource,
        page: &Page<'_>,
        render: impl FnOnce() -> Result<String, Problem>,
    ) -> Result<Bytes, Problem> {
        let Key(key) = Key::of(source, page);
        if let Some(hit) = self.pages.get(key.as_slice()) {
            return Ok(hit.value().clone());
        }
        let html = Bytes::from(render()?);
        if html.len() <= MAX_PAGE_BYTES {
            let size = key.len() + html.len();
            if self.bytes.fetch_add(size, Ordering::Relaxed) + size > MAX_TOTAL_BYTES {
                self.pages.clear();
                self.bytes.store(size, Ordering::Relaxed);
            }
            self.pages.insert(key.into_boxed_slice(), html.clone());
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
    use crate::domain::{Permission, PermissionSet};
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

    /// A page of `wb` for `u` in `teams`, with nothing else set.
    fn plain_page<'a>(wb: &'a WorkbookRecord, u: &'a UserRecord, teams: Vec<String>) -> Page<'a> {
        Page {
            user: TemplateUser::new(u, teams),
            workbook: wb,
            tag: None,
            permissions: PermissionSet::EMPTY,
            query: &[],
            page: None,
            company: None,
        }
    }

    /// Renders through the cache, counting how often `render` really runs.
    fn render(cache: &RenderCache, page: &Page<'_>, calls: &Cell<u32>) -> String {
        let page = cache
            .get_or_render(&source(), page, || {
                calls.set(calls.get() + 1);
                Ok(format!(
                    "{} {:?} {:?}",
                    page.user.email, page.user.teams, page.company
                ))
            })
            .unwrap();
        String::from_utf8(page.to_vec()).unwrap()
    }

    #[test]
    fn the_same_inputs_render_once_and_any_difference_renders_again() {
        let cache = RenderCache::default();
        let calls = Cell::new(0);
        let (wb, u) = (workbook(), user());
        let page = |teams: Vec<String>, company: Option<&'static str>| Page {
            company,
            ..plain_page(&wb, &u, teams)
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

    /// Contexts that a plain concatenation would confuse have different
    /// keys: a page cached for one must never be served to the other.
    #[test]
    fn contexts_that_differ_anywhere_have_different_keys() {
        let (wb, u) = (workbook(), user());
        let mut named = user();
        named.first_name = Some(String::new());
        let mut other_attrs = user();
        other_attrs.attributes = Attributes::from([("compan".to_owned(), "yacme".to_owned())]);
        let base = || plain_page(&wb, &u, vec!["ab".into()]);
        let two_query = [
            ("a".to_owned(), "b".to_owned()),
            ("c".to_owned(), String::new()),
        ];
        let one_query = [("a".to_owned(), "bc".to_owned())];
        let variants = [
            base(),
            Page {
                user: TemplateUser::new(&u, vec!["a".into(), "b".into()]),
                ..base()
            },
            Page {
                user: TemplateUser::new(&u, vec![]),
                ..base()
            },
            Page {
                user: TemplateUser::new(&named, vec!["ab".into()]),
                ..base()
            },
            Page {
                user: TemplateUser::new(&other_attrs, vec!["ab".into()]),
                ..base()
            },
            Page {
                tag: Some(""),
                ..base()
            },
            Page {
                page: Some(""),
                ..base()
            },
            Page {
                company: Some(""),
                ..base()
            },
            Page {
                permissions: PermissionSet::of(&[Permission::View]),
                ..base()
            },
            Page {
                query: &two_query,
                ..base()
            },
            Page {
                query: &one_query,
                ..base()
            },
        ];
        let keys: Vec<Vec<u8>> = variants.iter().map(|p| Key::of(&source(), p).0).collect();
        for (i, a) in keys.iter().enumerate() {
            for (j, b) in keys.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "variants {i} and {j} share a key");
            }
        }
        let upstream = WorkbookSource::Upstream {
            url: "http://x".into(),
        };
        assert_ne!(Key::of(&upstream, &base()).0, keys[0]);
        assert_eq!(
            Key::of(&source(), &base()).0,
            keys[0],
            "and equal inputs, equal keys"
        );
    }

    #[test]
    fn a_hit_shares_the_cached_buffer() {
        let cache = RenderCache::default();
        let (wb, u) = (workbook(), user());
        let page = plain_page(&wb, &u, vec![]);
        let first = cache
            .get_or_render(&source(), &page, || Ok("<p>hi</p>".into()))
            .unwrap();
        let hit = cache
            .get_or_render(&source(), &page, || unreachable!())
            .unwrap();
        assert_eq!(first.as_ptr(), hit.as_ptr(), "no copy of the page");
    }

    #[test]
    fn a_failed_render_is_not_cached() {
        let cache = RenderCache::default();
        let (wb, u) = (workbook(), user());
        let page = plain_page(&wb, &u, vec![]);
        assert!(
            cache
                .get_or_render(&source(), &page, || Err(Problem::internal()))
                .is_err()
        );
        assert!(cache.is_empty());
    }
}
