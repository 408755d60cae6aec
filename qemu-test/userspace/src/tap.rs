// SPDX-License-Identifier: GPL-2.0

//! Minimal TAP reporter: one point per test, diagnostics on failure.

use std::cell::RefCell;
use std::fmt::Display;

thread_local! {
    static NOTES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Records a diagnostic line; it is printed under the current point's
/// result line, so it stays with the point it belongs to.
pub fn note(line: impl Display) {
    NOTES.with(|n| n.borrow_mut().push(line.to_string()));
}

fn take_notes() -> Vec<String> {
    NOTES.with(|n| std::mem::take(&mut *n.borrow_mut()))
}

/// Outcome of one test point: `Err` carries why it failed.
pub type Outcome = Result<(), String>;

/// Collects the points of one test binary.
#[derive(Default)]
pub struct Reporter {
    failed: usize,
    run: usize,
}

impl Reporter {
    /// Runs `test` as point `name` and prints its result line.
    pub fn point(&mut self, name: &str, test: impl FnOnce() -> Outcome) -> bool {
        self.run += 1;
        let outcome = test();
        let notes = take_notes();
        let ok = outcome.is_ok();
        println!("{} - {name}", if ok { "ok" } else { "not ok" });
        let why = outcome.err().unwrap_or_default();
        for line in notes.iter().map(String::as_str).chain(why.lines()) {
            println!("# {line}");
        }
        self.failed += usize::from(!ok);
        ok
    }

    /// Records `name` as failed without running it, because `because`.
    pub fn not_run(&mut self, name: &str, because: &str) {
        self.point(name, || Err(format!("not run: {because}")));
    }

    /// Exit code for the binary: 0 when every point passed.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failed > 0 || self.run == 0)
    }
}

/// Turns an error into a failure message with context.
pub trait Context<T> {
    /// Adds `what` in front of the error.
    fn context(self, what: impl Display) -> Result<T, String>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn context(self, what: impl Display) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// Fails with `msg` unless `cond` holds.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Outcome {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}
