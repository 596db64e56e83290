//! The CLI end to end: one test binary, one module per verb.

mod help;
