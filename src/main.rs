//! The `dstore` executable: finds the applet and turns its outcome into an exit code.
//! Exit codes: 0 success (or a match), 1 ran but found nothing, 2 error.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    match dstore::applets::dispatch(args) {
        Ok(code) => code,
        Err(err) => {
            if let Some(e) = err.downcast_ref::<clap::Error>() {
                // Help and version go to stdout with exit 0; usage errors exit 2.
                let _ = e.print();
                return if e.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            let broken_pipe = err.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("dstore: error: {}", message(&err));
            ExitCode::from(dstore::applets::EXIT_ERROR)
        }
    }
}

/// The error and its causes, each said once: an error whose message already ends with its cause's
/// (a search error quoting its I/O error, say) is not followed by that cause again.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let said = cause.to_string();
        if text.ends_with(&said) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&said);
    }
    text
}
