//! The `moltvault` binary: parses arguments, runs one command, renders its error.

mod commands;
mod env;
mod report;
mod ui;

fn main() -> std::process::ExitCode {
    report::exit(commands::run(<commands::Cli as clap::Parser>::parse()))
}
