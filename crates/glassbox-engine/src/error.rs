//! Errors of the engine. Every message says what went wrong, where, and what to do.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// A panic caught by [`super::guard::catch`]: from libtorch (`torch`) or a bug.
    #[error("{what}: {}{message}", if *torch { "libtorch refused it: " } else { "internal error: " })]
    Panic { what: String, torch: bool, message: String },
    /// The user (or a newer request) stopped the work.
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }
    pub fn file(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::File {
            path: path.into(),
            msg: msg.into(),
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}

/// A list of layer names for an error message: all of them, or the first and last few.
pub fn name_sample<S: AsRef<str>>(names: &[S]) -> String {
    let join = |v: &[S]| v.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(", ");
    if names.len() > 12 {
        format!("{} ... {}", join(&names[..4]), join(&names[names.len() - 6..]))
    } else {
        join(names)
    }
}
