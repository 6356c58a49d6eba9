//! Attesters: asking the platform the node runs on for a report binding 64 bytes of report data.
//!
//! - Intel TDX and AMD SEV-SNP through the Linux configfs-tsm interface (`/sys/kernel/config/tsm/report`, Linux
//!   6.7+): create an entry, write `inblob`, read `outblob` (and `auxblob`, SEV-SNP's certificate table), check
//!   `provider` and that `generation` advanced by exactly one write (otherwise another writer raced us: retry).
//! - AWS Nitro Enclaves through the NSM device (`/dev/nsm`): an attestation request with the report data as
//!   `user_data`.
//! - The simulated platform ([`crate::simulated`]), only when asked for.
//!
//! [`detect`] picks the platform at start, or says why there is none.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use vouch_codec::tee::PlatformReport;

use crate::Platform;
use crate::simulated::SimulatedRoot;

/// A platform that can produce reports.
pub trait Attester: Send + Sync {
    /// The platform.
    fn platform(&self) -> Platform;
    /// A report whose report data is `report_data`, with the collateral that verifies it.
    fn attest(&self, report_data: &[u8; 64]) -> Result<PlatformReport, String>;
}

/// Why this machine has no TEE: one reason per platform probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoTee {
    /// `platform: reason` lines.
    pub reasons: Vec<String>,
}

impl std::fmt::Display for NoTee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no TEE on this machine: {}", self.reasons.join("; "))
    }
}

impl std::error::Error for NoTee {}

/// Where [`detect`] looks.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// Use the simulated platform with the root key at this path (created if absent) instead of hardware.
    pub simulate: Option<PathBuf>,
    /// The configfs-tsm report directory.
    pub tsm_root: PathBuf,
    /// The Nitro Secure Module device.
    pub nsm_device: PathBuf,
    /// A file holding the collateral to attach to every report (TDX: the DCAP collateral JSON from a PCCS;
    /// SEV-SNP: the VCEK DER when the host does not supply it in `auxblob`). Read at each attestation, so an
    /// operator can refresh it in place.
    pub collateral: Option<PathBuf>,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self {
            simulate: None,
            tsm_root: PathBuf::from("/sys/kernel/config/tsm/report"),
            nsm_device: PathBuf::from("/dev/nsm"),
            collateral: None,
        }
    }
}

/// Detects the platform: the simulated one if asked, else configfs-tsm (TDX or SEV-SNP, by its provider), else
/// the Nitro NSM device.
pub fn detect(opts: &DetectOptions) -> Result<Box<dyn Attester>, NoTee> {
    if let Some(path) = &opts.simulate {
        return Simulated::new(path).map(|s| Box::new(s) as Box<dyn Attester>).map_err(|e| NoTee { reasons: vec![e] });
    }
    let mut reasons = Vec::new();
    match ConfigfsTsm::probe(Box::new(RealFs), &opts.tsm_root, opts.collateral.clone()) {
        Ok(t) => return Ok(Box::new(t)),
        Err(e) => reasons.push(format!("tdx/sev-snp: {e}")),
    }
    if opts.nsm_device.exists() {
        return Ok(Box::new(Nitro));
    }
    reasons.push(format!("nitro: {} does not exist (not inside a Nitro enclave)", opts.nsm_device.display()));
    Err(NoTee { reasons })
}

/// The simulated platform's attester.
pub struct Simulated {
    root: SimulatedRoot,
    measurement: [u8; 48],
}

impl Simulated {
    /// With the root key at `root_path` (created if absent) and the running executable's measurement.
    pub fn new(root_path: &Path) -> Result<Self, String> {
        Ok(Self { root: SimulatedRoot::load_or_create(root_path)?, measurement: crate::simulated::measure_self()? })
    }

    /// The root's public key.
    pub fn root(&self) -> [u8; 32] {
        self.root.public_key()
    }
}

impl Attester for Simulated {
    fn platform(&self) -> Platform {
        Platform::Simulated
    }

    fn attest(&self, report_data: &[u8; 64]) -> Result<PlatformReport, String> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| format!("clock before 1970: {e}"))?
            .as_secs();
        Ok(PlatformReport {
            platform: Platform::Simulated.name().into(),
            report: self.root.report(&self.measurement, report_data, now),
            collateral: vec![],
        })
    }
}

/// AWS Nitro Enclaves: an NSM attestation document with the report data as `user_data`.
pub struct Nitro;

impl Attester for Nitro {
    fn platform(&self) -> Platform {
        Platform::Nitro
    }

    fn attest(&self, report_data: &[u8; 64]) -> Result<PlatformReport, String> {
        use aws_nitro_enclaves_nsm_api::api::{Request, Response};
        use aws_nitro_enclaves_nsm_api::driver;
        let fd = driver::nsm_init();
        if fd < 0 {
            return Err("cannot open the NSM device /dev/nsm".into());
        }
        let response = driver::nsm_process_request(
            fd,
            Request::Attestation {
                user_data: Some(nitro_attest::ByteBuf::from(report_data.to_vec())),
                nonce: None,
                public_key: None,
            },
        );
        driver::nsm_exit(fd);
        match response {
            Response::Attestation { document } => {
                Ok(PlatformReport { platform: Platform::Nitro.name().into(), report: document, collateral: vec![] })
            }
            Response::Error(e) => Err(format!("the NSM refused the attestation request: {e:?}")),
            other => Err(format!("unexpected NSM response {other:?}")),
        }
    }
}

/// The file operations configfs-tsm needs; the kernel implements them for `/sys/kernel/config/tsm/report`, tests
/// implement them over a temporary directory.
pub trait TsmFs: Send + Sync {
    /// `mkdir`.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// `rmdir`.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Writes a whole attribute.
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()>;
    /// Reads a whole attribute.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
}

/// The real filesystem.
pub struct RealFs;

impl TsmFs for RealFs {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }
    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        std::fs::write(path, data)
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
}

/// How many times a report is retried when another writer races on the same entry.
pub const TSM_RETRIES: usize = 4;

/// TDX or SEV-SNP through configfs-tsm.
pub struct ConfigfsTsm {
    fs: Box<dyn TsmFs>,
    root: PathBuf,
    provider: String,
    platform: Platform,
    collateral: Option<PathBuf>,
}

static ENTRY: AtomicU64 = AtomicU64::new(0);

/// The platform a configfs-tsm provider name stands for.
pub fn platform_of_provider(provider: &str) -> Option<Platform> {
    match provider {
        "tdx_guest" => Some(Platform::Tdx),
        "sev_guest" => Some(Platform::SevSnp),
        _ => None,
    }
}

struct Entry<'a> {
    fs: &'a dyn TsmFs,
    path: PathBuf,
}

impl<'a> Entry<'a> {
    fn create(fs: &'a dyn TsmFs, root: &Path) -> Result<Self, String> {
        let name = format!("vouch-{}-{}", std::process::id(), ENTRY.fetch_add(1, Ordering::Relaxed));
        let path = root.join(name);
        fs.create_dir(&path).map_err(|e| format!("cannot create a report entry {}: {e}", path.display()))?;
        Ok(Self { fs, path })
    }

    fn read(&self, attr: &str) -> Result<Vec<u8>, String> {
        self.fs.read(&self.path.join(attr)).map_err(|e| format!("cannot read {attr}: {e}"))
    }

    fn read_text(&self, attr: &str) -> Result<String, String> {
        Ok(String::from_utf8_lossy(&self.read(attr)?).trim().to_owned())
    }

    fn generation(&self) -> Result<u64, String> {
        let g = self.read_text("generation")?;
        g.parse().map_err(|_| format!("generation {g:?} is not a number"))
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        let _ = self.fs.remove_dir(&self.path);
    }
}

impl ConfigfsTsm {
    /// Probes `root` (an entry is created and removed) and records its provider.
    pub fn probe(fs: Box<dyn TsmFs>, root: &Path, collateral: Option<PathBuf>) -> Result<Self, String> {
        if !root.is_dir() {
            return Err(format!(
                "{} does not exist (not a TDX or SEV-SNP guest, or a kernel before 6.7 without configfs-tsm)",
                root.display()
            ));
        }
        let provider = {
            let entry = Entry::create(fs.as_ref(), root)?;
            entry.read_text("provider")?
        };
        let platform = platform_of_provider(&provider)
            .ok_or_else(|| format!("configfs-tsm provider {provider:?} is not supported"))?;
        Ok(Self { fs, root: root.to_owned(), provider, platform, collateral })
    }

    fn collateral(&self, entry: &Entry<'_>) -> Result<Vec<u8>, String> {
        if let Some(path) = &self.collateral {
            return std::fs::read(path).map_err(|e| format!("cannot read the collateral {}: {e}", path.display()));
        }
        match self.platform {
            Platform::SevSnp => {
                let aux = entry.read("auxblob").unwrap_or_default();
                vcek_from_cert_table(&aux).ok_or_else(|| {
                    "the host supplied no VCEK in auxblob: fetch it from AMD's KDS and pass it as the collateral file"
                        .to_owned()
                })
            }
            _ => {
                Err("TDX evidence needs DCAP collateral: fetch it from a PCCS and pass it as the collateral file"
                    .into())
            }
        }
    }
}

impl Attester for ConfigfsTsm {
    fn platform(&self) -> Platform {
        self.platform
    }

    fn attest(&self, report_data: &[u8; 64]) -> Result<PlatformReport, String> {
        let mut last = String::new();
        for _ in 0..TSM_RETRIES {
            let entry = Entry::create(self.fs.as_ref(), &self.root)?;
            let provider = entry.read_text("provider")?;
            if provider != self.provider {
                return Err(format!("configfs-tsm provider changed from {:?} to {provider:?}", self.provider));
            }
            let before = entry.generation()?;
            self.fs.write(&entry.path.join("inblob"), report_data).map_err(|e| format!("cannot write inblob: {e}"))?;
            let report = entry.read("outblob")?;
            let after = entry.generation()?;
            if after != before + 1 {
                last = format!("generation went from {before} to {after}: another writer raced this report");
                continue;
            }
            if report.is_empty() {
                return Err("the kernel returned an empty report".into());
            }
            let collateral = self.collateral(&entry)?;
            return Ok(PlatformReport { platform: self.platform.name().into(), report, collateral });
        }
        Err(format!("no consistent report after {TSM_RETRIES} tries ({last})"))
    }
}

/// The VCEK's GUID in an SEV-SNP certificate table (`63da758d-e664-4564-adc5-f4b93be8accd`, little-endian fields).
const VCEK_GUID: [u8; 16] =
    [0x8d, 0x75, 0xda, 0x63, 0x64, 0xe6, 0x64, 0x45, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd];

/// The VCEK certificate from an SEV-SNP certificate table (GUID, offset u32, length u32 entries, ended by a zero
/// entry; offsets from the table's start), if present and in bounds.
pub fn vcek_from_cert_table(table: &[u8]) -> Option<Vec<u8>> {
    for entry in table.chunks_exact(24) {
        let guid = &entry[..16];
        if guid.iter().all(|b| *b == 0) {
            return None;
        }
        let offset = u32::from_le_bytes(entry[16..20].try_into().ok()?) as usize;
        let len = u32::from_le_bytes(entry[20..24].try_into().ok()?) as usize;
        if guid == VCEK_GUID {
            return table.get(offset..offset.checked_add(len)?).map(<[u8]>::to_vec);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A temporary directory laid out like the kernel interface, with the kernel's behaviour: an entry gets
    /// `provider`, `generation` and `outblob` when created; writing `inblob` bumps `generation` and makes `outblob`
    /// a "quote" of it. `race` more writes from another process land between our write and our read.
    struct FakeKernel {
        provider: Mutex<String>,
        race: Mutex<usize>,
        aux: Vec<u8>,
    }

    impl FakeKernel {
        fn new(provider: &str, race: usize) -> Self {
            Self { provider: Mutex::new(provider.into()), race: Mutex::new(race), aux: vec![] }
        }
        fn bump(&self, dir: &Path) -> io::Result<()> {
            let g: u64 = std::fs::read_to_string(dir.join("generation"))?.trim().parse().unwrap_or(0);
            std::fs::write(dir.join("generation"), format!("{}\n", g + 1))
        }
    }

    impl TsmFs for FakeKernel {
        fn create_dir(&self, path: &Path) -> io::Result<()> {
            std::fs::create_dir(path)?;
            std::fs::write(path.join("provider"), format!("{}\n", self.provider.lock().unwrap()))?;
            std::fs::write(path.join("generation"), "0\n")?;
            std::fs::write(path.join("outblob"), b"")?;
            std::fs::write(path.join("auxblob"), &self.aux)
        }
        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            std::fs::remove_dir_all(path)
        }
        fn write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
            std::fs::write(path, data)?;
            let dir = path.parent().unwrap();
            std::fs::write(dir.join("outblob"), [b"QUOTE:".as_slice(), data].concat())?;
            self.bump(dir)
        }
        fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
            if path.ends_with("outblob") {
                let mut race = self.race.lock().unwrap();
                if *race > 0 {
                    *race -= 1;
                    self.bump(path.parent().unwrap())?;
                }
            }
            std::fs::read(path)
        }
    }

    fn tsm(kernel: FakeKernel, collateral: Option<PathBuf>) -> (tempfile::TempDir, Result<ConfigfsTsm, String>) {
        let dir = tempfile::tempdir().unwrap();
        let t = ConfigfsTsm::probe(Box::new(kernel), dir.path(), collateral);
        (dir, t)
    }

    #[test]
    fn writes_inblob_and_reads_outblob_with_collateral() {
        let col = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(col.path(), b"{collateral}").unwrap();
        let (dir, t) = tsm(FakeKernel::new("tdx_guest", 0), Some(col.path().to_owned()));
        let t = t.unwrap();
        assert_eq!(t.platform(), Platform::Tdx);
        let r = t.attest(&[5; 64]).unwrap();
        assert_eq!(r.platform, "tdx");
        assert_eq!(r.report, [b"QUOTE:".as_slice(), &[5; 64]].concat());
        assert_eq!(r.collateral, b"{collateral}");
        // Entries are removed after use.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn retries_a_generation_race_and_gives_up_on_a_persistent_one() {
        let col = tempfile::NamedTempFile::new().unwrap();
        let (_d, t) = tsm(FakeKernel::new("tdx_guest", 1), Some(col.path().to_owned()));
        assert_eq!(t.unwrap().attest(&[1; 64]).unwrap().report[6..], [1; 64]);
        let (_d, t) = tsm(FakeKernel::new("tdx_guest", 100), Some(col.path().to_owned()));
        let err = t.unwrap().attest(&[1; 64]).unwrap_err();
        assert!(err.contains("another writer raced") && err.contains("after 4 tries"), "{err}");
    }

    #[test]
    fn refuses_a_provider_mismatch_and_an_unknown_provider() {
        let kernel = FakeKernel::new("tdx_guest", 0);
        let dir = tempfile::tempdir().unwrap();
        let t = ConfigfsTsm::probe(Box::new(kernel), dir.path(), None).unwrap();
        // The provider changes under the node (another guest driver bound): refused, not mislabelled.
        let fake = FakeKernel::new("sev_guest", 0);
        let t = ConfigfsTsm { fs: Box::new(fake), ..t };
        assert_eq!(
            t.attest(&[0; 64]).unwrap_err(),
            "configfs-tsm provider changed from \"tdx_guest\" to \"sev_guest\""
        );
        let (_d, t) = tsm(FakeKernel::new("arm_cca_guest", 0), None);
        assert_eq!(t.err().unwrap(), "configfs-tsm provider \"arm_cca_guest\" is not supported");
    }

    #[test]
    fn sev_snp_takes_the_vcek_from_auxblob() {
        let vcek = b"VCEK-DER-BYTES".to_vec();
        let mut table = Vec::new();
        table.extend_from_slice(&VCEK_GUID);
        table.extend_from_slice(&48u32.to_le_bytes());
        table.extend_from_slice(&(vcek.len() as u32).to_le_bytes());
        table.extend_from_slice(&[0; 24]);
        table.extend_from_slice(&vcek);
        let kernel = FakeKernel { aux: table.clone(), ..FakeKernel::new("sev_guest", 0) };
        let (_d, t) = tsm(kernel, None);
        let r = t.unwrap().attest(&[2; 64]).unwrap();
        assert_eq!((r.platform.as_str(), r.collateral), ("sev-snp", vcek));
        // Without a VCEK, TDX without collateral: clear errors.
        let (_d, t) = tsm(FakeKernel::new("sev_guest", 0), None);
        assert!(t.unwrap().attest(&[2; 64]).unwrap_err().contains("no VCEK in auxblob"));
        let (_d, t) = tsm(FakeKernel::new("tdx_guest", 0), None);
        assert!(t.unwrap().attest(&[2; 64]).unwrap_err().contains("needs DCAP collateral"));
        // A table pointing out of bounds yields nothing.
        let mut bad = table;
        bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(vcek_from_cert_table(&bad), None);
    }

    #[test]
    fn detects_no_tee_here_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let opts = DetectOptions {
            simulate: None,
            tsm_root: dir.path().join("absent"),
            nsm_device: dir.path().join("nsm"),
            collateral: None,
        };
        let e = detect(&opts).err().unwrap();
        assert_eq!(e.reasons.len(), 2);
        assert!(e.to_string().starts_with("no TEE on this machine: tdx/sev-snp: "), "{e}");
        let sim = DetectOptions { simulate: Some(dir.path().join("root.key")), ..opts };
        assert_eq!(detect(&sim).unwrap().platform(), Platform::Simulated);
    }
}
