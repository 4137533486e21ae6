//! The HTTP side of the client commands: where hookgate is, how to authenticate, and how its
//! answers and errors reach the terminal.

#![expect(clippy::doc_markdown, reason = "these doc comments are --help text, read in a terminal")]

use std::fmt;
use std::io::Write as _;

use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// How the client commands reach hookgate. Flags win over `HOOKGATE_*` variables, which win
/// over `url`/`client_id`/`client_secret` in `hookgate.toml`.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// hookgate's base URL [env: HOOKGATE_URL; default http://127.0.0.1:8080]
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// API client id [env: HOOKGATE_CLIENT_ID]
    #[arg(long, global = true)]
    pub client_id: Option<String>,
    /// API client secret [env: HOOKGATE_CLIENT_SECRET]
    #[arg(long, global = true)]
    pub client_secret: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Exit codes scripts can rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Something else failed (bad local input, an unreadable file).
    Failure = 1,
    /// hookgate refused the request (400, 409, 413, 415, 422).
    Refused = 3,
    /// The thing named does not exist (404).
    NotFound = 4,
    /// Missing or rejected credentials, or a missing scope (401, 403).
    Auth = 5,
    /// hookgate could not be reached or failed (5xx).
    Unavailable = 6,
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub fn fail(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    CliError { exit, message: message.into() }.into()
}

/// A logged-in connection to hookgate.
pub struct Remote {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Remote {
    /// Resolves the connection settings and fetches a token.
    pub async fn connect(
        conn: &Connection,
        file_url: Option<&str>,
        file_id: Option<&str>,
        file_secret: Option<&str>,
    ) -> anyhow::Result<Self> {
        let base = conn
            .url
            .clone()
            .or_else(|| file_url.map(str::to_owned))
            .unwrap_or_else(|| "http://127.0.0.1:8080".into())
            .trim_end_matches('/')
            .to_owned();
        let (Some(id), Some(secret)) =
            (conn.client_id.as_deref().or(file_id), conn.client_secret.as_deref().or(file_secret))
        else {
            return Err(fail(
                Exit::Auth,
                "no credentials: pass --client-id and --client-secret, set HOOKGATE_CLIENT_ID and \
                 HOOKGATE_CLIENT_SECRET, or put client_id and client_secret in hookgate.toml \
                 (create a client with `hookgate client create --name cli --scope sp:scopes:all`)",
            ));
        };
        let http = reqwest::Client::builder()
            .user_agent(concat!("hookgate-cli/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let response = http
            .post(format!("{base}/oauth/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", id), ("client_secret", secret)])
            .send()
            .await
            .map_err(|e| unreachable(&base, &e))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let Some(token) = body["access_token"].as_str() else {
            let reason = body["error_description"].as_str().or(body["error"].as_str()).unwrap_or("no token");
            return Err(fail(
                Exit::Auth,
                format!("hookgate at {base} refused the credentials ({status}): {reason}"),
            ));
        };
        Ok(Self { http, token: token.to_owned(), base })
    }

    /// Sends a request and returns the JSON answer (`Null` for an empty one), or the error in
    /// hookgate's words with its exit code.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        self.call_with(method, path, body, "application/json").await.map(|(v, _)| v)
    }

    /// Like [`Remote::call`], with a content type and the answer's `X-Total-Count`.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> anyhow::Result<(Value, Option<u64>)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.header("Content-Type", content_type).body(body.to_string());
        }
        let response = request.send().await.map_err(|e| unreachable(&self.base, &e))?;
        let status = response.status();
        let total = response
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = response.text().await.map_err(|e| unreachable(&self.base, &e))?;
        let value = if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text)? };
        if status.is_success() {
            return Ok((value, total));
        }
        let message = value["messages"][0]["text"]
            .as_str()
            .or(value["error"].as_str())
            .map_or_else(|| text.clone(), str::to_owned);
        let exit = match status {
            StatusCode::NOT_FOUND => Exit::NotFound,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Exit::Auth,
            s if s.is_server_error() => Exit::Unavailable,
            _ => Exit::Refused,
        };
        Err(fail(exit, format!("{message} ({status})")))
    }
}

fn unreachable(base: &str, e: &reqwest::Error) -> anyhow::Error {
    fail(
        Exit::Unavailable,
        format!(
            "cannot reach hookgate at {base}: {e}; is `hookgate serve` running there? (set --url or HOOKGATE_URL)"
        ),
    )
}

/// Prints `rows` under `headers` with aligned columns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| if i == last { (*c).to_owned() } else { format!("{c:<w$}", w = widths[i]) })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(headers.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// A JSON value as a table cell: strings bare, nothing as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Prints a JSON value on one line (for `--json`).
pub fn print_json(v: &Value) -> std::io::Result<()> {
    writeln!(std::io::stdout().lock(), "{v}")
}
