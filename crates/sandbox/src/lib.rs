//! Local emulator of the services content-scaling talks to, for tests, the demo and benchmarks:
//! Box API v2.0 (JWT token endpoint, folders, files, downloads through a second port, simple
//! uploads), OpenText Media Management REST (`/otmmapi/v6`), Mailgun's messages API and webhook
//! receivers, plus a control API (`/_sandbox`) to inspect state, count requests, upload files as an
//! agency and inject faults.
//!
//! Everything binds to loopback only. State lives in memory; file contents on disk under the state
//! directory. See [`server::prepare`] for startup and [`scenario`] for the scenario file format.

#![warn(missing_docs)]

pub mod agency_upload;
pub mod box_api;
pub mod control;
pub mod http_util;
pub mod keys;
pub mod mailgun;
pub mod otmm;
pub mod scenario;
pub mod server;
pub mod state;
