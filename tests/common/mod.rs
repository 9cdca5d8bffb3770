//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn asset(rel: &str) -> PathBuf {
    root().join(rel)
}

/// Runs the real binary with the data folder of the checkout.
pub fn glassbox(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_glassbox"))
        .args(args)
        .env("GLASSBOX_DATA", root().join("data"))
        .env(
            "CUDA_VISIBLE_DEVICES",
            std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default(),
        )
        .output()
        .expect("the glassbox binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failed run must print exactly one clear line on stderr: no panic, no backtrace.
pub fn assert_clean_error(o: &Output, must_contain: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert_eq!(o.status.code(), Some(1), "exit code; stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr, got: {err}");
    assert!(err.starts_with("glassbox: error: "), "{err}");
    assert!(!err.contains("panicked") && !err.contains("internal error"), "{err}");
    for m in must_contain {
        assert!(err.contains(m), "stderr should mention `{m}`: {err}");
    }
}

pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
