//! Placeholder: replaced by the work on this subcommand family.

#[derive(clap::Subcommand)]
pub enum LabCommand {
    /// Manage an emulated lab (not built yet).
    Lab {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

pub fn run(_: LabCommand) -> anyhow::Result<()> {
    anyhow::bail!("this command is not built yet")
}
