//! The sandbox's integration tests: one test target (one binary to link), a module per area,
//! each sandbox started by [`sandbox::launch::Launch`].

mod api;
mod fidelity;
mod util;
