//! The helpers the vpfb test crates share, so each is written once: scratch folders and repository
//! paths ([`paths`]), running a binary and the one-line-error rule the CLIs promise ([`cli`]),
//! comparing tables ([`tables`]), and tiny random potentials built with the trainer (`models`
//! feature, [`models`]).

pub mod cli;
#[cfg(feature = "models")]
pub mod models;
pub mod paths;
pub mod tables;

pub use cli::{assert_one_line_error, assert_usage_error, output_ok, run};
pub use paths::{binary, repo, scratch, shipped_model};
pub use tables::{assert_close, csv_numbers};
