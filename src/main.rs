//! The seqtail binary: parse, set up logging and signals, run, map the outcome to an exit code.

use std::collections::HashMap;

use seqtail::cli::{self, Command};
use seqtail::{Context, StopFlag};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env: HashMap<String, String> = std::env::vars().collect();
    let invocation = match cli::parse(&args, &env) {
        Ok(inv) => inv,
        Err(e) => {
            let json = args
                .windows(2)
                .any(|w| w[0] == "--log-format" && w[1] == "json")
                || args.iter().any(|a| a == "--log-format=json")
                || env.get("SEQTAIL_LOG_FORMAT").is_some_and(|f| f == "json");
            let format = if json {
                cli::LogFormat::Json
            } else {
                cli::LogFormat::Text
            };
            seqtail::logging::print_error(format, &seqtail::describe_failure(&e));
            std::process::exit(e.exit_code());
        }
    };
    if !matches!(invocation.command, Command::Help(_) | Command::Version) {
        seqtail::logging::init(
            invocation.global.log_format,
            invocation.global.verbosity,
            env.get("RUST_LOG").map(String::as_str),
        );
    }

    // First SIGINT/SIGTERM: finish and commit the batch in flight, then exit 0.
    // Second: exit at once, committing nothing more.
    let stop = StopFlag::new();
    let handler_flag = stop.clone();
    let installed = ctrlc::set_handler(move || {
        if handler_flag.raise() >= 2 {
            eprintln!("seqtail: second signal, exiting without committing");
            std::process::exit(130);
        }
        log::warn!("signal received: finishing the batch in flight, then stopping");
    });
    if let Err(e) = installed {
        eprintln!("seqtail: cannot install the signal handler: {e}");
        std::process::exit(70);
    }

    let context = Context {
        host: env
            .get("HOSTNAME")
            .cloned()
            .or_else(|| {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into()),
        run_id: seqtail::run_id(),
    };
    if let Err(e) = seqtail::execute(invocation, &stop, &context) {
        log::error!("{e}");
        std::process::exit(e.exit_code());
    }
}
