//! Content-addressed model hub: streamed, hashed, crash-safe blob store and versioned model repositories (redb).
//!
//! A blob is written to a temp file under `tmp/` while it is hashed, fsynced, then renamed to
//! `blobs/<id>`; only then is its version recorded, in one redb transaction. A crash or a dropped upload
//! leaves at most a temp file, which the next start removes: a partial model never appears under an id.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tempfile::TempPath;
use vouch_api::{ModelRepo, ModelVersion};
use vouch_codec::ModelId;

const REPOS: TableDefinition<&str, &[u8]> = TableDefinition::new("repos");
/// `name@MAJOR.MINOR` -> JSON [`ModelVersion`].
const VERSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("versions");
/// model digest -> JSON list of `name@version` refs.
const IDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("ids");

/// Hub failures.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Filesystem failure.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Metadata store failure.
    #[error("metadata store: {0}")]
    Db(String),
    /// The upload is larger than allowed.
    #[error("upload exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The upload was empty.
    #[error("empty upload")]
    Empty,
    /// Bad repository name.
    #[error(
        "invalid model name {0:?}: use 1-64 characters from a-z, A-Z, 0-9, '.', '_', '-', starting with a letter or digit"
    )]
    InvalidName(String),
    /// Bad version string.
    #[error("invalid version {0:?}: expected MAJOR.MINOR, e.g. 1.0")]
    InvalidVersion(String),
    /// Version taken by other bytes.
    #[error("{name}@{version} already exists with id {existing}")]
    VersionExists {
        /// Repo.
        name: String,
        /// Version.
        version: String,
        /// Id it holds.
        existing: ModelId,
    },
    /// Nothing under that reference.
    #[error("no model {0:?}")]
    NotFound(String),
    /// The name belongs to another account.
    #[error("the name {name:?} belongs to account {owner}; a new version needs that account's signature")]
    NameOwned {
        /// The name.
        name: String,
        /// Its owner (hex).
        owner: String,
    },
}

macro_rules! db_err {
    ($($t:ty),*) => {$(impl From<$t> for HubError { fn from(e: $t) -> Self { HubError::Db(e.to_string()) } })*};
}
db_err!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    serde_json::Error
);

/// `MAJOR.MINOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32);

impl std::str::FromStr for Version {
    type Err = HubError;
    fn from_str(s: &str) -> Result<Self, HubError> {
        let bad = || HubError::InvalidVersion(s.to_owned());
        let (a, b) = s.split_once('.').ok_or_else(bad)?;
        let num = |x: &str| {
            if x.is_empty()
                || x.len() > 9
                || !x.bytes().all(|c| c.is_ascii_digit())
                || (x.len() > 1 && x.starts_with('0'))
            {
                Err(bad())
            } else {
                x.parse::<u32>().map_err(|_| bad())
            }
        };
        Ok(Version(num(a)?, num(b)?))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

/// Checks a repository name.
pub fn validate_name(name: &str) -> Result<(), HubError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    // A name must never parse as an id, or `show NAME` would be ambiguous.
    if ok && !ModelId::looks_like_id(name) { Ok(()) } else { Err(HubError::InvalidName(name.to_owned())) }
}

/// The hub: blobs on disk, metadata in redb.
#[derive(Clone)]
pub struct Hub {
    blobs: PathBuf,
    tmp: PathBuf,
    db: Arc<Database>,
}

/// An upload in progress: bytes go to a temp file and through the hasher. Dropping it removes the file.
pub struct Upload {
    file: fs::File,
    path: TempPath,
    hasher: blake3::Hasher,
    size: u64,
    limit: u64,
}

/// A fully written, fsynced upload whose id is known, not yet visible.
pub struct Staged {
    /// Content id.
    pub id: ModelId,
    /// Size in bytes.
    pub size: u64,
    path: TempPath,
}

impl Staged {
    /// Where the bytes are (for inspection before commit).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Upload {
    /// Appends a chunk.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), HubError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(HubError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk)?;
        Ok(())
    }

    /// Flushes to disk and names the content.
    pub fn finish(mut self) -> Result<Staged, HubError> {
        if self.size == 0 {
            return Err(HubError::Empty);
        }
        self.file.flush()?;
        self.file.sync_all()?;
        Ok(Staged { id: ModelId::from_blake3(*self.hasher.finalize().as_bytes()), size: self.size, path: self.path })
    }
}

/// What a new version records besides its bytes.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Repository.
    pub name: String,
    /// Requested version; `None` = next minor after the latest (or 1.0).
    pub version: Option<Version>,
    /// Free text.
    pub description: String,
    /// The rest of the record (signature, ops...), filled in by the caller's inspection.
    pub template: ModelVersion,
    /// The account pushing it: it owns a new name; an existing name must be its own.
    pub owner: [u8; 32],
    /// Who owns names recorded before names had owners (the node's own account).
    pub legacy_owner: [u8; 32],
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Hub {
    /// Opens (creating) the hub under `home`: `blobs/`, `tmp/` (emptied: leftovers of interrupted
    /// uploads), and `hub.redb`.
    pub fn open(home: &Path) -> Result<Self, HubError> {
        let blobs = home.join("blobs");
        let tmp = home.join("tmp");
        fs::create_dir_all(&blobs)?;
        // The database lock comes first: only the process holding it may clean up `tmp/`. A previous process that is
        // still exiting (a supervisor restarting the node at once) gets a few seconds to let go.
        let path = home.join("hub.redb");
        let started = std::time::Instant::now();
        let db = loop {
            match Database::create(&path) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed().as_secs() < 5 => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(HubError::Db(format!(
                        "{} is in use by another process (is a node already running with this home?)",
                        path.display()
                    )));
                }
                other => break other?,
            }
        };
        if tmp.exists() {
            let removed =
                fs::read_dir(&tmp)?.filter_map(Result::ok).filter(|e| fs::remove_file(e.path()).is_ok()).count();
            if removed > 0 {
                tracing::info!(removed, "hub.recover: removed interrupted uploads");
            }
        }
        fs::create_dir_all(&tmp)?;
        let tx = db.begin_write()?;
        tx.open_table(REPOS)?;
        tx.open_table(VERSIONS)?;
        tx.open_table(IDS)?;
        tx.commit()?;
        Ok(Self { blobs, tmp, db: Arc::new(db) })
    }

    /// The metadata database, shared with other node stores.
    pub fn database(&self) -> Arc<Database> {
        self.db.clone()
    }

    /// Starts an upload of at most `limit` bytes.
    pub fn begin_upload(&self, limit: u64) -> Result<Upload, HubError> {
        let (file, path) = tempfile::Builder::new().prefix("upload-").tempfile_in(&self.tmp)?.into_parts();
        Ok(Upload { file, path, hasher: blake3::Hasher::new(), size: 0, limit })
    }

    fn blob_file(&self, id: &ModelId) -> PathBuf {
        self.blobs.join(id.to_string())
    }

    /// The file of a registered blob (orphans from a crash between rename and commit are not served).
    pub fn blob_path(&self, id: &ModelId) -> Result<PathBuf, HubError> {
        let tx = self.db.begin_read()?;
        let ids = tx.open_table(IDS)?;
        if ids.get(id.digest().as_slice())?.is_none() {
            return Err(HubError::NotFound(id.to_string()));
        }
        Ok(self.blob_file(id))
    }

    /// Makes a staged blob visible as a new version: rename into `blobs/`, fsync, then one transaction.
    pub fn commit(&self, staged: Staged, new: NewVersion) -> Result<ModelVersion, HubError> {
        validate_name(&new.name)?;
        let _span = tracing::info_span!("hub.put", name = %new.name, id = %staged.id).entered();
        let tx = self.db.begin_write()?;
        let record = {
            // The name's owner: the account whose push created it (names from before owners: the node's account).
            let owner = match tx.open_table(REPOS)?.get(new.name.as_str())? {
                Some(v) if v.value().len() == 32 => v.value().try_into().ok(),
                Some(_) => Some(new.legacy_owner),
                None => None,
            };
            if let Some(owner) = owner
                && owner != new.owner
            {
                return Err(HubError::NameOwned { name: new.name, owner: hex::encode(owner) });
            }
            let mut versions = tx.open_table(VERSIONS)?;
            let existing = Self::versions_in(&versions, &new.name)?;
            let version = match new.version {
                Some(v) => v,
                None => existing
                    .iter()
                    .map(|r| r.version.parse::<Version>())
                    .filter_map(Result::ok)
                    .max()
                    .map(|v| Version(v.0, v.1 + 1))
                    .unwrap_or(Version(1, 0)),
            };
            if let Some(r) = existing.iter().find(|r| r.version == version.to_string()) {
                if r.id == staged.id {
                    // Pushing the same bytes to the same version again is a no-op.
                    return Ok(r.clone());
                }
                return Err(HubError::VersionExists { name: new.name, version: version.to_string(), existing: r.id });
            }
            let target = self.blob_file(&staged.id);
            if !target.exists() {
                staged.path.persist(&target).map_err(|e| HubError::Io(e.error))?;
                fs::File::open(&self.blobs)?.sync_all()?;
            }
            let record = ModelVersion {
                id: staged.id,
                name: new.name.clone(),
                version: version.to_string(),
                size: staged.size,
                description: new.description,
                created_at_ms: now_ms(),
                owner: Some(hex::encode(new.owner)),
                ..new.template
            };
            let key = format!("{}@{}", record.name, record.version);
            versions.insert(key.as_str(), serde_json::to_vec(&record)?.as_slice())?;
            let mut ids = tx.open_table(IDS)?;
            let mut refs: Vec<String> = match ids.get(staged.id.digest().as_slice())? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => vec![],
            };
            refs.push(key);
            ids.insert(staged.id.digest().as_slice(), serde_json::to_vec(&refs)?.as_slice())?;
            tx.open_table(REPOS)?.insert(record.name.as_str(), &new.owner[..])?;
            record
        };
        tx.commit()?;
        tracing::info!(version = %record.version, size = record.size, "stored");
        Ok(record)
    }

    fn versions_in(
        table: &impl ReadableTable<&'static str, &'static [u8]>,
        name: &str,
    ) -> Result<Vec<ModelVersion>, HubError> {
        let prefix = format!("{name}@");
        let mut out: Vec<ModelVersion> = vec![];
        for entry in table.range(prefix.as_str()..)? {
            let (k, v) = entry?;
            if !k.value().starts_with(&prefix) {
                break;
            }
            out.push(serde_json::from_slice(v.value())?);
        }
        out.sort_by_key(|r| r.version.parse::<Version>().ok());
        Ok(out)
    }

    /// All repositories with their versions.
    pub fn list(&self) -> Result<Vec<ModelRepo>, HubError> {
        let tx = self.db.begin_read()?;
        let repos = tx.open_table(REPOS)?;
        let versions = tx.open_table(VERSIONS)?;
        let mut out = vec![];
        for entry in repos.iter()? {
            let (k, v) = entry?;
            let name = k.value().to_owned();
            let owner = (v.value().len() == 32).then(|| hex::encode(v.value()));
            let versions = Self::versions_in(&versions, &name)?;
            out.push(ModelRepo { name, owner, versions });
        }
        Ok(out)
    }

    /// Number of model versions.
    pub fn version_count(&self) -> Result<u64, HubError> {
        Ok(self.db.begin_read()?.open_table(VERSIONS)?.len()?)
    }

    /// Resolves `NAME` (latest version), `NAME@VERSION` or an id (its first-pushed version record).
    pub fn resolve(&self, reference: &str) -> Result<ModelVersion, HubError> {
        let tx = self.db.begin_read()?;
        let versions = tx.open_table(VERSIONS)?;
        let not_found = || HubError::NotFound(reference.to_owned());
        if ModelId::looks_like_id(reference) {
            let id: ModelId = reference.parse().map_err(|_| not_found())?;
            let ids = tx.open_table(IDS)?;
            let refs: Vec<String> = match ids.get(id.digest().as_slice())? {
                Some(v) => serde_json::from_slice(v.value())?,
                None => return Err(not_found()),
            };
            let first = refs.first().ok_or_else(not_found)?;
            let v = versions.get(first.as_str())?.ok_or_else(not_found)?;
            return Ok(serde_json::from_slice(v.value())?);
        }
        match reference.split_once('@') {
            Some((name, version)) => {
                let version: Version = version.parse()?;
                let key = format!("{name}@{version}");
                let v = versions.get(key.as_str())?.ok_or_else(not_found)?;
                Ok(serde_json::from_slice(v.value())?)
            }
            None => Self::versions_in(&versions, reference)?.pop().ok_or_else(not_found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_strictly() {
        assert_eq!("1.0".parse::<Version>().unwrap(), Version(1, 0));
        assert_eq!("10.12".parse::<Version>().unwrap(), Version(10, 12));
        for bad in ["1", "1.", ".1", "01.0", "1.0.0", "a.b", "-1.0", "1.+2"] {
            assert!(matches!(bad.parse::<Version>(), Err(HubError::InvalidVersion(_))), "{bad}");
        }
    }

    #[test]
    fn names_are_restricted() {
        validate_name("mnist-mlp_v2.onnx").unwrap();
        for bad in ["", "-x", "a/b", "a@b", "a b", &"x".repeat(65)] {
            assert!(matches!(validate_name(bad), Err(HubError::InvalidName(_))), "{bad:?}");
        }
    }
}
