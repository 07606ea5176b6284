use anyhow::Result;
use clap::{ArgMatches, Command};
use std::process::ExitCode;
pub fn command() -> Command { Command::new("cat") }
pub fn run(_: &ArgMatches) -> Result<ExitCode> { anyhow::bail!("todo") }
