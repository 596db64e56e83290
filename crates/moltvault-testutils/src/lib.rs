//! Test-only helpers: temporary gateway homes and fake secrets built from fragments.
