//! Test harness: real `vouch node run` processes on loopback, the real `vouch` CLI, raw HTTP.
#![allow(dead_code)]

pub mod onnx;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub fn vouch_bin() -> &'static str {
    env!("CARGO_BIN_EXE_vouch")
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// The three bench models shipped in shared/ beside the repository.
pub fn bench_models() -> PathBuf {
    let p = repo_root().join("../shared/bench/models");
    assert!(p.is_dir(), "{} is missing: shared/ must sit beside the repository", p.display());
    p
}

/// Models extracted from PyPI wheels by scripts/setup-test-env.sh.
pub fn cached_model(name: &str) -> PathBuf {
    let p = repo_root().join(".cache/models").join(name);
    assert!(p.is_file(), "{} is missing: run scripts/setup-test-env.sh", p.display());
    p
}

/// A node process with its own home, killed (SIGTERM, then waited for) on drop.
pub struct NodeProc {
    pub child: Child,
    pub url: String,
    pub addr: SocketAddr,
    pub home: PathBuf,
}

impl NodeProc {
    pub fn start(home: &Path) -> Self {
        let mut child = Command::new(vouch_bin())
            .args(["node", "run", "--dev", "--listen", "127.0.0.1:0", "--home"])
            .arg(home)
            .env("VOUCH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn vouch node");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        // Keep draining so the node never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let url = line
            .trim()
            .strip_prefix("vouch node listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        let addr: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
        Self { child, url, addr, home: home.to_owned() }
    }

    /// Runs the CLI against this node.
    pub fn vouch(&self, args: &[&str]) -> Output {
        // VOUCH_HOME: pushes are signed with this node's own key, as its operator's would be.
        Command::new(vouch_bin())
            .args(args)
            .env("VOUCH_NODE", &self.url)
            .env("VOUCH_HOME", &self.home)
            .env_remove("VOUCH_ACCOUNT")
            .output()
            .expect("run vouch")
    }

    /// Runs the CLI and requires success; returns stdout.
    pub fn vouch_ok(&self, args: &[&str]) -> String {
        let out = self.vouch(args);
        assert!(
            out.status.success(),
            "vouch {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn http(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, serde_json::Value) {
        http(self.addr, method, path, content_type, body)
    }

    /// SIGTERM and wait; returns whether the process exited successfully.
    pub fn terminate(mut self) -> bool {
        let ok = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap().success();
        assert!(ok);
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status.success()
    }

    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::forget(self);
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection; returns the status and the JSON body (or the text as a string).
pub fn http(addr: SocketAddr, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, serde_json::Value) {
    try_http(addr, method, path, content_type, body).unwrap_or_else(|| panic!("no HTTP response from {addr}{path}"))
}

/// [`http`], or `None` if nothing answers (a node that is starting or stopping).
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Option<(u16, serde_json::Value)> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len()).ok()?;
    // The server may answer (e.g. 413) and close before reading everything; that is not a test failure.
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    if resp.is_empty() {
        return None;
    }
    Some(parse_response(&resp))
}

pub fn parse_response(resp: &[u8]) -> (u16, serde_json::Value) {
    let text = String::from_utf8_lossy(resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, json)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// Deterministic pseudo-random numbers (xorshift64*), so inputs are the same on every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// A child process stopped with SIGINT (and waited for) when dropped: a devnet or a node the test started.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-INT").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

/// Polls `f` every 200 ms until it holds; fails the test after `secs` seconds, naming `what`.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let t = std::time::Instant::now();
    while !f() {
        assert!(t.elapsed() < std::time::Duration::from_secs(secs), "timed out after {secs} s waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Writes `v` as pretty JSON to `path`.
pub fn write_json(path: &Path, v: &serde_json::Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}
