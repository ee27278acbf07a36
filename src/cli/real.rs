//! Placeholder: replaced by the work on this subcommand family.

#[derive(clap::Subcommand)]
pub enum RealCommand {
    /// Run a real cluster (not built yet).
    Cluster {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

pub fn run(_: RealCommand) -> anyhow::Result<()> {
    anyhow::bail!("this command is not built yet")
}
