//! `dl7`: the command-line application. It only parses arguments and calls
//! the library crates; each subcommand family lives in its own module.

mod cli;
mod results;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Policy(cmd) => cli::policy::run(cmd),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.is::<cli::InputError>() || err.chain().any(|e| e.is::<cli::InputError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
