//! The committed fuzz corpora (`fuzz/corpus/`, see `fuzz/README.md`) as a
//! regression test on stable: every input runs through the same bodies the
//! fuzzers run (`embedgate::fuzzing`), so a fixed crash or a broken
//! invariant shows up in plain `cargo test` without a nightly toolchain.

use std::path::PathBuf;

/// Fewer files than this means the corpus went missing, not that it passed.
const MIN_FILES: usize = 10;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = crate::helpers::repo_path(&format!("fuzz/corpus/{target}"));
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= MIN_FILES,
        "{} holds {} files; expected at least {MIN_FILES}",
        dir.display(),
        files.len()
    );
    files
}

fn run_all(target: &str, body: fn(&[u8])) {
    for (path, data) in corpus(target) {
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(
            outcome.is_ok(),
            "{target} panicked on {} (reproduce: cargo +nightly fuzz run {target} {})",
            path.display(),
            path.display()
        );
    }
}

#[test]
fn the_token_corpus_runs_clean() {
    run_all("token", embedgate::fuzzing::token);
}

#[test]
fn the_claims_to_user_corpus_runs_clean() {
    run_all("claims_to_user", embedgate::fuzzing::claims_to_user);
}
