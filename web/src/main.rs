//! The `centralino` binary: parses the command line and configuration and
//! hands over to the composition root in the `web` library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use web::{Application, RawConfig};

#[derive(Parser)]
#[command(name = "centralino", version, about = "Telephony and messaging gateway with a CTI dialer core, around a compact CRM.")]
struct Cli {
    /// A TOML configuration file (environment variables CENTRALINO_* and DATABASE_URL override it).
    #[arg(long, global = true, env = "CENTRALINO_CONFIG")]
    config: Option<PathBuf>,
    /// Database: a file path (SQLite) or a postgres:// URL.
    #[arg(long, global = true)]
    db: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the HTTP API (and, as they land, SIP and the workers).
    Serve {
        /// HTTP listen address (default 127.0.0.1:8080).
        #[arg(long)]
        http: Option<String>,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Bounce classification (DSN, ARF, auto-replies) from the command line.
    Bounce {
        #[command(subcommand)]
        cmd: BounceCmd,
    },
    /// Import records from a file.
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// Dialer tools.
    Dialer {
        #[command(subcommand)]
        cmd: DialerCmd,
    },
    /// Create a demo database (≈1,000 parties, users for every role), print the credentials, and serve it.
    Demo {
        /// HTTP listen address (default 127.0.0.1:8080).
        #[arg(long)]
        http: Option<String>,
        /// How many parties to create.
        #[arg(long, default_value_t = 1000)]
        parties: usize,
        /// Create the data and exit instead of serving.
        #[arg(long)]
        no_serve: bool,
        /// Do not start the simulated carrier and the demo dialer campaign.
        #[arg(long)]
        no_carrier: bool,
    },
}

/// Bounce-mailbox tools for operators.
#[derive(Subcommand)]
enum BounceCmd {
    /// Classify raw messages: one JSON line per file with `file`,
    /// `is_bounce`, `kind`, `recipient`, `reason`, `hard`, `status` and
    /// every failed recipient under `failures`.
    Classify {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ImportWhat {
    /// Import parties from a CSV file (header row required).
    Parties {
        file: PathBuf,
        /// Column mapping `HEADER=FIELD` (repeatable), e.g. `--map Telefono=phone`. Unmapped headers that already name a field are used as is.
        #[arg(long = "map")]
        map: Vec<String>,
        /// Where to write rejected rows (line number and reason). Default: FILE.rejects.csv
        #[arg(long)]
        rejects: Option<PathBuf>,
        /// Owner of the imported parties (a username).
        #[arg(long)]
        owner: Option<String>,
    },
}

#[derive(Subcommand)]
enum DialerCmd {
    /// Drain a campaign's hopper without dialing: claim in batches, hold
    /// each lead `--hold-ms`, book it done. One JSON line per claimed lead
    /// (`lead`, `attempt`, `node`, `claimed_us`, `finished_us`), for testing
    /// and measuring claims by several processes on one database.
    ClaimBench {
        #[arg(long)]
        campaign: i64,
        #[arg(long, default_value = "bench")]
        node: String,
        #[arg(long, default_value_t = 5)]
        batch: usize,
        #[arg(long, default_value_t = 0)]
        hold_ms: u64,
    },
}

#[derive(Subcommand)]
enum UserCmd {
    /// Add a user. Prints the generated password when none is given.
    Add {
        username: String,
        /// agent, support, marketer, supervisor or admin
        #[arg(long)]
        role: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into()))
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut raw = RawConfig::load(cli.config.as_deref())?;
    if let Some(db) = cli.db {
        raw.database_url = Some(db);
    }
    match cli.cmd {
        Cmd::Serve { http } => {
            if http.is_some() {
                raw.http = http;
            }
            let settings = raw.resolve()?;
            let app = Application::build(&settings).await?;
            println!("centralino listening on http://{}", app.local_addr());
            app.run_until_stopped(web::app::shutdown_signal()).await
        }
        Cmd::Bounce { cmd: BounceCmd::Classify { files } } => web::cli::bounce_classify(&files),
        Cmd::Migrate => {
            let settings = raw.resolve()?;
            web::app::open_store(&settings).await?.close().await;
            println!("database at {} is up to date", settings.database_url);
            Ok(())
        }
        Cmd::Import { what: ImportWhat::Parties { file, map, rejects, owner } } => {
            let settings = raw.resolve()?;
            let store = web::app::open_store(&settings).await?;
            let r = web::cli::import_parties(&store, &file, &map, rejects.as_deref(), owner.as_deref()).await;
            store.close().await;
            r
        }
        Cmd::Dialer { cmd: DialerCmd::ClaimBench { campaign, node, batch, hold_ms } } => {
            let settings = raw.resolve()?;
            let store = web::app::open_store(&settings).await?;
            let r = web::cli::dialer_claim_bench(&store, campaign, &node, batch, hold_ms).await;
            store.close().await;
            r
        }
        Cmd::User { cmd: UserCmd::Add { username, role, password, name } } => {
            let settings = raw.resolve()?;
            let store = web::app::open_store(&settings).await?;
            let generated = password.is_none();
            let password = password.unwrap_or_else(web::demo::random_password);
            let user = store
                .create_user(&crm::Actor::system(), crm::auth::NewUser { username, display_name: name, password: password.clone(), role, team_id: None })
                .await
                .map_err(web::cli::describe)
                .context("adding the user")?;
            println!("added user {} (id {}, role {})", user.username, user.id, user.role);
            if generated {
                println!("password: {password}");
            }
            store.close().await;
            Ok(())
        }
        Cmd::Demo { http, parties, no_serve, no_carrier } => {
            if http.is_some() {
                raw.http = http;
            }
            if raw.database_url.is_none() {
                raw.database_url = Some("centralino-demo.db".into());
            }
            let settings = raw.resolve()?;
            let store = web::app::open_store(&settings).await?;
            let creds = web::demo::populate(&store, parties).await?;
            if no_serve {
                store.close().await;
                return Ok(());
            }
            // A simulated carrier on loopback and a running campaign that
            // calls it, so an agent who goes ready hears calls at once.
            let carrier = match (settings.sip, no_carrier) {
                (Some(sip), false) => {
                    let c = web::demo::start_carrier(sip.ip()).await?;
                    web::demo::demo_campaign(&store, c.addr).await?;
                    Some(c)
                }
                _ => None,
            };
            let app = Application::with_store(&settings, store).await?;
            println!("\ncentralino demo on http://{}  (database {})", app.local_addr(), settings.database_url);
            if let Some(c) = &carrier {
                println!("simulated carrier on {} (campaign \"{}\"): log in as agent1, pick the campaign, press Ready (r)", c.addr, web::demo::DEMO_CAMPAIGN);
            }
            println!("web console: http://{}/console", app.local_addr());
            println!("log in with any of:");
            for (user, role, pw) in &creds {
                println!("  {user:<12} {role:<11} password: {pw}");
            }
            app.run_until_stopped(web::app::shutdown_signal()).await
        }
    }
}
