//! `dl7 policy pick|spread`.

use clap::{Args, Subcommand};
use dl7_core::{Membership, NoLoad, Params, PolicyKind, PolicySpec, RequestKey};

use super::input_error;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the 0-based index of the server that owns each URL, one per line.
    Pick(PickArgs),
}

#[derive(Args)]
pub struct PickArgs {
    /// Policy name.
    #[arg(long)]
    policy: String,
    /// Comma-separated server names, e.g. 10.0.0.1:3128,10.0.0.2:3128.
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Policy parameter, key=value (repeatable).
    #[arg(long = "param")]
    params: Vec<String>,
    /// URLs to place.
    urls: Vec<String>,
}

pub fn run(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Pick(args) => pick(args),
    }
}

fn pick(args: PickArgs) -> anyhow::Result<()> {
    let kind = PolicyKind::from_name(&args.policy).map_err(input_error)?;
    let params = Params::parse(args.params.iter().map(String::as_str)).map_err(input_error)?;
    let members = Membership::from_names(args.servers.iter().filter(|s| !s.is_empty()).cloned()).map_err(input_error)?;
    let mut policy = PolicySpec { kind, params }.build(&members).map_err(input_error)?;
    let mut out = String::new();
    for url in &args.urls {
        let key = RequestKey::new(url.as_bytes());
        out.push_str(&policy.pick(&key, &NoLoad).0.to_string());
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}
