//! Placeholder: replaced by the work on this subcommand family.

#[derive(clap::Subcommand)]
pub enum SweepCommand {
    /// Run an experiment sweep (not built yet).
    Sweep {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

pub fn run(_: SweepCommand) -> anyhow::Result<()> {
    anyhow::bail!("this command is not built yet")
}
