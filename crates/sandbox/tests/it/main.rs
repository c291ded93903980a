//! The sandbox's integration tests: one test target (one binary to link), a module per area,
//! each sandbox started by [`sandbox::launch::Launch`].
#![expect(
    clippy::print_stderr,
    reason = "test output: what a failing test shows"
)]
#![expect(
    clippy::cast_possible_truncation,
    reason = "test code: sizes of the small files the tests upload"
)]

mod api;
mod fidelity;
mod util;
