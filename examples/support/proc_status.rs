//! Memory figures of this process from `/proc/self/status` (Linux), shared by
//! the examples that measure memory (`#[path]`-included: not an example).

/// The value of a `/proc/self/status` field such as `VmRSS:` (e.g.
/// `"20304 kB"`), or `"?"` when it cannot be read.
pub fn field(name: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(name))
        .map_or("?".to_owned(), |l| l[name.len()..].trim().to_owned())
}
