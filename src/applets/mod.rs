//! The programs inside the `dstore` executable. One table lists them; `dispatch` picks one by the
//! name the executable was started under (`dgrep`, `dcat`, ...) or, when that is `dstore`, by its
//! first argument, the way busybox and coreutils' multicall binary do.

use anyhow::{Context, Result};
use clap::{ArgMatches, Command};
use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

mod cat;
mod compact;
mod export;
mod gateway;
mod grep;
mod import;
mod ingest;
mod links;
mod pb2json;
mod rotate;

/// One applet: its subcommand name, the dstore 1.x program name that runs it, its command-line
/// interface and its body.
pub struct Applet {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub command: fn() -> Command,
    pub run: fn(&ArgMatches) -> Result<ExitCode>,
}

pub static APPLETS: &[Applet] = &[
    Applet {
        name: "ingest",
        alias: Some("tcpdistro"),
        command: ingest::command,
        run: ingest::run,
    },
    Applet {
        name: "import",
        alias: None,
        command: import::command,
        run: import::run,
    },
    Applet {
        name: "cat",
        alias: Some("dcat"),
        command: cat::command,
        run: cat::run,
    },
    Applet {
        name: "pb2json",
        alias: Some("dnspb2json"),
        command: pb2json::command,
        run: pb2json::run,
    },
    Applet {
        name: "grep",
        alias: Some("dgrep"),
        command: grep::command,
        run: grep::run,
    },
    Applet {
        name: "rotate",
        alias: None,
        command: rotate::rotate_command,
        run: rotate::rotate,
    },
    Applet {
        name: "compact",
        alias: None,
        command: compact::command,
        run: compact::run,
    },
    Applet {
        name: "stats",
        alias: None,
        command: rotate::stats_command,
        run: rotate::stats,
    },
    Applet {
        name: "gateway",
        alias: Some("egateway"),
        command: gateway::command,
        run: gateway::run,
    },
    Applet {
        name: "export",
        alias: None,
        command: export::export_command,
        run: export::export,
    },
    Applet {
        name: "ship",
        alias: None,
        command: export::ship_command,
        run: export::ship,
    },
    Applet {
        name: "links",
        alias: None,
        command: links::command,
        run: links::run,
    },
];

/// Exit status for "ran and found nothing" (grep's 1); errors are 2.
pub const EXIT_ERROR: u8 = 2;

/// What a failure to print is said as (a full disk under `dstore cat > file`, say). A closed pipe
/// underneath still ends the command quietly (see main).
const CANNOT_WRITE: &str = "cannot write the output";

/// Prints `text` on standard output, whole, or says why it could not.
fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context(CANNOT_WRITE)
}

fn find(name: &str) -> Option<&'static Applet> {
    APPLETS
        .iter()
        .find(|a| a.name == name || a.alias == Some(name))
}

/// Runs the applet that `args` (argv, program name first) asks for.
pub fn dispatch(args: Vec<OsString>) -> Result<ExitCode> {
    let program = args
        .first()
        .and_then(|a| Path::new(a).file_stem())
        .and_then(|s| s.to_str())
        .unwrap_or("dstore");
    if let Some(applet) = find(program) {
        return run_applet(applet, args);
    }
    let mut top = top_command();
    let first = args.get(1).and_then(|a| a.to_str());
    match first {
        Some("--list") => {
            let mut list = String::new();
            for a in APPLETS {
                let alias = a.alias.map(|x| format!(" (also {x})")).unwrap_or_default();
                list += &format!("{}{alias}\n", a.name);
            }
            print(&list)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(name) if find(name).is_some() => {
            let applet = find(name).expect("just found");
            let mut rest = args;
            rest.remove(0);
            rest[0] = format!("dstore {}", applet.name).into();
            run_applet(applet, rest)
        }
        _ => {
            // Unknown word, --help, --version or nothing: clap prints the right thing.
            let m = top.try_get_matches_from_mut(args)?;
            let _ = m;
            top.print_help()?;
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

fn run_applet(applet: &Applet, args: Vec<OsString>) -> Result<ExitCode> {
    let mut cmd = (applet.command)()
        .name(applet.name)
        .version(env!("CARGO_PKG_VERSION"));
    if let Some(bin) = args.first().and_then(|a| a.to_str()) {
        cmd = cmd.bin_name(bin.to_string());
    }
    let matches = cmd.try_get_matches_from(args)?;
    (applet.run)(&matches)
}

fn top_command() -> Command {
    let mut cmd = Command::new("dstore")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Store and search PowerDNS protobuf DNS event streams")
        .after_help(
            "Also runs as tcpdistro, dgrep, dcat, dnspb2json and egateway (see `dstore links`).\n\
             `dstore --list` lists the applets.",
        )
        .subcommand_required(true);
    for a in APPLETS {
        cmd = cmd.subcommand((a.command)().name(a.name));
    }
    cmd
}
