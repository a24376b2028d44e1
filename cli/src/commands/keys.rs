//! `docket keys`: manage API keys on the embedded backend or an AWS
//! deployment.

use docket_core::auth::issue_api_key;
use std::process::ExitCode;

use clap::Subcommand;

use super::DeploymentArgs;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print its token (shown once; only a hash is kept).
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// standard (50 documents per batch) or premium.
        #[arg(long, default_value = "standard")]
        tier: docket_core::auth::Tier,
        #[command(flatten)]
        deployment: DeploymentArgs,
    },
}

/// Runs a `docket keys` subcommand.
pub fn execute(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create {
            tenant,
            tier,
            deployment,
        } => create(&tenant, tier, &deployment),
    }
}

/// Stores a new key for `tenant`, then prints its token and the tenant's
/// webhook signing secret on stdout.
fn create(
    tenant: &str,
    tier: docket_core::auth::Tier,
    deployment: &DeploymentArgs,
) -> anyhow::Result<ExitCode> {
    let tenant = docket_core::TenantId::parse(tenant)?;
    let deployment = deployment.deployment();
    let issued = super::block_on(async {
        let stores = deployment.open().await?;
        let now = chrono::Utc::now();
        Ok(issue_api_key(
            stores.keys.as_ref(),
            stores.secrets.as_ref(),
            &tenant,
            tier,
            now,
        )
        .await?)
    })?;
    eprintln!(
        "API key (shown once; only its hash is kept), then the tenant's webhook signing secret:"
    );
    println!("{}", issued.token);
    println!("{}", issued.webhook_secret);
    Ok(ExitCode::SUCCESS)
}
