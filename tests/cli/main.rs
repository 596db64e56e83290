//! The CLI end to end: one test binary, one module per verb.

mod audit;
mod backup;
mod help;
mod rotate;
mod seal;
mod vault;
mod redact;
mod scan;
