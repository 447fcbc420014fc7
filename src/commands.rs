//! One function per subcommand.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::app::Application;
use crate::cli::{DemoArgs, SignArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, DatabaseUrl};
use crate::crypto::{random_token, sha256_hex};
use crate::gateway::Gateway;
use crate::store::Store;

/// Creates an admin token in the store and returns it (shown once).
pub async fn create_admin_token(
    store: &Store,
    name: &str,
    now_millis: i64,
) -> anyhow::Result<String> {
    let token = random_token("ega_", 32)?;
    store
        .insert_admin_token(name, &sha256_hex(token.as_bytes()), now_millis)
        .await?;
    Ok(token)
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config, Arc::new(SystemClock)).await?;
    tracing::info!(port = app.port(), "embedgate is serving");
    app.run_until_stopped().await?;
    Ok(())
}

pub async fn migrate(config: Config) -> anyhow::Result<()> {
    let store = Store::connect(&config.database.url, 1).await?;
    store.migrate().await?;
    println!("migrations applied to {}", config.database.url.redacted());
    Ok(())
}

pub async fn admin_token(config: Config, name: &str) -> anyhow::Result<()> {
    let store = Store::connect(&config.database.url, 1).await?;
    store.migrate().await?;
    let token = create_admin_token(&store, name, SystemClock.now().timestamp_millis()).await?;
    println!("admin token {name:?} created; it is shown only once:");
    println!("{token}");
    Ok(())
}

pub fn rotate_assertion_key(config: &Config) -> anyhow::Result<()> {
    let kid = crate::keys::rotate_assertion_key(&config.keys.dir, SystemClock.unix())?;
    println!(
        "new assertion key {kid} in {}; restart every gateway instance to sign with it",
        config.keys.dir.display()
    );
    Ok(())
}

pub fn sign(args: SignArgs) -> anyhow::Result<()> {
    let algorithm = crate::token::SigningAlgorithm::parse(&args.algorithm)
        .with_context(|| format!("unknown algorithm {:?}", args.algorithm))?;
    let request = crate::sign::SignRequest {
        client_id: args.client_id,
        secret: args.secret,
        algorithm,
        email: args.email,
        workbook: args.workbook,
        teams: args.teams,
        account_type: args.account_type,
        attributes: args.attrs.into_iter().collect(),
        first_name: args.first_name,
        last_name: args.last_name,
        ttl_secs: args.ttl_secs,
        tag: args.tag,
        base_url: args.base_url,
        now: SystemClock.unix(),
    };
    println!("{}", crate::sign::sign_url(&request)?);
    Ok(())
}

pub async fn demo(mut config: Config, args: DemoArgs) -> anyhow::Result<()> {
    let dir = match args.data_dir {
        Some(dir) => dir,
        None => {
            let name = random_token("embedgate-demo-", 6)?;
            std::env::temp_dir().join(name)
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    config.server.bind = args.bind.clone();
    config.server.public_url = format!("http://{}", args.bind);
    config.database.url = DatabaseUrl(format!("sqlite://{}", dir.join("embedgate.db").display()));
    config.keys.dir = dir.join("keys");
    config.validate()?;
    let mut gateway = Gateway::build(config, Arc::new(SystemClock)).await?;
    let secret = match crate::demo::existing_secret(&gateway).await? {
        Some(secret) => secret,
        None => crate::demo::seed(&gateway)
            .await
            .map_err(|p| anyhow::anyhow!("seeding the demo failed: {p}"))?,
    };
    let admin = create_admin_token(&gateway.store, "demo", gateway.now_millis()).await?;
    gateway.demo = Some(crate::demo::DemoSettings {
        client_id: crate::demo::DEMO_CLIENT_ID.into(),
        secret: secret.clone(),
    });
    let public = gateway.config.public_url().to_owned();
    let app = Application::serve(gateway)?;
    print_demo_banner(&dir, &public, &secret, &admin);
    app.run_until_stopped().await?;
    Ok(())
}

fn print_demo_banner(dir: &std::path::Path, public: &str, secret: &str, admin: &str) {
    let data: PathBuf = dir.into();
    println!();
    println!("embedgate demo is running");
    println!("  demo host page : {public}/demo/");
    println!("  data folder    : {}", data.display());
    println!("  embed client   : {} (HS256)", crate::demo::DEMO_CLIENT_ID);
    println!("  client secret  : {secret}");
    println!("  admin token    : {admin}");
    println!();
    println!("  try: curl -H 'Authorization: Bearer {admin}' {public}/admin/api/settings");
    println!();
}
