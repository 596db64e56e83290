//! Owns moltvault's keys, age encryption at rest, backups and the one funnel through which
//! every file moltvault writes goes ([`fsio`]).

pub mod fsio;
