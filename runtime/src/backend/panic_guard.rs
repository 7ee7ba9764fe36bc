//! tract can panic on a malformed graph (an `unwrap` deep in its shape inference) instead of
//! returning an error. The loader promises errors, never panics, for any file: [`guarded`] runs
//! tract work under `catch_unwind`, turns a panic into an error, and keeps the panic's message off
//! stderr (it becomes part of the error instead).

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Whether this thread is inside [`guarded`]: the panic hook stays quiet then.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

static QUIET_HOOK: Once = Once::new();

/// Wraps the process's panic hook once: panics inside [`guarded`] are not printed; every other
/// panic goes to the previous hook as before.
fn install_quiet_hook() {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic inside it comes back as `Err(message)`.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_quiet_hook();
    let outer = GUARDED.with(|g| g.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    result.map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_and_values_pass_through() {
        assert_eq!(guarded(|| 7), Ok(7));
        let err = guarded(|| -> u8 { panic!("shape {} out of range", 4) }).unwrap_err();
        assert_eq!(err, "shape 4 out of range");
        // Nested guards restore the outer state.
        assert_eq!(guarded(|| guarded(|| 1).unwrap() + 1), Ok(2));
    }
}
