//! Grant levels and permissions (SPEC §5).

use std::fmt;

/// What a grant gives a team: `view` < `explore` < `edit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    View,
    Explore,
    Edit,
}

impl Level {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "view" => Some(Level::View),
            "explore" => Some(Level::Explore),
            "edit" => Some(Level::Edit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::View => "view",
            Level::Explore => "explore",
            Level::Edit => "edit",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A permission an account type may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    View,
    Explore,
    Export,
    Edit,
    AllCompanies,
}

impl Permission {
    pub const ALL: [Permission; 5] = [
        Permission::View,
        Permission::Explore,
        Permission::Export,
        Permission::Edit,
        Permission::AllCompanies,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::View => "view",
            Permission::Explore => "explore",
            Permission::Export => "export",
            Permission::Edit => "edit",
            Permission::AllCompanies => "all_companies",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A small set of permissions, cheap to copy and intersect on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PermissionSet(u8);

impl PermissionSet {
    pub const EMPTY: PermissionSet = PermissionSet(0);

    pub fn of(perms: &[Permission]) -> Self {
        PermissionSet(perms.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// Parses names; the error names the first unknown one.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut set = PermissionSet::EMPTY;
        for name in names {
            let p = Permission::parse(name).ok_or_else(|| {
                format!(
                    "unknown permission {name:?}; use view, explore, export, edit or all_companies"
                )
            })?;
            set.insert(p);
        }
        Ok(set)
    }

    /// The set as one byte, one bit a permission.
    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }

    /// What content may do for a user with `level` on the workbook and this
    /// account type (SPEC §5): `view` always, `explore`/`edit` when both the
    /// level and the account type allow it, `export` when the account type
    /// does.
    pub fn effective(self, level: Level) -> PermissionSet {
        let mut out = PermissionSet::of(&[Permission::View]);
        if level >= Level::Explore && self.contains(Permission::Explore) {
            out.insert(Permission::Explore);
        }
        if level >= Level::Edit && self.contains(Permission::Edit) {
            out.insert(Permission::Edit);
        }
        if self.contains(Permission::Export) {
            out.insert(Permission::Export);
        }
        out
    }
}

impl serde::Serialize for PermissionSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        assert!(Level::View < Level::Explore && Level::Explore < Level::Edit);
        assert_eq!(Level::parse("explore"), Some(Level::Explore));
        assert_eq!(Level::parse("admin"), None);
    }

    #[test]
    fn effective_permissions_intersect_level_and_account_type() {
        let creator = PermissionSet::parse(["view", "explore", "export", "edit"]).unwrap();
        let viewer = PermissionSet::parse(["view"]).unwrap();
        assert_eq!(creator.effective(Level::View).names(), ["view", "export"]);
        assert_eq!(
            creator.effective(Level::Explore).names(),
            ["view", "explore", "export"]
        );
        assert_eq!(
            creator.effective(Level::Edit).names(),
            ["view", "explore", "export", "edit"]
        );
        assert_eq!(viewer.effective(Level::Edit).names(), ["view"]);
    }

    #[test]
    fn unknown_permissions_are_named() {
        let err = PermissionSet::parse(["view", "sudo"]).unwrap_err();
        assert!(err.contains("sudo"));
    }
}
