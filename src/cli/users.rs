//! `appliance user …`, `appliance token …` and `appliance audit tail`: identity
//! administration from the shell, working with the server stopped or running (the
//! database is shared in WAL mode; sessions revoked here end at the next request).
//! Every change goes through `crate::auth::ops` and is audited as `cli:<login>`.

use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::articles::open_db;
use crate::auth::ops::{self, Actor, NewUser, OpError, TokenRequest};
use crate::auth::{self, Role};
use crate::config::Config;
use crate::db::Db;
use crate::db::users::{self, Change};

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. Without --password-stdin a one-time set-password link is printed.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: Role,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a user's role (ends the user's sessions).
    SetRole {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: Role,
    },
    /// Disable a user: sign-in refused, sessions ended, API tokens stop working.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user again.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Print a one-time link to set a new password, or set it from standard input.
    ResetPassword {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    pub command: TokenCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it (only the token on stdout, once).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// Default: the user's role. Never higher than it.
        #[arg(long)]
        role: Option<Role>,
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    /// List tokens (prefix, owner, role, last use), of one user or all.
    List {
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id (from `token list`).
    Revoke { id: i64 },
}

/// The database for identity commands: created and migrated when missing (a fresh
/// install's first admin comes before the first `serve`).
pub(super) async fn open(config: &Config) -> anyhow::Result<Db> {
    let path = crate::data_dir::DataDir::new(&config.data_dir).db_path();
    if !path.exists() {
        super::migrate::migrate_now(config).await?;
        eprintln!("created the database {}", path.display());
    }
    Ok(open_db(config).await?.1)
}

fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (input is shown; pipe it in to avoid that): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

async fn find(db: &Db, email: &str) -> anyhow::Result<users::User> {
    let e = email.to_string();
    db.read(move |c| users::by_email(c, &e))
        .await?
        .with_context(|| format!("no user with email `{email}` (see `appliance user list`)"))
}

fn op_error(e: OpError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn run_user(config: &Config, args: &UserArgs) -> anyhow::Result<()> {
    let db = open(config).await?;
    let actor = Actor::cli();
    match &args.command {
        UserCommand::Create {
            email,
            role,
            display_name,
            password_stdin,
        } => {
            let email = auth::parse_email("email", email)
                .map_err(|f| anyhow::anyhow!("--email {}", f.message))?;
            let password_hash = if *password_stdin {
                let p = read_password()?;
                auth::check_password("password", &p, Some(&email))
                    .map_err(|f| anyhow::anyhow!("the password {}", f.message))?;
                Some(tokio::task::spawn_blocking(move || auth::hash_password(&p)).await??)
            } else {
                None
            };
            let needs_link = password_hash.is_none();
            let ttl = config.security.reset_link_ttl();
            let new = NewUser {
                email,
                display_name: display_name.trim().to_string(),
                role: *role,
                password_hash,
            };
            let (user, link) = db
                .write(move |c| {
                    let u = ops::create_user(c, &new, &actor)?;
                    let link = if needs_link {
                        Some(ops::issue_reset(c, &u, ttl, &actor)?)
                    } else {
                        None
                    };
                    Ok::<_, OpError>((u, link))
                })
                .await
                .map_err(op_error)?;
            println!("created {} user {} (id {})", user.role, user.email, user.id);
            if let Some((secret, expires)) = link {
                println!(
                    "set the password within {} h (until {expires}), once:\n{}",
                    config.security.reset_link_ttl_hours,
                    ops::reset_link(&config.public_base_url(None), &secret)
                );
            }
        }
        UserCommand::List { json } => {
            let list = db.read(users::list).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:>4}  {:<32} {:<7} {:<9} {:<24} last sign-in",
                    "id", "email", "role", "state", "created"
                );
                for u in list {
                    let state = if u.disabled {
                        "disabled"
                    } else if !u.password_set {
                        "no-passwd"
                    } else {
                        "active"
                    };
                    println!(
                        "{:>4}  {:<32} {:<7} {:<9} {:<24} {}",
                        u.id,
                        u.email,
                        u.role,
                        state,
                        u.created_at,
                        u.last_login_at.as_deref().unwrap_or("never")
                    );
                }
            }
        }
        UserCommand::SetRole { email, role } => {
            let u = find(&db, email).await?;
            let change = Change {
                role: Some(*role),
                ..Change::default()
            };
            let u = db
                .write(move |c| ops::change_user(c, u.id, &change, &actor))
                .await
                .map_err(op_error)?;
            println!("{} is now {} (their sessions ended)", u.email, u.role);
        }
        UserCommand::Disable { email } | UserCommand::Enable { email } => {
            let disable = matches!(args.command, UserCommand::Disable { .. });
            let u = find(&db, email).await?;
            let change = Change {
                disabled: Some(disable),
                ..Change::default()
            };
            let u = db
                .write(move |c| ops::change_user(c, u.id, &change, &actor))
                .await
                .map_err(op_error)?;
            if disable {
                println!(
                    "{} is disabled: sessions ended, API tokens refused",
                    u.email
                );
            } else {
                println!("{} is enabled", u.email);
            }
        }
        UserCommand::ResetPassword {
            email,
            password_stdin,
        } => {
            let u = find(&db, email).await?;
            if *password_stdin {
                let p = read_password()?;
                auth::check_password("password", &p, Some(&u.email))
                    .map_err(|f| anyhow::anyhow!("the password {}", f.message))?;
                let phc = tokio::task::spawn_blocking(move || auth::hash_password(&p)).await??;
                let change = Change {
                    password_hash: Some(phc),
                    ..Change::default()
                };
                let u = db
                    .write(move |c| ops::change_user(c, u.id, &change, &actor))
                    .await
                    .map_err(op_error)?;
                println!("password of {} set; their sessions ended", u.email);
            } else {
                let ttl = config.security.reset_link_ttl();
                let user = u.clone();
                let (secret, expires) = db
                    .write(move |c| ops::issue_reset(c, &user, ttl, &actor))
                    .await
                    .map_err(op_error)?;
                println!(
                    "one-time link for {} (valid until {expires}):\n{}",
                    u.email,
                    ops::reset_link(&config.public_base_url(None), &secret)
                );
            }
        }
    }
    db.close().await?;
    Ok(())
}

pub async fn run_token(config: &Config, args: &TokenArgs) -> anyhow::Result<()> {
    let db = open(config).await?;
    let actor = Actor::cli();
    match &args.command {
        TokenCommand::Create {
            email,
            name,
            role,
            expires_in_days,
        } => {
            let owner = find(&db, email).await?;
            let req = TokenRequest {
                role: role.unwrap_or(owner.role),
                owner,
                name: name.clone(),
                expires_at: expires_in_days
                    .map(|d| ops::from_now(time::Duration::days(i64::from(d)))),
            };
            let (secret, t) = db
                .write(move |c| ops::issue_token(c, &req, &actor))
                .await
                .map_err(op_error)?;
            eprintln!(
                "token {} ({}, {} for {}); it is shown once:",
                t.id, t.name, t.role, t.user_email
            );
            println!("{secret}");
        }
        TokenCommand::List { email, json } => {
            let scope = match email {
                Some(e) => Some(find(&db, e).await?.id),
                None => None,
            };
            let list = db.read(move |c| users::list_tokens(c, scope)).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:>4}  {:<16} {:<28} {:<7} {:<20} {:<24} state",
                    "id", "prefix", "owner", "role", "name", "last used"
                );
                for t in list {
                    let state = if t.revoked_at.is_some() {
                        "revoked".to_string()
                    } else {
                        t.expires_at
                            .map_or("active".into(), |e| format!("expires {e}"))
                    };
                    println!(
                        "{:>4}  apl_{:<12} {:<28} {:<7} {:<20} {:<24} {state}",
                        t.id,
                        t.prefix,
                        t.user_email,
                        t.role,
                        t.name,
                        t.last_used_at.as_deref().unwrap_or("never")
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let id = *id;
            let t = db
                .write(move |c| ops::revoke_token(c, id, &actor))
                .await
                .map_err(op_error)?;
            println!(
                "revoked token {} (apl_{}…, {})",
                t.id, t.prefix, t.user_email
            );
        }
    }
    db.close().await?;
    Ok(())
}
