//! Placeholder: replaced by the work on this subcommand family.

#[derive(clap::Subcommand)]
pub enum TraceCommand {
    /// Generate a catalog from a workload (not built yet).
    Gen {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

pub fn run(_: TraceCommand) -> anyhow::Result<()> {
    anyhow::bail!("this command is not built yet")
}
