//! Node identity keys (ed25519, 0600 key files) and domain-separated signatures.
//!
//! Every signature in Vouch is over `domain || message`, with `domain` one of the constants in
//! [`vouch_codec::domain`], so a signature made for one purpose can never be replayed as another.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

/// Key file errors.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file is not a key.
    #[error("key file {path} is malformed: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key file can be read by others.
    #[error("key file {path} has mode {mode:o}; it must be readable by its owner only (chmod 600)")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
}

/// Signature check failures.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The public key is not a valid ed25519 point.
    #[error("invalid public key {0}")]
    InvalidPublicKey(String),
    /// The signature does not verify.
    #[error("signature does not verify under key {0}")]
    Mismatch(String),
}

/// A node's ed25519 identity.
pub struct NodeKey {
    key: SigningKey,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKey({})", hex::encode(self.public_key()))
    }
}

impl NodeKey {
    /// A fresh key from the OS random source.
    pub fn generate() -> Self {
        Self { key: SigningKey::generate(&mut rand::rngs::OsRng) }
    }

    /// A key from 32 secret bytes (tests and fixtures).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&secret) }
    }

    /// Loads the key at `path` (64 hex characters; the file must not be readable by group or others).
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        let bytes = fs::read(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions { path: path.to_owned(), mode });
            }
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| KeyError::Malformed { path: path.to_owned(), reason: "not UTF-8".into() })?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut secret).map_err(|e| KeyError::Malformed {
            path: path.to_owned(),
            reason: format!("expected 64 hex characters: {e}"),
        })?;
        Ok(Self::from_secret(secret))
    }

    /// Loads the key at `path`, creating it (mode 0600, written atomically) if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io { path: path.to_owned(), source };
        match fs::metadata(path) {
            Ok(_) => Self::load(path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                let dir = path.parent().unwrap_or(Path::new("."));
                fs::create_dir_all(dir).map_err(io)?;
                let tmp = path.with_extension("tmp");
                // A temp file left by anyone (perhaps world-readable, perhaps a link) is removed, and the key goes
                // to a file this call creates itself with mode 0600 (`create_new` fails rather than reuse one).
                match fs::remove_file(&tmp) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(e)),
                }
                let mut opts = fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&tmp).map_err(io)?;
                f.write_all(hex::encode(key.key.to_bytes()).as_bytes()).map_err(io)?;
                f.write_all(b"\n").map_err(io)?;
                f.sync_all().map_err(io)?;
                fs::rename(&tmp, path).map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A secret for another purpose (e.g. the consensus key), derived one-way from this key: the node keeps a
    /// single secret file, and the derived key can never sign as the node key.
    pub fn derive_seed(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.key.to_bytes())
    }

    /// The 32-byte public key (the node id).
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `domain || message`.
    pub fn sign(&self, domain: &str, message: &[u8]) -> [u8; 64] {
        self.key.sign(&domain_message(domain, message)).to_bytes()
    }
}

fn domain_message(domain: &str, message: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + message.len());
    m.extend_from_slice(domain.as_bytes());
    m.extend_from_slice(message);
    m
}

/// Checks an ed25519 signature over `domain || message` (strict verification: no malleable signatures,
/// no small-order keys).
pub fn verify(domain: &str, public_key: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> Result<(), SignatureError> {
    let pk =
        VerifyingKey::from_bytes(public_key).map_err(|_| SignatureError::InvalidPublicKey(hex::encode(public_key)))?;
    pk.verify_strict(&domain_message(domain, message), &Signature::from_bytes(signature))
        .map_err(|_| SignatureError::Mismatch(hex::encode(public_key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_is_created_private_and_reloads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let a = NodeKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let b = NodeKey::load_or_create(&path).unwrap();
        assert_eq!(a.public_key(), b.public_key());
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_key_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        NodeKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(NodeKey::load_or_create(&path), Err(KeyError::Permissions { mode: 0o644, .. })));
    }

    /// A world-readable `node.tmp` left behind (or planted) before the key is created does not make the key readable:
    /// the key is written to a file created fresh with mode 0600. A temp path that is a symlink to another file is
    /// replaced, not followed.
    #[cfg(unix)]
    #[test]
    fn a_preexisting_temp_file_never_leaks_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let tmp = dir.path().join("node.tmp");
        fs::write(&tmp, b"planted").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        NodeKey::load_or_create(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // A symlink at the temp path: the target is left untouched.
        let other = dir.path().join("other");
        fs::write(&other, b"untouched").unwrap();
        let path2 = dir.path().join("second.key");
        std::os::unix::fs::symlink(&other, dir.path().join("second.tmp")).unwrap();
        NodeKey::load_or_create(&path2).unwrap();
        assert_eq!(fs::read(&other).unwrap(), b"untouched");
        assert_eq!(fs::symlink_metadata(&path2).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn signatures_are_domain_separated() {
        let k = NodeKey::from_secret([7; 32]);
        let sig = k.sign("A", b"msg");
        assert_eq!(verify("A", &k.public_key(), b"msg", &sig), Ok(()));
        assert!(matches!(verify("B", &k.public_key(), b"msg", &sig), Err(SignatureError::Mismatch(_))));
        assert!(matches!(verify("A", &k.public_key(), b"msh", &sig), Err(SignatureError::Mismatch(_))));
    }
}
