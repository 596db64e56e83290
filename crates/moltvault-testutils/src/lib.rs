//! Test-only helpers: temporary gateway homes and fake secrets built from fragments.

pub mod homes;
pub mod secrets;
