//! `vouch._native`: the Rust half of the `vouch` Python package.
//!
//! It only converts data (JSON text, hex, bytes and paths in and out); the checks, encodings and signatures are the
//! workspace crates' own, so Python and the CLI cannot drift apart. Usage problems raise `ValueError` (`OSError` for
//! files that cannot be read); the Python package turns them into `vouch.UsageError`.

use std::path::PathBuf;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use vouch_codec::ReceiptJson;
use vouch_codec::tx::{Tx, TxKind};
use vouch_crypto::NodeKey;
use vouch_verify::{Doc, VerifyError};

fn value_err(e: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A verification error as the CLI prints it (`error: {err:#}`): the message and its causes.
fn verify_err(e: VerifyError) -> PyErr {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    match e {
        VerifyError::Read { .. } => PyOSError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// A document given as a path or as JSON text (at most one of the two).
fn doc(path: Option<PathBuf>, json: Option<String>, what: &str) -> PyResult<Option<Doc>> {
    match (path, json) {
        (Some(_), Some(_)) => Err(PyValueError::new_err(format!("{what}: give a path or a document, not both"))),
        (Some(p), None) => Ok(Some(Doc::File(p))),
        (None, Some(text)) => serde_json::from_str(&text)
            .map(|v| Some(Doc::Value(v)))
            .map_err(|e| PyValueError::new_err(format!("{what} is not JSON: {e}"))),
        (None, None) => Ok(None),
    }
}

/// Verifies a receipt exactly as `vouch verify` does. Returns `(ok, report JSON as --json prints it, report text as
/// the CLI prints it)`.
#[pyfunction]
#[pyo3(signature = (receipt, *, model=None, genesis=None, online=None, epochs_path=None, epochs_json=None,
    input_path=None, input_json=None, salt=None, response_path=None, response_json=None, tee_measurements=vec![],
    tee_policy=None, allow_simulated_tee=false))]
#[allow(clippy::too_many_arguments)] // the keywords of `vouch verify`, one each
fn verify(
    py: Python<'_>,
    receipt: String,
    model: Option<PathBuf>,
    genesis: Option<PathBuf>,
    online: Option<String>,
    epochs_path: Option<PathBuf>,
    epochs_json: Option<String>,
    input_path: Option<PathBuf>,
    input_json: Option<String>,
    salt: Option<String>,
    response_path: Option<PathBuf>,
    response_json: Option<String>,
    tee_measurements: Vec<String>,
    tee_policy: Option<PathBuf>,
    allow_simulated_tee: bool,
) -> PyResult<(bool, String, String)> {
    if genesis.is_some() && online.is_some() {
        return Err(PyValueError::new_err("genesis and node are exclusive: check the anchor offline or online"));
    }
    let req = vouch_verify::Request {
        receipt,
        model,
        genesis,
        online,
        epochs: doc(epochs_path, epochs_json, "epochs")?,
        input: doc(input_path, input_json, "input")?,
        salt,
        response: doc(response_path, response_json, "response")?,
        tee_measurements,
        tee_policy,
        allow_simulated_tee,
    };
    let report = py.detach(|| match req.online {
        None => vouch_verify::verify_offline(&req),
        Some(_) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|source| VerifyError::Read { path: "tokio runtime".into(), source })?;
            rt.block_on(vouch_verify::verify(&req))
        }
    });
    let report = report.map_err(verify_err)?;
    let json = serde_json::to_string_pretty(&report.to_json()).map_err(value_err)?;
    Ok((report.ok(), json, report.lines().join("\n")))
}

fn parse_receipt(json: &str) -> PyResult<vouch_codec::Receipt> {
    let view: ReceiptJson = serde_json::from_str(json).map_err(|e| value_err(format!("not a receipt: {e}")))?;
    view.to_receipt().map_err(|e| value_err(format!("not a receipt: {e}")))
}

/// The receipt's canonical bytes (what its id hashes and what signatures cover, with evidence and anchor).
#[pyfunction]
fn receipt_to_bytes<'py>(py: Python<'py>, json: &str) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &parse_receipt(json)?.to_bytes()))
}

/// The JSON view of a receipt's canonical bytes.
#[pyfunction]
fn receipt_from_bytes(data: &[u8]) -> PyResult<String> {
    let r = vouch_codec::Receipt::from_bytes(data).map_err(|e| value_err(format!("not a receipt: {e}")))?;
    serde_json::to_string_pretty(&r.to_json()).map_err(value_err)
}

/// The id a receipt's body hashes to (hex); the JSON's own `id` field is not trusted for it.
#[pyfunction]
fn receipt_id(json: &str) -> PyResult<String> {
    Ok(parse_receipt(json)?.id().to_hex())
}

/// The model id of a file's bytes.
#[pyfunction]
fn model_id_of_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    py.detach(|| vouch_verify::model_id_of_file(&path)).map(|id| id.to_string()).map_err(verify_err)
}

fn load_key(path: &std::path::Path) -> PyResult<NodeKey> {
    NodeKey::load(path).map_err(|e| PyOSError::new_err(format!("loading {}: {e}", path.display())))
}

/// Creates a key file (0600) and returns its account address (hex); refuses to overwrite one.
#[pyfunction]
fn key_create(path: PathBuf) -> PyResult<String> {
    if path.exists() {
        return Err(PyOSError::new_err(format!("{} exists; not overwriting a key", path.display())));
    }
    let key = NodeKey::load_or_create(&path).map_err(|e| PyOSError::new_err(format!("{}: {e}", path.display())))?;
    Ok(hex::encode(key.public_key()))
}

/// The account address (hex) of a key file.
#[pyfunction]
fn key_address(path: PathBuf) -> PyResult<String> {
    Ok(hex::encode(load_key(&path)?.public_key()))
}

/// Signs a push of the model `model_id` as `name` (at `version`): `(account hex, signature hex)`.
#[pyfunction]
#[pyo3(signature = (key, name, version, model_id))]
fn sign_push(key: PathBuf, name: &str, version: Option<&str>, model_id: &str) -> PyResult<(String, String)> {
    let key = load_key(&key)?;
    let id: vouch_codec::ModelId = model_id.parse().map_err(value_err)?;
    let signature = key.sign(vouch_codec::domain::PUSH_SIGNATURE, &vouch_codec::push_message(name, version, &id));
    Ok((hex::encode(key.public_key()), hex::encode(signature)))
}

fn address(what: &str, v: &serde_json::Value) -> PyResult<[u8; 32]> {
    let mut a = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap_or_default(), &mut a)
        .map_err(|_| PyValueError::new_err(format!("{what} is 64 hex characters")))?;
    Ok(a)
}

fn amount(what: &str, v: &serde_json::Value) -> PyResult<u64> {
    v.as_u64().ok_or_else(|| PyValueError::new_err(format!("{what} is a non-negative integer")))
}

/// Signs an account transaction and returns its bytes (hex), ready for `POST /v1/ledger/txs`. `kind` is JSON:
/// `{"transfer": {"to", "amount"}}`, `{"add_stake": {"node", "amount"}}`, `{"unbond": {"node", "amount"}}`,
/// `{"bond_validator": {"node_key", "p2p", "stake"}}` or `{"unbond_validator": {"node_key"}}` (`node_key` is the
/// validator node's key file).
#[pyfunction]
fn sign_tx(key: PathBuf, chain: &str, nonce: u64, fee: u64, kind: &str) -> PyResult<String> {
    let key = load_key(&key)?;
    let kind: serde_json::Value = serde_json::from_str(kind).map_err(value_err)?;
    let (name, a) = kind
        .as_object()
        .and_then(|o| o.iter().next())
        .ok_or_else(|| PyValueError::new_err("a transaction kind is {name: {fields}}"))?;
    let account = key.public_key();
    let node_key = || -> PyResult<NodeKey> {
        let path = a["node_key"].as_str().ok_or_else(|| PyValueError::new_err("node_key is a key file path"))?;
        load_key(std::path::Path::new(path))
    };
    let kind = match name.as_str() {
        "transfer" => TxKind::Transfer { to: address("to", &a["to"])?, amount: amount("amount", &a["amount"])? },
        "add_stake" => TxKind::AddStake { node: address("node", &a["node"])?, amount: amount("amount", &a["amount"])? },
        "unbond" => TxKind::Unbond { node: address("node", &a["node"])?, amount: amount("amount", &a["amount"])? },
        "bond_validator" => {
            let (key, key_signature) = vouch_verify::sign::consensus_key(&node_key()?, &account);
            let p2p = a["p2p"].as_str().unwrap_or_default().to_owned();
            TxKind::BondValidator { key, p2p, stake: amount("stake", &a["stake"])?, key_signature }
        }
        "unbond_validator" => {
            TxKind::UnbondValidator { key: vouch_verify::sign::consensus_key(&node_key()?, &account).0 }
        }
        other => return Err(PyValueError::new_err(format!("unknown transaction kind {other:?}"))),
    };
    let tx = Tx { chain: address("chain", &serde_json::Value::from(chain))?, from: account, nonce, fee, kind };
    Ok(hex::encode(vouch_verify::sign::tx(&key, tx).to_bytes()))
}

/// Checks and signs the quorum job an entry node prepared (`POST /v1/jobs/prepare`); returns the signed
/// transaction (hex) for `job_tx`.
#[pyfunction]
fn sign_job(key: PathBuf, tx: &str, id: &str, quorum: u8, fee_per_executor: u64, min_fee: u64) -> PyResult<String> {
    vouch_verify::sign::prepared_job(&load_key(&key)?, tx, id, quorum, fee_per_executor, min_fee).map_err(value_err)
}

/// A fresh random salt (hex) for a private input.
#[pyfunction]
fn random_salt() -> String {
    vouch_zk::private::Salt::random().to_hex()
}

/// Checks that a private-input receipt commits to this input document with this salt; raises `ValueError` with the
/// reason if not.
#[pyfunction]
fn check_private_opening(receipt: &str, input: &str, salt: &str) -> PyResult<()> {
    let receipt = parse_receipt(receipt)?;
    let doc: serde_json::Value = serde_json::from_str(input).map_err(value_err)?;
    let x = vouch_verify::single_f32_input(&doc).map_err(verify_err)?;
    let salt = vouch_zk::private::Salt::from_hex(salt).map_err(|e| value_err(format!("salt: {e}")))?;
    vouch_receipt::check_private_opening(&receipt, &x, &salt).map_err(value_err)
}

/// The module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("HAS_LLM", cfg!(feature = "llm"))?;
    m.add("ZK_SYSTEM", vouch_verify::ZK_SYSTEM)?;
    m.add("ZK_PRIVATE_SYSTEM", vouch_verify::ZK_PRIVATE_SYSTEM)?;
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(receipt_to_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(receipt_from_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(receipt_id, m)?)?;
    m.add_function(wrap_pyfunction!(model_id_of_file, m)?)?;
    m.add_function(wrap_pyfunction!(key_create, m)?)?;
    m.add_function(wrap_pyfunction!(key_address, m)?)?;
    m.add_function(wrap_pyfunction!(sign_push, m)?)?;
    m.add_function(wrap_pyfunction!(sign_tx, m)?)?;
    m.add_function(wrap_pyfunction!(sign_job, m)?)?;
    m.add_function(wrap_pyfunction!(random_salt, m)?)?;
    m.add_function(wrap_pyfunction!(check_private_opening, m)?)?;
    Ok(())
}
