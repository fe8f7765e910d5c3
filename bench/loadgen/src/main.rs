//! Conclave's benchmark load generator: many WebRTC clients in one process (real ICE, DTLS and
//! SRTP over UDP on 127.0.0.1) publishing synthetic Opus and VP8 and receiving it back through
//! the server under test, Conclave (WHIP/WHEP) or Janus (VideoRoom), from one scenario file.
//!
//! ```text
//! conclave-loadgen --target conclave|janus --scenario bench/scenarios/1-to-10.json \
//!     [--url URL] [--server-pid PID] [--out bench/results] [--workers 8]
//! ```
//!
//! Writes `<out>/<scenario>.<target>.json` (the summary) and `<out>/<scenario>.<target>.clients.csv`
//! (one line per peer connection). Exits 0 when the run completed, even if joins failed: the
//! summary says how many and why.

mod http;
mod media;
mod procfs;
mod run;
mod scenario;
mod session_description;
mod signaling;
mod stats;

use run::{Options, TargetKind};
use scenario::Scenario;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: conclave-loadgen --target conclave|janus --scenario FILE [--url URL] [--server-pid PID] [--out DIR] [--workers N]";

struct Args {
    options: Options,
    out: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let mut target = None;
    let mut scenario_path = None;
    let mut url = None;
    let mut server_pid = None;
    let mut out = PathBuf::from("bench/results");
    let mut workers = 8;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--target" => {
                target = Some(match value()?.as_str() {
                    "conclave" => TargetKind::Conclave,
                    "janus" => TargetKind::Janus,
                    other => return Err(format!("unknown target {other}\n{USAGE}")),
                })
            }
            "--scenario" => scenario_path = Some(PathBuf::from(value()?)),
            "--url" => url = Some(value()?),
            "--server-pid" => {
                server_pid = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--server-pid needs a number")?,
                )
            }
            "--out" => out = PathBuf::from(value()?),
            "--workers" => workers = value()?.parse().map_err(|_| "--workers needs a number")?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    let target = target.ok_or_else(|| format!("--target is required\n{USAGE}"))?;
    let path = scenario_path.ok_or_else(|| format!("--scenario is required\n{USAGE}"))?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let scenario = Scenario::from_json(&text)?;
    let url = url.unwrap_or_else(|| match target {
        TargetKind::Conclave => "http://127.0.0.1:8080".to_owned(),
        TargetKind::Janus => "http://127.0.0.1:8088/janus".to_owned(),
    });
    Ok(Args {
        options: Options {
            target,
            url,
            scenario,
            server_pid,
            workers,
        },
        out,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let outcome = match run::run(args.options) {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("loadgen: {message}");
            return ExitCode::FAILURE;
        }
    };
    let summary = &outcome.summary;
    let stem = format!("{}.{}", summary.scenario, summary.target);
    let json = match serde_json::to_string_pretty(summary) {
        Ok(json) => json,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let written = std::fs::create_dir_all(&args.out)
        .and_then(|()| std::fs::write(args.out.join(format!("{stem}.json")), &json))
        .and_then(|()| {
            std::fs::write(
                args.out.join(format!("{stem}.clients.csv")),
                &outcome.clients_csv,
            )
        });
    if let Err(e) = written {
        eprintln!(
            "loadgen: cannot write results to {}: {e}",
            args.out.display()
        );
        return ExitCode::FAILURE;
    }
    println!("{json}");
    ExitCode::SUCCESS
}
