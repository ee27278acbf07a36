//! `dl7`: the command-line application. It only parses arguments and calls
//! the library crates; each subcommand family lives in its own module under
//! `cli/` and owns its clap types and a `run` function.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Distributed Layer-7 load balancing for web-cache clusters.
#[derive(Parser)]
#[command(name = "dl7", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask the scheduling core which server owns a URL, or compare policies.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// Generate, import, export and describe workloads and traces.
    #[command(subcommand)]
    Trace(cli::trace::TraceCommand),
    #[command(flatten)]
    Sim(cli::sim::SimCommand),
    #[command(flatten)]
    Sweep(cli::sweep::SweepCommand),
    #[command(flatten)]
    Real(cli::real::RealCommand),
    #[command(flatten)]
    Lab(cli::lab::LabCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Policy(cmd) => cli::policy::run(cmd),
        Command::Trace(cmd) => cli::trace::run(cmd),
        Command::Sim(cmd) => cli::sim::run(cmd),
        Command::Sweep(cmd) => cli::sweep::run(cmd),
        Command::Real(cmd) => cli::real::run(cmd),
        Command::Lab(cmd) => cli::lab::run(cmd),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.chain().any(|e| e.is::<cli::InputError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
