//! The emulator's own files in its data directory, beside the stores: the kept token, so that a
//! restart keeps the exported contexts working, and the record of the running server, so that
//! `env` and the client commands find it without flags.
//!
//! Neither name ends in `.s`, so the file backend never takes them for stores.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use blobjobs_backends::http::Token;
use serde::{Deserialize, Serialize};

/// The default data directory, relative to the working directory.
pub const DEFAULT_DIR: &str = ".blobs-emulator";

/// The file holding the generated token (mode 0600).
pub const TOKEN_FILE: &str = "token";

/// The file that keeps a data directory the emulator created out of version control: it
/// holds local data and the kept token, which must not be committed by accident.
pub const GITIGNORE_FILE: &str = ".gitignore";

/// The file recording the server last started on the directory.
pub const SERVER_FILE: &str = "server.json";

/// Where a running server's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenOrigin {
    /// The directory's [`TOKEN_FILE`].
    Kept,
    /// `BLOBS_EMULATOR_TOKEN` or `--token`, which is never written down.
    Given,
}

/// What [`SERVER_FILE`] says about the server last started on the directory. It holds no
/// secret: the token stays in [`TOKEN_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerRecord {
    /// The base URL clients use.
    pub url: String,
    /// The site ID of the context it printed.
    pub site: String,
    /// Whether its token is the kept one.
    pub token: TokenOrigin,
    /// Its process ID, so that it removes only its own record when it stops.
    pub pid: u32,
}

/// The token `serve` uses, where it comes from, and what the banner says about it. A token
/// given wins (and is not written down); else the data directory's, so that a restart keeps
/// every exported context working; in memory, where nothing outlives the process, a new one.
pub fn serve_token(
    given: Option<Token>,
    dir: Option<&DataDir>,
) -> Result<(Token, TokenOrigin, Option<String>)> {
    Ok(match (given, dir) {
        (Some(token), _) if token.is_empty() => bail!("--token must not be empty"),
        (Some(token), _) => (token, TokenOrigin::Given, None),
        (None, Some(dir)) => (
            dir.token_or_create()?,
            TokenOrigin::Kept,
            Some(format!(
                "kept in {}; set BLOBS_EMULATOR_TOKEN to use another",
                dir.file(TOKEN_FILE).display()
            )),
        ),
        (None, None) => (
            Token::new(super::random_token()?),
            TokenOrigin::Given,
            Some("generated for this run; set BLOBS_EMULATOR_TOKEN to keep one".to_owned()),
        ),
    })
}

/// A data directory, seen by the binary.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// The directory at `path` (which may not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        DataDir { path: path.into() }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates the directory if it is missing (only its owner may enter it) and proves that a
    /// file can be written, synced and removed there: permission bits do not tell, since root
    /// ignores them and a read-only mount or a full disk refuses writes whatever they say.
    pub fn prepare(&self) -> Result<()> {
        let shown = self.path.display();
        let created = !self.path.exists();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&self.path)
            .map_err(|e| anyhow::anyhow!("cannot create the data directory {shown}: {}", os(&e)))?;
        if !self.path.is_dir() {
            bail!("the data directory {shown} is not a directory");
        }
        let probe = || -> std::io::Result<()> {
            let mut file = tempfile::Builder::new()
                .prefix(".write-probe-")
                .tempfile_in(&self.path)?;
            file.write_all(b"probe")?;
            file.as_file().sync_all()?;
            file.close()
        };
        probe().map_err(|e| {
            anyhow::anyhow!(
                "the data directory {shown} is not writable: {}; give another with --dir, or use --in-memory",
                os(&e)
            )
        })?;
        // Only in a directory this call created: one the user made is theirs to manage.
        if created {
            std::fs::write(
                self.file(GITIGNORE_FILE),
                "# Created by blobs-emulator: local data and a token, not for version control.\n*\n",
            )
            .map_err(|e| anyhow::anyhow!("cannot write in the data directory {shown}: {}", os(&e)))?;
        }
        Ok(())
    }

    /// The kept token, if there is one.
    pub fn token(&self) -> Result<Option<Token>> {
        let path = self.file(TOKEN_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => bail!("cannot read the token file {}: {}", path.display(), os(&e)),
        };
        let token = text.trim();
        if token.is_empty() {
            bail!(
                "the token file {} is empty; delete it to have a new token generated",
                path.display()
            );
        }
        Ok(Some(Token::new(token)))
    }

    /// The kept token, generated and written (mode 0600) on first use. Several servers started
    /// on the directory at once agree on one: the file appears whole or not at all, and only
    /// the first to write it wins.
    pub fn token_or_create(&self) -> Result<Token> {
        if let Some(token) = self.token()? {
            return Ok(token);
        }
        let path = self.file(TOKEN_FILE);
        let token = super::random_token()?;
        let write = || -> std::io::Result<tempfile::NamedTempFile> {
            // A named temporary file is created with mode 0600.
            let mut file = tempfile::Builder::new()
                .prefix(".token-")
                .tempfile_in(&self.path)?;
            file.write_all(format!("{token}\n").as_bytes())?;
            file.as_file().sync_all()?;
            Ok(file)
        };
        let file =
            write().with_context(|| format!("cannot write the token file {}", path.display()))?;
        match file.persist_noclobber(&path) {
            Ok(_) => Ok(Token::new(token)),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => self
                .token()?
                .with_context(|| format!("the token file {} vanished", path.display())),
            Err(e) => bail!(
                "cannot write the token file {}: {}",
                path.display(),
                os(&e.error)
            ),
        }
    }

    /// The record of the server last started here, if there is one.
    pub fn record(&self) -> Result<Option<ServerRecord>> {
        let path = self.file(SERVER_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => bail!("cannot read {}: {}", path.display(), os(&e)),
        };
        let record = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a server record", path.display()))?;
        Ok(Some(record))
    }

    /// Writes `record`, replacing any older one; the guard removes it again when dropped, if
    /// it is still this process's.
    pub fn write_record(&self, record: &ServerRecord) -> Result<RecordGuard> {
        let path = self.file(SERVER_FILE);
        let write = || -> std::io::Result<()> {
            let mut file = tempfile::Builder::new()
                .prefix(".server-")
                .tempfile_in(&self.path)?;
            serde_json::to_writer_pretty(&mut file, record)?;
            file.write_all(b"\n")?;
            file.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        write().map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), os(&e)))?;
        Ok(RecordGuard {
            dir: self.clone(),
            pid: record.pid,
        })
    }
}

/// Removes this process's [`SERVER_FILE`] when dropped, unless another server has replaced it.
#[derive(Debug)]
pub struct RecordGuard {
    dir: DataDir,
    pid: u32,
}

impl Drop for RecordGuard {
    fn drop(&mut self) {
        if let Ok(Some(record)) = self.dir.record()
            && record.pid == self.pid
        {
            let _ = std::fs::remove_file(self.dir.file(SERVER_FILE));
        }
    }
}

/// An I/O error as the OS words it, without the path that the caller's message already has.
fn os(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_once_and_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("d"));
        dir.prepare().unwrap();
        assert!(dir.token().unwrap().is_none());
        let first = dir.token_or_create().unwrap();
        assert_eq!(first.reveal().len(), 32);
        assert_eq!(dir.token_or_create().unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.file(TOKEN_FILE)), 0o600);
            assert_eq!(mode(dir.path()), 0o700);
        }
        // Nothing but the token and the ignore file is left behind: the probe and temporary
        // files are gone.
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [GITIGNORE_FILE, TOKEN_FILE]);
        std::fs::write(dir.file(TOKEN_FILE), "\n").unwrap();
        assert!(dir.token().is_err());
    }

    /// A directory the emulator creates ignores itself in git; one that existed is left as
    /// it was.
    #[test]
    fn a_created_data_directory_keeps_itself_out_of_version_control() {
        let tmp = tempfile::tempdir().unwrap();
        let created = DataDir::new(tmp.path().join("new"));
        created.prepare().unwrap();
        let ignore = std::fs::read_to_string(created.file(GITIGNORE_FILE)).unwrap();
        assert_eq!(ignore.lines().last(), Some("*"));
        // A second start keeps it and adds nothing.
        created.prepare().unwrap();
        let existing = DataDir::new(tmp.path());
        existing.prepare().unwrap();
        assert!(!existing.file(GITIGNORE_FILE).exists());
    }

    #[test]
    fn a_record_is_removed_only_by_its_own_server() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let record = ServerRecord {
            url: "http://127.0.0.1:1".into(),
            site: "s".into(),
            token: TokenOrigin::Kept,
            pid: 1,
        };
        let guard = dir.write_record(&record).unwrap();
        assert_eq!(dir.record().unwrap(), Some(record.clone()));
        let newer = ServerRecord { pid: 2, ..record };
        let newer_guard = dir.write_record(&newer).unwrap();
        drop(guard);
        assert_eq!(dir.record().unwrap(), Some(newer));
        drop(newer_guard);
        assert_eq!(dir.record().unwrap(), None);
    }
}
