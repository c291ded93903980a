//! Local emulator of the services content-scaling talks to, for tests, the demo and benchmarks:
//! Box API v2.0 (JWT token endpoint, folders, files, downloads through a second port, simple
//! uploads, preflight, chunked upload sessions, a per-token rate limit), OpenText Media
//! Management REST (`/otmmapi/v6`), Mailgun's messages API and webhook receivers, plus a control API (`/_sandbox`) to inspect state, count requests, upload files as an
//! agency, change settings and inject faults (status codes, dropped connections, delays,
//! truncated bodies; see [`faults`]).
//!
//! Everything binds to loopback only. State lives in memory; file contents on disk under the state
//! directory. See [`server::prepare`] for startup, [`scenario`] for the scenario file format and
//! [`launch`] for starting one from a test.

#![warn(missing_docs)]

pub mod agency_upload;
pub mod box_api;
pub mod chunked;
pub mod cli;
pub mod conn;
pub mod control;
pub mod dialect;
pub mod env;
pub mod faults;
pub mod http_util;
pub mod keys;
pub mod launch;
pub mod mailgun;
pub mod otmm;
pub mod scenario;
pub mod server;
pub mod state;
