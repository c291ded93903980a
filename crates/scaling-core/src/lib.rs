//! Core library of content-scaling: everything the passes need, with no CLI parsing.
//!
//! One module per outside system ([`boxapi`], [`dam`], [`store`], [`notify`], [`media`]), the pure
//! logic they feed ([`config`], [`naming`], [`metadata`]) and the passes themselves ([`pipeline`]),
//! which depend on the clients but never the other way round.

pub mod boxapi;
pub mod config;
pub mod dam;
pub mod entry;
pub mod http;
pub mod logfile;
pub mod media;
pub mod metadata;
pub mod naming;
pub mod notify;
pub mod notify_plan;
pub mod pipeline;
pub mod secret;
pub mod store;
pub mod tempdir;
