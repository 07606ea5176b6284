use anyhow::Result;
use clap::{ArgMatches, Command};
use std::process::ExitCode;
pub fn command() -> Command { Command::new("import") }
pub fn run(_: &ArgMatches) -> Result<ExitCode> { anyhow::bail!("todo") }
