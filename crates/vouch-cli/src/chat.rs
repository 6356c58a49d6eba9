//! `vouch chat` and `vouch complete`: a language model through the node's OpenAI-compatible API, streamed to the
//! terminal, with the receipt saved.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use vouch_api::{Client, ClientError};

use crate::{Cli, Outcome, print_json};

/// What both commands take besides the prompt.
#[derive(Args)]
pub struct GenerationArgs {
    /// Most tokens to generate (default: up to 512 for chat, bounded by the context window; 16 for complete).
    #[arg(long)]
    max_tokens: Option<u32>,
    /// Sampling temperature; 0 (the default here) is greedy decoding.
    #[arg(long, default_value_t = 0.0)]
    temperature: f64,
    /// Nucleus sampling mass.
    #[arg(long)]
    top_p: Option<f64>,
    /// Sampling seed (with temperature > 0; drawn by the node when absent, and recorded in the receipt).
    #[arg(long)]
    seed: Option<u64>,
    /// Stop at this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Verification mode: signed or quorum.
    #[arg(long, default_value = "signed")]
    mode: String,
    /// Executors in quorum mode (default 3).
    #[arg(long)]
    quorum: Option<u8>,
    /// Quorum mode: the account key file that signs the job and pays its fees. Default: $VOUCH_ACCOUNT.
    #[arg(long, env = "VOUCH_ACCOUNT")]
    account: Option<PathBuf>,
    /// Quorum mode: fee paid to each honest executor.
    #[arg(long, default_value_t = 10)]
    fee_per_executor: u64,
    /// Write the receipt here (interactive chat: the last answer's).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write the whole OpenAI-shaped response here (for `vouch verify --response`).
    #[arg(long)]
    response: Option<PathBuf>,
}

#[derive(Args)]
pub struct ChatArgs {
    /// NAME, NAME@VERSION or ID of a GGUF model.
    model: String,
    /// The message; without one, an interactive conversation on stdin (one message per line, Ctrl-D ends).
    prompt: Option<String>,
    /// A system message first.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    g: GenerationArgs,
}

#[derive(Args)]
pub struct CompleteArgs {
    /// NAME, NAME@VERSION or ID of a GGUF model.
    model: String,
    /// The text to continue.
    prompt: String,
    #[command(flatten)]
    g: GenerationArgs,
}

/// The request body fields both endpoints share.
fn body(model: &str, g: &GenerationArgs, stream: bool) -> anyhow::Result<Value> {
    if !matches!(g.mode.as_str(), "signed" | "quorum") {
        anyhow::bail!("--mode: completions are served in signed or quorum mode");
    }
    let mut b = json!({"model": model, "temperature": g.temperature, "stream": stream});
    if stream {
        b["stream_options"] = json!({"include_usage": true});
    }
    if let Some(m) = g.max_tokens {
        b["max_tokens"] = json!(m);
    }
    if let Some(p) = g.top_p {
        b["top_p"] = json!(p);
    }
    // A quorum's executors must all draw from one seed: choose it here when sampling.
    let seed = match g.seed {
        None if g.mode == "quorum" && g.temperature > 0.0 => Some(rand_seed()),
        s => s,
    };
    if let Some(s) = seed {
        b["seed"] = json!(s);
    }
    if !g.stop.is_empty() {
        b["stop"] = json!(g.stop);
    }
    if g.mode == "quorum" {
        b["vouch"] = json!({"mode": "quorum", "quorum": g.quorum.unwrap_or(3)});
    }
    Ok(b)
}

fn rand_seed() -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(
        &blake3::hash(format!("{:?}{:?}", std::time::SystemTime::now(), std::process::id()).as_bytes()).as_bytes()[..8],
    );
    u64::from_le_bytes(b)
}

/// Quorum mode: the node answers the first request with the inputs the job must cover (`job_tx_required`); the job
/// is prepared, checked and signed with the account key, and the request sent again with it.
async fn with_job(
    client: &Client,
    path: &str,
    body: &mut Value,
    model: &str,
    g: &GenerationArgs,
) -> anyhow::Result<()> {
    if g.mode != "quorum" {
        return Ok(());
    }
    let Some(key) = &g.account else {
        anyhow::bail!("quorum mode is paid by the requester: pass --account KEY_FILE (or set VOUCH_ACCOUNT)");
    };
    let key = vouch_crypto::NodeKey::load(key).with_context(|| format!("loading {}", key.display()))?;
    let mut probe = body.clone();
    probe["stream"] = json!(false);
    probe.as_object_mut().map(|o| o.remove("stream_options"));
    let inputs = match client.post_json(path, &probe).await {
        Err(ClientError::Api { detail, .. }) if detail.code == "job_tx_required" => detail
            .details
            .as_ref()
            .and_then(|d| d.get("inputs"))
            .cloned()
            .context("the node asked for a job without naming its inputs")?,
        Err(e) => return Err(e.into()),
        Ok(_) => anyhow::bail!("the node answered a quorum request without a job"),
    };
    let tx = crate::infer::job_tx(client, &key, model, &inputs, g.quorum.unwrap_or(3), g.fee_per_executor).await?;
    body["vouch"]["job_tx"] = json!(tx);
    Ok(())
}

/// Streams one answer to stdout; returns the final response assembled from the chunks (OpenAI's non-stream shape,
/// with the `vouch` object), for saving.
async fn stream_one(client: &Client, path: &str, body: &Value, chat: bool, json_out: bool) -> anyhow::Result<Value> {
    let mut text = String::new();
    let mut finish = Value::Null;
    let mut vouch = Value::Null;
    let mut usage = Value::Null;
    let mut head = Value::Null;
    let mut stdout = std::io::stdout();
    client
        .post_sse(path, body, |ev| {
            if head.is_null() {
                head = ev.clone();
            }
            if let Some(c) = ev["choices"].get(0) {
                let delta = if chat { c["delta"]["content"].as_str() } else { c["text"].as_str() }.unwrap_or("");
                text.push_str(delta);
                if !json_out {
                    // A closed stdout ends the output, not the command.
                    let _ = stdout.write_all(delta.as_bytes()).and_then(|()| stdout.flush());
                }
                if !c["finish_reason"].is_null() {
                    finish = c["finish_reason"].clone();
                }
            }
            if !ev["vouch"].is_null() {
                vouch = ev["vouch"].clone();
            }
            if !ev["usage"].is_null() {
                usage = ev["usage"].clone();
            }
        })
        .await?;
    if !json_out {
        crate::out!();
    }
    let choice = if chat {
        json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish})
    } else {
        json!({"index": 0, "text": text, "finish_reason": finish})
    };
    Ok(json!({
        "id": head["id"], "object": if chat { "chat.completion" } else { "text_completion" }, "created": head["created"],
        "model": head["model"], "system_fingerprint": head["system_fingerprint"], "choices": [choice],
        "usage": usage, "vouch": vouch,
    }))
}

fn save(g: &GenerationArgs, response: &Value) -> anyhow::Result<()> {
    let receipt = &response["vouch"]["receipt"];
    if receipt.is_null() {
        anyhow::bail!("the node's answer carries no receipt");
    }
    if let Some(out) = &g.output {
        std::fs::write(out, serde_json::to_string_pretty(receipt)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    if let Some(out) = &g.response {
        std::fs::write(out, serde_json::to_string_pretty(response)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
    }
    let signers = receipt["evidence"].as_array().map_or(0, Vec::len);
    eprintln!(
        "receipt {} ({}, {} signature{}, finish: {})",
        response["vouch"]["receipt_id"].as_str().unwrap_or("?"),
        response["vouch"]["mode"].as_str().unwrap_or("?"),
        signers,
        if signers == 1 { "" } else { "s" },
        response["choices"][0]["finish_reason"].as_str().unwrap_or("?"),
    );
    Ok(())
}

pub async fn chat(cli: &Cli, a: &ChatArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&cli.node);
    let mut messages: Vec<Value> = vec![];
    if let Some(s) = &a.system {
        messages.push(json!({"role": "system", "content": s}));
    }
    let interactive = a.prompt.is_none();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let prompt = match &a.prompt {
            Some(p) => p.clone(),
            None => {
                eprint!("> ");
                let _ = std::io::stderr().flush();
                match lines.next() {
                    Some(l) => l.context("reading stdin")?,
                    None => break,
                }
            }
        };
        if interactive && prompt.trim().is_empty() {
            continue;
        }
        messages.push(json!({"role": "user", "content": prompt}));
        let mut b = body(&a.model, &a.g, true)?;
        b["messages"] = json!(messages);
        with_job(&client, "/v1/chat/completions", &mut b, &a.model, &a.g).await?;
        let response = stream_one(&client, "/v1/chat/completions", &b, true, cli.json).await?;
        save(&a.g, &response)?;
        if cli.json {
            print_json(&response)?;
        }
        let answer = response["choices"][0]["message"]["content"].clone();
        messages.push(json!({"role": "assistant", "content": answer}));
        if !interactive {
            break;
        }
    }
    Ok(Outcome::Ok)
}

pub async fn complete(cli: &Cli, a: &CompleteArgs) -> anyhow::Result<Outcome> {
    let client = Client::new(&cli.node);
    let mut b = body(&a.model, &a.g, true)?;
    b["prompt"] = json!(a.prompt);
    with_job(&client, "/v1/completions", &mut b, &a.model, &a.g).await?;
    let response = stream_one(&client, "/v1/completions", &b, false, cli.json).await?;
    save(&a.g, &response)?;
    if cli.json {
        print_json(&response)?;
    }
    Ok(Outcome::Ok)
}
