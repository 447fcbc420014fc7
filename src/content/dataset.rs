//! Datasets of template workbooks: CSV files with a header line, or JSON
//! arrays of objects, from `[content].data_dir`. Each file is read once and
//! kept in memory; rows are filtered by company before any template sees
//! them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use dashmap::DashMap;
use minijinja::Value;
use minijinja::value::Serde;

/// The rows of one file, ready for templates, with each row's fields as
/// text for company filtering.
#[derive(Debug)]
pub struct Dataset {
    rows: Vec<(Value, serde_json::Map<String, serde_json::Value>)>,
}

fn field_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Dataset {
    fn from_objects(objects: Vec<serde_json::Map<String, serde_json::Value>>) -> Dataset {
        Dataset {
            rows: objects
                .into_iter()
                .map(|o| (Value::from(Serde(&o)), o))
                .collect(),
        }
    }

    pub fn read(path: &Path) -> anyhow::Result<Dataset> {
        let is_json = path.extension().is_some_and(|e| e == "json");
        if is_json {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let objects: Vec<serde_json::Map<String, serde_json::Value>> =
                serde_json::from_str(&text).with_context(|| {
                    format!("{} must be a JSON array of objects", path.display())
                })?;
            return Ok(Dataset::from_objects(objects));
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let headers = reader.headers()?.clone();
        let mut objects = Vec::new();
        for record in reader.records() {
            let record = record.with_context(|| format!("parsing {}", path.display()))?;
            let object = headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_owned(), serde_json::Value::String(v.to_owned())))
                .collect();
            objects.push(object);
        }
        Ok(Dataset::from_objects(objects))
    }

    /// The rows a template may see: all of them, or only those whose
    /// `field` equals `company`.
    pub fn rows(&self, filter: Option<(&str, &str)>) -> Vec<Value> {
        match filter {
            None => self.rows.iter().map(|(v, _)| v.clone()).collect(),
            Some((field, company)) => self
                .rows
                .iter()
                .filter(|(_, o)| o.get(field).and_then(field_text).as_deref() == Some(company))
                .map(|(v, _)| v.clone())
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Datasets by file name, read on first use.
#[derive(Debug)]
pub struct Datasets {
    dir: PathBuf,
    cache: DashMap<String, Arc<Dataset>>,
}

impl Datasets {
    pub fn new(dir: PathBuf) -> Datasets {
        Datasets {
            dir,
            cache: DashMap::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn get(&self, name: &str) -> anyhow::Result<Arc<Dataset>> {
        if let Some(d) = self.cache.get(name) {
            return Ok(Arc::clone(&d));
        }
        let dataset = Arc::new(Dataset::read(&self.path(name))?);
        self.cache.insert(name.to_owned(), Arc::clone(&dataset));
        Ok(dataset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_filtered_by_company() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.csv"),
            "company,amount\nacme,1\nglobex,2\nacme,3\n",
        )
        .unwrap();
        let sets = Datasets::new(dir.path().into());
        let d = sets.get("s.csv").unwrap();
        assert_eq!(d.len(), 3);
        let acme = d.rows(Some(("company", "acme")));
        assert_eq!(acme.len(), 2);
        assert!(
            acme.iter()
                .all(|r| r.get_attr("company").unwrap().as_str() == Some("acme"))
        );
        assert_eq!(d.rows(Some(("company", "nobody"))).len(), 0);
        assert_eq!(d.rows(Some(("missing_field", "acme"))).len(), 0);
    }

    #[test]
    fn json_rows_compare_numbers_as_text() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("s.json"),
            r#"[{"company_id": 7, "x": 1}, {"company_id": 8}]"#,
        )
        .unwrap();
        let d = Datasets::new(dir.path().into()).get("s.json").unwrap();
        assert_eq!(d.rows(Some(("company_id", "7"))).len(), 1);
    }
}
