//! End-to-end tests: the real binaries against the sandbox and a fresh PostgreSQL database per
//! test (one test target, one module per area; see `util` for the harness).
//!
//! Needs the workspace binaries built (`scripts/test.sh` does it) and a PostgreSQL server
//! (`CS_TEST_DATABASE_URL` / `DATABASE_URL`, else 127.0.0.1:5432 as postgres).
#![expect(
    clippy::print_stderr,
    reason = "test output: figures and what a failing or slow test shows"
)]
#![expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::case_sensitive_file_extension_comparisons,
    clippy::unused_self,
    clippy::type_complexity,
    reason = "test code: small counts, and names the tests themselves create"
)]

mod badinput;
mod check_config;
mod crash;
mod deploy;
mod dialects;
mod dry_run;
mod email_once;
mod events;
mod exactly_once;
mod flaky;
mod flow;
mod hardening;
mod logs;
mod openapi;
mod ops;
mod pgtls;
mod plan_files;
mod plan_notify;
mod profiles;
mod sdk;
mod secrets;
mod status;
mod store;
mod throughput;
mod transport;
mod util;

/// Forced and default field values of `config/field_mappings.yaml` the flow test checks on
/// every imported derivative.
pub fn forced_and_default_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("FERRERO.FIELD.ASSET STATUS", "Final"),
        ("FERRERO.FIELD.SOURCE SYSTEM", "content-scaling"),
        ("FERRERO.FIELD.USAGE RIGHTS", "Standard"),
    ]
}
