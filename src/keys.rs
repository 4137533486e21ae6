//! The keys that seal secrets at rest ([`crate::store::crypto`]): where they come from, and the
//! `hookgate keys` commands.
//!
//! Secure by default: with no key configured, an embedded SQLite database gets a generated key
//! in a file beside it (`hookgate.db.key`, mode 0600) on its first start; PostgreSQL refuses to
//! start, since every instance must share one key.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::config::{KeySource, Settings};
use crate::domain::keyring::{Key, Keyring};
use crate::store::{self, Backend, Store};

/// The keyring `settings` name.
pub fn keyring(settings: &Settings) -> anyhow::Result<Keyring> {
    match &settings.encryption {
        KeySource::Keys(text) => {
            Keyring::parse(text.expose()).map_err(|m| anyhow::anyhow!("HOOKGATE_ENCRYPTION_KEY: {m}"))
        }
        KeySource::File(path) => read_key_file(path),
        KeySource::Default => default_keyring(&settings.database_url),
    }
}

fn read_key_file(path: &Path) -> anyhow::Result<Keyring> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the encryption key file {}", path.display()))?;
    Keyring::parse(&text).map_err(|m| anyhow::anyhow!("the encryption key file {}: {m}", path.display()))
}

fn default_keyring(database_url: &str) -> anyhow::Result<Keyring> {
    if Backend::from_url(database_url) == Backend::Postgres {
        bail!(
            "PostgreSQL needs an encryption key that every instance shares: set HOOKGATE_ENCRYPTION_KEY \
             or HOOKGATE_ENCRYPTION_KEY_FILE to the base64 of 32 random bytes (`hookgate keys generate` \
             prints one)"
        );
    }
    let path = database_url.strip_prefix("sqlite://").unwrap_or(database_url);
    if path.contains(":memory:") {
        return Ok(Keyring::new(Key::generate().0, []));
    }
    let file = PathBuf::from(format!("{path}.key"));
    if file.exists() {
        return read_key_file(&file);
    }
    let (key, text) = Key::generate();
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("creating the encryption key file {}", file.display()))?;
    writeln!(out, "{text}").and_then(|()| out.sync_all())?;
    tracing::warn!(
        file = %file.display(),
        key = key.id(),
        "generated the key that seals this database's secrets; keep it with the database (a backup \
         without it cannot open them), or set HOOKGATE_ENCRYPTION_KEY_FILE"
    );
    Ok(Keyring::new(key, []))
}

/// Installs the keyring for this process and checks it against the database: on a database
/// whose secrets were never sealed, seals them.
pub fn install(settings: &Settings, store: &Store) -> anyhow::Result<()> {
    let ring = keyring(settings)?;
    let current = ring.current().id().to_owned();
    store::crypto::install(ring);
    let sealed = store.run_blocking(store::crypto::adopt).map_err(|e| anyhow::anyhow!("{e}"))?;
    if sealed > 0 {
        tracing::info!(sealed, key = current, "sealed the secrets stored in plaintext");
    }
    Ok(())
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Print a new random key (the base64 of 32 bytes).
    Generate,
    /// Seal every secret again under the key in a file, in batches, while instances run.
    ///
    /// Give every instance the new key first (as the first of its keys, the old one after it),
    /// then run this; the old key can go once it is done.
    Rotate {
        /// The file holding the new key.
        #[arg(long)]
        new_key_file: PathBuf,
    },
}

pub fn run(
    command: KeysCommand,
    settings: &Settings,
    store: Option<&Store>,
    json: bool,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate => {
            println!("{}", Key::generate().1);
            Ok(())
        }
        KeysCommand::Rotate { new_key_file } => {
            let Some(store) = store else { bail!("rotating needs the database") };
            let new = read_key_file(&new_key_file)?;
            let old = keyring(settings)?;
            let ring = Keyring::new(new.current().clone(), old.keys().iter().cloned());
            let id = ring.current().id().to_owned();
            let done = store
                .run_blocking(|c| store::crypto::rotate(c, &ring))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::json!({"key": id, "resealed": done}));
            } else {
                println!("sealed {} secrets under key {id}", done.total());
            }
            Ok(())
        }
    }
}
