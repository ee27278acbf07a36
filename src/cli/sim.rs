//! Placeholder: replaced by the work on this subcommand family.

#[derive(clap::Subcommand)]
pub enum SimCommand {
    /// Simulate one cell (not built yet).
    Sim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

pub fn run(_: SimCommand) -> anyhow::Result<()> {
    anyhow::bail!("this command is not built yet")
}
