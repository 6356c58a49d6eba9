//! Model replication: a node asked to run a model it lacks fetches it from the other validators by reference,
//! checks the bytes hash to the advertised id, inspects them like a push, and records the same name and version.

use std::io::Read;
use std::sync::Arc;

use vouch_api::{Client, ModelVersion};
use vouch_hub::{HubError, NewVersion, Version};

use crate::NodeState;
use crate::error::{ApiError, Code};

/// The local model for `reference`, fetched from a peer first if this node does not have it.
pub(crate) async fn ensure_model(s: &Arc<NodeState>, reference: &str) -> Result<ModelVersion, ApiError> {
    let st = s.clone();
    let r = reference.to_owned();
    match tokio::task::spawn_blocking(move || st.hub.resolve(&r)).await? {
        Ok(v) => return Ok(v),
        Err(HubError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let me = format!("http://{}", s.config.listen);
    let mut tried = vec![];
    for peer in s.chain.spec.validators.iter().map(|v| v.api.clone()).filter(|a| *a != me && *a != s.api_url) {
        match fetch_from(s, &peer, reference).await {
            Ok(v) => {
                tracing::info!(model = %v.id, peer = %peer, "hub.replicated");
                return Ok(v);
            }
            Err(e) => tried.push(format!("{peer}: {}", e.message)),
        }
    }
    Err(ApiError::new(
        Code::ModelNotFound,
        format!(
            "no model {reference:?} here or on any peer ({})",
            if tried.is_empty() { "no peers".into() } else { tried.join("; ") }
        ),
    ))
}

async fn fetch_from(s: &Arc<NodeState>, peer: &str, reference: &str) -> Result<ModelVersion, ApiError> {
    let bad = |what: String| ApiError::new(Code::PeerError, what);
    let client = Client::new(peer);
    let remote = client.show(reference).await.map_err(|e| bad(e.to_string()))?;
    if remote.size > s.config.max_model_bytes {
        return Err(bad(format!("model is {} bytes, above this node's limit", remote.size)));
    }
    let tmp = tempfile::NamedTempFile::new_in(s.home.join("tmp")).map_err(ApiError::internal)?.into_temp_path();
    // `pull` checks that the bytes hash to the id it asked for: a lying peer is caught here.
    client.pull(remote.id, &tmp).await.map_err(|e| bad(e.to_string()))?;
    let st = s.clone();
    tokio::task::spawn_blocking(move || {
        let mut up = st.hub.begin_upload(st.config.max_model_bytes)?;
        let mut f = std::fs::File::open(&tmp).map_err(HubError::Io)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(HubError::Io)?;
            if n == 0 {
                break;
            }
            up.write(&buf[..n])?;
        }
        let staged = up.finish()?;
        if staged.id != remote.id {
            return Err(ApiError::new(Code::PeerError, "replicated bytes changed on disk"));
        }
        // Described from the bytes, never taken from the peer.
        let d = crate::service::models::describe(&st, staged.id, staged.path(), staged.size, false)?.into_version();
        let version: Option<Version> = remote.version.parse().ok();
        let template = ModelVersion {
            format: d.format,
            inputs: d.inputs,
            outputs: d.outputs,
            ops: d.ops,
            opsets: d.opsets,
            producer: d.producer,
            llm: d.llm,
            // Proving needs the calibration set, which stays with the pushing node.
            zk: None,
            ..remote.clone()
        };
        // The name's owner on the validator it came from (a validator of the same chain).
        let owner = remote
            .owner
            .as_deref()
            .and_then(|o| hex::decode(o).ok())
            .and_then(|o| <[u8; 32]>::try_from(o).ok())
            .unwrap_or_else(|| st.key.public_key());
        let new = NewVersion {
            name: remote.name.clone(),
            version,
            description: remote.description.clone(),
            template,
            owner,
            legacy_owner: st.key.public_key(),
        };
        match st.hub.commit(staged, new) {
            Ok(v) => Ok(v),
            // Replicated concurrently by another request: use that copy.
            Err(HubError::VersionExists { .. }) => Ok(st.hub.resolve(&remote.id.to_string())?),
            Err(e) => Err(e.into()),
        }
    })
    .await?
}
