//! The crash case with every instance an OS process, killed mid-write: the file backend
//! passes it, and a deliberately unsafe store that overwrites values in place (no temporary
//! file, no rename) fails it. This test binary re-runs itself as the instance program.
//!
//! The binary has its own `main` (`harness = false`): an instance speaks JSON lines on
//! stdout, where the test harness would print its own lines.

use std::io::{ErrorKind as IoKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use blobjobs_backends::{FileOptions, FileStore};
use blobjobs_conformance::remote::{ProcessFactory, serve_instance_stdio};
use blobjobs_conformance::{Capabilities, Options, Report};
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, Condition, Error, Etag, ListEntry, ListOptions, ListPage, Metadata,
    Result, SetOptions, SetOutcome, Timestamp,
};
use blobjobs_test_support::child;
use bytes::Bytes;

/// The crash case.
const CASE: &str = "instance_killed_mid_write_tears_nothing_and_frees_its_jobs";
/// The directory of the shared store, for the instances.
const DIR_VAR: &str = "CONFORMANCE_TEST_CRASH_DIR";
/// Runs of the crash case per store: each run kills at a different moment.
const RUNS: u64 = 3;
/// Overrides [`RUNS`], to measure how often the unsafe store is caught.
const RUNS_VAR: &str = "CONFORMANCE_TEST_CRASH_RUNS";

fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some(role) = child::role() {
        let dir = PathBuf::from(std::env::var(DIR_VAR)?);
        let store: Arc<dyn BlobStore> = match role.as_str() {
            "file" => Arc::new(FileStore::open(
                &dir,
                "conformance",
                FileOptions::default(),
            )?),
            "in-place" => Arc::new(InPlaceStore::open(dir)?),
            other => return Err(format!("unknown role {other}").into()),
        };
        runtime.block_on(serve_instance_stdio(store))?;
        return Ok(());
    }

    let runs = std::env::var(RUNS_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RUNS);
    for seed in 0..runs {
        let report = runtime.block_on(run("file", seed))?;
        print!("{}", report.to_text());
        report.assert_passed();
        assert_eq!(report.cases.len(), 1);
    }
    println!("test the_file_store_survives_an_instance_killed_mid_write ... ok");

    for seed in 0..runs {
        let report = runtime.block_on(run("in-place", seed))?;
        let case = &report.cases[0];
        assert!(
            case.failed(),
            "the in-place store passed the crash case (seed {seed}):\n{}",
            report.to_text()
        );
        if let blobjobs_conformance::Verdict::Failed { message, .. } = &case.verdict {
            println!("in-place store, seed {seed}, {} ms: {message}", case.millis);
        }
    }
    println!("test a_store_that_overwrites_in_place_fails_the_crash_case ... ok");
    Ok(())
}

/// Runs the crash case once on instances of `role`, each a process of this binary.
async fn run(role: &str, seed: u64) -> std::result::Result<Report, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let factory = ProcessFactory::new(exe)
        .env(child::ROLE_ENV, role)
        .env(DIR_VAR, dir.path());
    let options = Options::default()
        .backend(format!("{role}-processes"))
        .seed(seed)
        .filter(CASE);
    let started = Instant::now();
    let report = blobjobs_conformance::run_all(factory, Capabilities::default(), options).await;
    println!(
        "{role}: crash case with seed {seed} in {} ms",
        started.elapsed().as_millis()
    );
    Ok(report)
}

/// A deliberately unsafe store: every value is a file that a write truncates and then fills
/// in 4 KiB pieces, in place, and whose ETag sits in a file beside it. Writes take a lock,
/// so conditions are exact; reads take none, as in the file backend. Everything is right
/// except that a reader can see a value half written, and a writer killed mid-write leaves
/// it half written for good.
#[derive(Debug)]
struct InPlaceStore {
    dir: PathBuf,
}

/// Bytes per `write` call of an in-place overwrite.
const PIECE: usize = 4096;

fn io(what: &str, e: std::io::Error) -> Error {
    Error::io(what.to_owned(), e)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == IoKind::NotFound => Ok(None),
        Err(e) => Err(io("read", e)),
    }
}

impl InPlaceStore {
    fn open(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| io("create the store", e))?;
        Ok(InPlaceStore { dir })
    }

    fn name(key: &str) -> String {
        key.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn key_of(name: &str) -> Option<String> {
        let bytes: Option<Vec<u8>> = (0..name.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(name.get(i..i + 2)?, 16).ok())
            .collect();
        String::from_utf8(bytes?).ok()
    }

    fn value_path(&self, key: &str) -> PathBuf {
        self.dir.join(Self::name(key))
    }

    fn etag_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{}.etag", Self::name(key)))
    }

    fn lock(&self) -> Result<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join("lock"))
            .map_err(|e| io("open the lock", e))?;
        file.lock().map_err(|e| io("lock", e))?;
        Ok(file)
    }

    fn etag(&self, key: &str) -> Result<Option<Etag>> {
        Ok(read_optional(&self.etag_path(key))?
            .map(|bytes| Etag::new(String::from_utf8_lossy(&bytes).into_owned())))
    }

    /// Truncates `path` and writes `bytes` into it piece by piece: the unsafe part.
    fn overwrite(path: &Path, bytes: &[u8]) -> Result<()> {
        let mut file = std::fs::File::create(path).map_err(|e| io("create", e))?;
        for piece in bytes.chunks(PIECE) {
            file.write_all(piece).map_err(|e| io("write", e))?;
        }
        Ok(())
    }

    fn info(&self, key: &str, size: u64, etag: Etag) -> BlobInfo {
        let _ = key;
        BlobInfo {
            etag,
            metadata: Metadata::new(),
            size,
            last_modified: Timestamp::from_millis(0),
        }
    }
}

#[async_trait]
impl BlobStore for InPlaceStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        let (Some(etag), Some(value)) = (self.etag(key)?, read_optional(&self.value_path(key))?)
        else {
            return Ok(None);
        };
        let info = self.info(key, value.len() as u64, etag);
        Ok(Some(Blob {
            value: Bytes::from(value),
            info,
        }))
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        Ok(self.get(key).await?.map(|b| b.info))
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        blobjobs_store_api::validate_key(key)?;
        let _lock = self.lock()?;
        let current = self.etag(key)?;
        let holds = match (&options.condition, &current) {
            (Condition::Always, _) => true,
            (Condition::IfNew, current) => current.is_none(),
            (Condition::IfMatch(want), Some(have)) => want == have,
            (Condition::IfMatch(_), None) => false,
        };
        if !holds {
            return Ok(SetOutcome::ConditionFailed);
        }
        let etag = Etag::random()?;
        Self::overwrite(&self.value_path(key), &value)?;
        Self::overwrite(&self.etag_path(key), etag.as_str().as_bytes())?;
        Ok(SetOutcome::Written { etag })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let _lock = self.lock()?;
        for path in [self.etag_path(key), self.value_path(key)] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == IoKind::NotFound => {}
                Err(e) => return Err(io("delete", e)),
            }
        }
        Ok(())
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let mut blobs = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io("list", e))? {
            let entry = entry.map_err(|e| io("list", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = Self::key_of(&name) else {
                continue;
            };
            if !key.starts_with(&options.prefix) {
                continue;
            }
            let Some(blob) = self.get(&key).await? else {
                continue;
            };
            blobs.push(ListEntry {
                key,
                etag: blob.info.etag,
                size: blob.info.size,
                last_modified: blob.info.last_modified,
            });
        }
        blobs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(ListPage {
            blobs,
            directories: Vec::new(),
            next_cursor: None,
        })
    }
}
