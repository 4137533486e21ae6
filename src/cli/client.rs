//! `hookgate client create|list|revoke`: API clients, straight on the database (for bootstrap).

use std::io::Write as _;

use anyhow::Context as _;
use clap::Subcommand;

use crate::clock::SharedClock;
use crate::domain::ids::ClientId;
use crate::domain::scope::Scopes;
use crate::store::audit::{Entry, audited};
use crate::store::{Store, StoreError, clients};

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a client; its secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// A scope to grant (repeatable; `sp:scopes:all` grants every scope).
        #[arg(long = "scope", required = true, num_args = 1..)]
        scopes: Vec<String>,
    },
    /// List clients (never their secrets).
    List,
    /// Revoke a client and every token it holds.
    Revoke { client_id: String },
}

pub fn run(command: ClientCommand, store: &Store, clock: &SharedClock, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        ClientCommand::Create { name, scopes } => {
            if name.trim().is_empty() {
                anyhow::bail!("--name must not be empty");
            }
            let scopes = Scopes::parse(&scopes.join(" ")).map_err(anyhow::Error::msg)?;
            let now = clock.now();
            let (client, secret) = store.run_blocking(|c| {
                audited(c, now, |c| {
                    let (client, secret) = clients::create(c, &name, &scopes, now)?;
                    let after = serde_json::json!({"clientId": client.id, "name": client.name, "scopes": scopes.to_string()});
                    Ok(((client.clone(), secret), by_cli("client.create", &client.id, None, Some(after))))
                })
            })?;
            if json {
                let body = serde_json::json!({ "clientId": client.id, "clientSecret": secret.expose(), "scopes": scopes.to_string() });
                writeln!(out, "{body}")?;
            } else {
                writeln!(out, "client id:     {}", client.id)?;
                writeln!(out, "client secret: {}", secret.expose())?;
                writeln!(out, "scopes:        {scopes}")?;
                writeln!(out, "The secret is shown only now; store it safely.")?;
            }
        }
        ClientCommand::List => {
            let list = store.run_blocking(clients::list)?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "clientId": c.id, "name": c.name, "scopes": c.scopes.to_string(),
                            "created": crate::api::iso(c.created), "revoked": c.revoked_at.map(crate::api::iso),
                        })
                    })
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(rows))?;
            } else {
                writeln!(out, "{:<32}  {:<20}  {:<8}  SCOPES", "CLIENT ID", "NAME", "STATUS")?;
                for c in &list {
                    let status = if c.revoked_at.is_some() { "revoked" } else { "active" };
                    writeln!(out, "{:<32}  {:<20}  {:<8}  {}", c.id, c.name, status, c.scopes)?;
                }
            }
        }
        ClientCommand::Revoke { client_id } => {
            let id: ClientId = client_id.parse().map_err(anyhow::Error::msg)?;
            let now = clock.now();
            let revoked = store.run_blocking(|c| {
                audited(c, now, |c| {
                    clients::revoke(c, &id, now)?;
                    Ok(((), by_cli("client.revoke", &id, None, None)))
                })
            });
            match revoked {
                Ok(()) => writeln!(out, "client {id} revoked")?,
                Err(StoreError::NotFound) => anyhow::bail!("no client has id {id}"),
                Err(e) => return Err(e).context("revoking the client"),
            }
        }
    }
    Ok(())
}

/// An audit entry for a change made by a command on the database.
fn by_cli(
    action: &'static str,
    client: &ClientId,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Entry {
    Entry {
        actor: "cli".into(),
        action,
        resource_type: "client",
        resource_id: client.to_string(),
        before,
        after,
    }
}
