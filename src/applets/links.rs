//! `dstore links DIR`: creates the 1.x program names (tcpdistro, dgrep, ...) as symlinks to this
//! executable, for packaging.

use anyhow::{Context, Result};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser};
use std::path::PathBuf;
use std::process::ExitCode;

/// Create tcpdistro, dgrep, dcat, dnspb2json and egateway as symlinks to this executable
#[derive(Parser, Debug)]
struct Args {
    /// Directory to create the links in
    dir: PathBuf,
    /// Replace existing files of those names
    #[arg(long)]
    force: bool,
}

pub fn command() -> Command {
    Args::command()
}

pub fn run(m: &ArgMatches) -> Result<ExitCode> {
    let args = Args::from_arg_matches(m)?;
    let target = std::env::current_exe().context("cannot find this executable's path")?;
    let make = |link: &std::path::Path| -> Result<()> {
        if args.force && link.symlink_metadata().is_ok() {
            std::fs::remove_file(link)
                .with_context(|| format!("cannot replace {}", link.display()))?;
        }
        std::os::unix::fs::symlink(&target, link)
            .with_context(|| format!("cannot create {}", link.display()))
    };
    // Every link is made before the list is printed; a link that fails still lists those made.
    let mut made = String::new();
    for alias in super::APPLETS.iter().filter_map(|a| a.alias) {
        let link = args.dir.join(alias);
        if let Err(e) = make(&link) {
            let _ = super::print(&made);
            return Err(e);
        }
        made += &format!("{} -> {}\n", link.display(), target.display());
    }
    super::print(&made)?;
    Ok(ExitCode::SUCCESS)
}
