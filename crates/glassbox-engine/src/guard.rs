//! Panics turned into errors, so that one bad request never takes the engine thread or a
//! command down. tch's convenience calls (`Tensor::view`, `Tensor::conv2d`, ...) panic when
//! libtorch throws; [`catch`] runs a piece of work, and a panic inside it comes back as an
//! [`Error::Panic`] naming the work and libtorch's first line, without the C++ trace.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use super::error::{Error, Result};

thread_local! {
    /// Set while [`catch`] runs on this thread: its panics are reported as errors, not printed.
    static CATCHING: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Wraps the current panic hook so that panics caught by [`catch`] print nothing (they
/// become errors). Call it after setting a hook of one's own; [`catch`] calls it too.
pub fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(Cell::get) {
                previous(info)
            }
        }));
    });
}

/// Runs `f`; a panic inside becomes an error naming `what`.
pub fn catch<T, E: From<Error>>(what: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    install_hook();
    let before = CATCHING.with(|c| c.replace(true));
    let out = catch_unwind(AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(before));
    match out {
        Ok(r) => r,
        Err(payload) => {
            let text = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("no message");
            let (torch, message) = panic_message(text);
            Err(Error::Panic {
                what: what.to_owned(),
                torch,
                message,
            }
            .into())
        }
    }
}

/// Whether a panic message comes from a libtorch error, and its first meaningful line.
/// tch panics with `called `Result::unwrap()` on an `Err` value: Torch("MESSAGE\nException
/// raised from ...")`: the MESSAGE is what the user needs.
pub fn panic_message(text: &str) -> (bool, String) {
    let (torch, inner) = match text.find("Torch(\"") {
        Some(i) => (true, &text[i + 7..]),
        None => (false, text),
    };
    // The first line, with escapes of the Debug-printed string undone where they matter.
    let inner = inner.replace("\\n", "\n").replace("\\\"", "\"").replace("\\'", "'");
    let first = inner
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .trim_end_matches("\")")
        .to_string();
    let first = if first.chars().count() > 300 {
        format!("{}…", first.chars().take(300).collect::<String>())
    } else {
        first
    };
    (torch, first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    #[test]
    fn a_libtorch_error_becomes_one_line_naming_the_work() {
        let r: Result<()> = catch("the test request", || -> Result<()> {
            let t = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
            let _ = t.view([7, 7]); // panics: shape '[7, 7]' is invalid
            Ok(())
        });
        let e = r.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::Panic { torch: true, .. }), "{msg}");
        assert!(msg.contains("the test request") && msg.contains("[7, 7]"), "{msg}");
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert!(!msg.contains("Exception raised from"), "{msg}");
    }

    #[test]
    fn a_plain_panic_is_caught_too_and_the_thread_goes_on() {
        let r: Result<()> = catch("work", || -> Result<()> { panic!("index 9 out of range") });
        let msg = r.unwrap_err().to_string();
        assert!(msg.contains("index 9 out of range"), "{msg}");
        assert_eq!(catch("after", || -> Result<i32> { Ok(5) }).unwrap(), 5);
    }
}
