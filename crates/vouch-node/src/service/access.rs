//! Who may use the node, and how much: the access mode (open to anyone, or API keys for the endpoints that make the
//! node work or spend), a per-client request rate (token bucket), and per-client quotas over a window (receipts
//! issued, which the node pays to settle; model versions and upload bytes, which it stores; calibration sets).
//! A client is its API key's name, or else its IP address. Nobody can make a node spend without limit.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, Code};

/// Who may use the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    /// Anyone; clients are told apart by IP address.
    #[default]
    Open,
    /// Requests that make the node work or spend (push, calibrations, infer, verify, prepare, transactions) need
    /// `Authorization: Bearer KEY` with a key from `api_keys`; reads stay open.
    ApiKeys,
}

/// An API key and the client it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The client's name (in logs and errors).
    pub name: String,
    /// The secret the client sends.
    pub key: String,
}

/// Per-client limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Requests per second (bursts up to twice that); 0: no rate limit. Default 0.
    pub requests_per_second: u32,
    /// The window the quotas below count over, seconds. Default 3600.
    pub window_secs: u64,
    /// Receipts issued per window (each costs the node a settlement fee). Default 100,000.
    pub receipts: u64,
    /// Model versions pushed per window. Default 1,000.
    pub pushes: u64,
    /// Model bytes uploaded per window. Default 64 GiB.
    pub upload_bytes: u64,
    /// Calibration sets stored per window. Default 1,000.
    pub calibrations: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            requests_per_second: 0,
            window_secs: 3600,
            receipts: 100_000,
            pushes: 1_000,
            upload_bytes: 64 << 30,
            calibrations: 1_000,
        }
    }
}

/// What a request costs its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Spend {
    /// One receipt.
    Receipt,
    /// One model version.
    Push,
    /// Upload bytes.
    Bytes(u64),
    /// One calibration set.
    Calibration,
}

/// A client: its API key's name, or its address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ClientId {
    Key(String),
    Addr(IpAddr),
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientId::Key(name) => write!(f, "key {name}"),
            ClientId::Addr(a) => write!(f, "{a}"),
        }
    }
}

#[derive(Debug)]
struct Usage {
    tokens: f64,
    refilled: Instant,
    window_start: Instant,
    receipts: u64,
    pushes: u64,
    upload_bytes: u64,
    calibrations: u64,
}

/// Clients tracked at once (least recently seen forgotten first), so a flood of addresses cannot grow memory.
const MAX_CLIENTS: usize = 65_536;

/// The node's access policy and every client's usage.
pub(crate) struct Access {
    mode: AccessMode,
    keys: Vec<ApiKey>,
    quotas: Quotas,
    usage: Mutex<lru::LruCache<ClientId, Usage>>,
}

impl Access {
    pub fn new(mode: AccessMode, keys: Vec<ApiKey>, quotas: Quotas) -> Self {
        let cap = NonZeroUsize::new(MAX_CLIENTS).unwrap_or(NonZeroUsize::MIN);
        Self { mode, keys, quotas, usage: Mutex::new(lru::LruCache::new(cap)) }
    }

    /// The client of a request: the API key's name (required when `keyed` and the mode asks for keys), else the
    /// peer address.
    pub fn identify(&self, bearer: Option<&str>, peer: IpAddr, keyed: bool) -> Result<ClientId, ApiError> {
        let named = bearer.and_then(|k| self.keys.iter().find(|c| constant_time_eq(c.key.as_bytes(), k.as_bytes())));
        match (named, self.mode, keyed) {
            (Some(c), _, _) => Ok(ClientId::Key(c.name.clone())),
            (None, AccessMode::ApiKeys, true) => Err(ApiError::new(
                Code::Unauthorized,
                if bearer.is_some() {
                    "unknown API key"
                } else {
                    "this node needs an API key: Authorization: Bearer KEY"
                },
            )),
            (None, _, _) => Ok(ClientId::Addr(peer)),
        }
    }

    fn with_usage<T>(&self, client: &ClientId, f: impl FnOnce(&mut Usage, Instant) -> T) -> T {
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = usage.get_or_insert_mut(client.clone(), || Usage {
            tokens: 2.0 * f64::from(self.quotas.requests_per_second),
            refilled: now,
            window_start: now,
            receipts: 0,
            pushes: 0,
            upload_bytes: 0,
            calibrations: 0,
        });
        if now.duration_since(u.window_start) >= Duration::from_secs(self.quotas.window_secs.max(1)) {
            (u.window_start, u.receipts, u.pushes, u.upload_bytes, u.calibrations) = (now, 0, 0, 0, 0);
        }
        f(u, now)
    }

    /// Takes one request from the client's rate budget.
    pub fn request(&self, client: &ClientId) -> Result<(), ApiError> {
        let rate = f64::from(self.quotas.requests_per_second);
        if rate == 0.0 {
            return Ok(());
        }
        self.with_usage(client, |u, now| {
            u.tokens = (u.tokens + now.duration_since(u.refilled).as_secs_f64() * rate).min(2.0 * rate);
            u.refilled = now;
            if u.tokens < 1.0 {
                let wait_ms = ((1.0 - u.tokens) / rate * 1000.0).ceil() as u64;
                return Err(ApiError::new(
                    Code::RateLimited,
                    format!(
                        "{client} is over {} requests per second; retry in {wait_ms} ms",
                        self.quotas.requests_per_second
                    ),
                )
                .details(serde_json::json!({ "retry_after_ms": wait_ms })));
            }
            u.tokens -= 1.0;
            Ok(())
        })
    }

    /// Charges a spend against the client's quota for the current window, or refuses it (nothing charged).
    pub fn charge(&self, client: &ClientId, spend: Spend) -> Result<(), ApiError> {
        let q = self.quotas;
        self.with_usage(client, |u, now| {
            let (used, limit, amount, what) = match spend {
                Spend::Receipt => (&mut u.receipts, q.receipts, 1, "receipts"),
                Spend::Push => (&mut u.pushes, q.pushes, 1, "model pushes"),
                Spend::Bytes(n) => (&mut u.upload_bytes, q.upload_bytes, n, "upload bytes"),
                Spend::Calibration => (&mut u.calibrations, q.calibrations, 1, "calibration sets"),
            };
            if used.saturating_add(amount) > limit {
                let reset =
                    Duration::from_secs(q.window_secs.max(1)).saturating_sub(now.duration_since(u.window_start));
                return Err(ApiError::new(
                    Code::RateLimited,
                    format!(
                        "{client} is over its quota of {limit} {what} per {} s; it renews in {} s",
                        q.window_secs,
                        reset.as_secs()
                    ),
                )
                .details(
                    serde_json::json!({ "quota": what, "limit": limit, "retry_after_ms": reset.as_millis() as u64 }),
                ));
            }
            *used += amount;
            Ok(())
        })
    }
}

/// Compares two secrets in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip() -> IpAddr {
        IpAddr::from([10, 0, 0, 1])
    }

    #[test]
    fn quotas_refuse_past_the_limit_and_charge_nothing_then() {
        let a = Access::new(AccessMode::Open, vec![], Quotas { receipts: 2, upload_bytes: 10, ..Quotas::default() });
        let c = a.identify(None, ip(), true).unwrap();
        a.charge(&c, Spend::Receipt).unwrap();
        a.charge(&c, Spend::Receipt).unwrap();
        let e = a.charge(&c, Spend::Receipt).unwrap_err();
        assert_eq!(e.code, Code::RateLimited);
        assert!(e.message.contains("quota of 2 receipts"), "{}", e.message);
        a.charge(&c, Spend::Bytes(6)).unwrap();
        assert_eq!(a.charge(&c, Spend::Bytes(5)).unwrap_err().code, Code::RateLimited);
        a.charge(&c, Spend::Bytes(4)).unwrap();
        // Another client has its own budget.
        a.charge(&ClientId::Addr(IpAddr::from([10, 0, 0, 2])), Spend::Receipt).unwrap();
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_refuses() {
        let a = Access::new(AccessMode::Open, vec![], Quotas { requests_per_second: 5, ..Quotas::default() });
        let c = ClientId::Addr(ip());
        let ok = (0..100).filter(|_| a.request(&c).is_ok()).count();
        // A burst of twice the rate (plus what refilled while looping).
        assert!((10..=12).contains(&ok), "{ok} requests passed");
    }

    #[test]
    fn keyed_mode_needs_a_known_key_where_it_matters() {
        let keys = vec![ApiKey { name: "alice".into(), key: "s3cret".into() }];
        let a = Access::new(AccessMode::ApiKeys, keys, Quotas::default());
        assert_eq!(a.identify(Some("s3cret"), ip(), true).unwrap(), ClientId::Key("alice".into()));
        assert_eq!(a.identify(Some("wrong"), ip(), true).unwrap_err().code, Code::Unauthorized);
        assert_eq!(a.identify(None, ip(), true).unwrap_err().code, Code::Unauthorized);
        // Reads need no key.
        assert_eq!(a.identify(None, ip(), false).unwrap(), ClientId::Addr(ip()));
    }
}
