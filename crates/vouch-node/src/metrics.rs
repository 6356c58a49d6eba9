//! Prometheus metrics, served at `/metrics` in the text exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

pub(crate) struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub inference_seconds: Histogram,
    pub receipts_issued: Counter,
    pub settlements_retried: Counter,
    pub upload_bytes: Counter,
    pub download_bytes: Counter,
    pub proof_self_checks_failed: Counter,
    pub proof_self_check_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vouch");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route, method and status", http_requests.clone());
        let inference_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 24));
        registry.register("inference_seconds", "Model execution time per inference", inference_seconds.clone());
        let receipts_issued = Counter::default();
        registry.register("receipts_issued", "Receipts signed and stored", receipts_issued.clone());
        let settlements_retried = Counter::default();
        registry.register(
            "settlements_retried",
            "Receipt settlements submitted again because the ledger had not recorded them",
            settlements_retried.clone(),
        );
        let upload_bytes = Counter::default();
        registry.register("upload_bytes", "Model bytes accepted", upload_bytes.clone());
        let download_bytes = Counter::default();
        registry.register("download_bytes", "Model bytes served", download_bytes.clone());
        let proof_self_checks_failed = Counter::default();
        registry.register(
            "proof_self_checks_failed",
            "Proofs this node produced that its own verifier rejected (no receipt issued)",
            proof_self_checks_failed.clone(),
        );
        let proof_self_check_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 20));
        registry.register(
            "proof_self_check_seconds",
            "Verification of each produced zk receipt before it is issued",
            proof_self_check_seconds.clone(),
        );
        Self {
            registry,
            http_requests,
            inference_seconds,
            receipts_issued,
            settlements_retried,
            upload_bytes,
            download_bytes,
            proof_self_checks_failed,
            proof_self_check_seconds,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
