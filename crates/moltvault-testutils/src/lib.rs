//! Test-only helpers: temporary gateway homes, fake secrets built from fragments, and backup
//! archives built from a description (hostile ones too).

pub mod archive;
pub mod homes;
pub mod secrets;
