//! Inference latency and throughput of the bench models, in-process (engine only) and through the node's HTTP
//! API, side by side with onnxruntime run in the same process tree; plus hub push/pull throughput of a large
//! model. Prints a Markdown report.
//!
//! `scripts/bench.sh` runs it (it builds, makes the 1 GiB model and calls
//! `cargo bench -p vouch-node --bench node -- MODELS_DIR [BIG_MODEL]`).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vouch_codec::{Tensor, TensorData, TensorMap};
use vouch_engine::{Engine, TractEngine, inspect};

const MODELS: [&str; 3] = ["mlp_small", "mlp_mnist", "lenet_small"];
const ITERS: usize = 2000;
const WINDOW: Duration = Duration::from_secs(2);

struct Stats {
    p50_us: f64,
    p99_us: f64,
    mean_us: f64,
}

fn stats(mut samples: Vec<f64>) -> Stats {
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Stats { p50_us: pick(0.5), p99_us: pick(0.99), mean_us: samples.iter().sum::<f64>() / samples.len() as f64 }
}

fn input_for(info: &vouch_engine::ModelInfo) -> TensorMap {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    info.inputs
        .iter()
        .map(|s| {
            let shape: Vec<u64> =
                s.shape.iter().flatten().map(|d| if let vouch_codec::Dim::Fixed(n) = d { *n } else { 1 }).collect();
            let n: u64 = shape.iter().product();
            let data = (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
                })
                .collect();
            (s.name.clone(), Tensor::new(shape, TensorData::F32(data)).unwrap())
        })
        .collect()
}

fn threads() -> usize {
    std::thread::available_parallelism().map(NonZeroUsize::get).unwrap_or(1)
}

fn in_process(path: &Path) -> (Stats, f64) {
    let info = inspect(path).unwrap();
    let model = TractEngine::default().compile(path, &info, None).unwrap();
    let inputs = input_for(&info);
    for _ in 0..50 {
        model.run(&inputs).unwrap();
    }
    let samples = (0..ITERS)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(model.run(&inputs).unwrap());
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    let start = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads())
            .map(|_| {
                let (model, inputs) = (model.clone(), &inputs);
                s.spawn(move || {
                    let mut n = 0;
                    while start.elapsed() < WINDOW {
                        std::hint::black_box(model.run(inputs).unwrap());
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (stats(samples), total as f64 / start.elapsed().as_secs_f64())
}

async fn over_http(url: &str, name: &str, doc: &Value) -> (Stats, f64) {
    let http = reqwest::Client::new();
    let body = json!({"model": name, "inputs": doc}).to_string();
    let endpoint = format!("{url}/v1/infer");
    let call = move |http: reqwest::Client, body: String| {
        let url = endpoint.clone();
        async move {
            let r = http.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
    };
    for _ in 0..50 {
        call(http.clone(), body.clone()).await;
    }
    let mut samples = Vec::with_capacity(ITERS / 4);
    for _ in 0..ITERS / 4 {
        let t = Instant::now();
        call(http.clone(), body.clone()).await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..4 * threads())
        .map(|_| {
            let (http, body, call) = (http.clone(), body.clone(), call.clone());
            tokio::spawn(async move {
                let mut n = 0u64;
                while start.elapsed() < WINDOW {
                    call(http.clone(), body.clone()).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    (stats(samples), total as f64 / start.elapsed().as_secs_f64())
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let models = PathBuf::from(args.first().expect("usage: node MODELS_DIR [BIG_MODEL]"));
    let big = args.get(1).map(PathBuf::from);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    let ort = Command::new("python3")
        .arg(root.join("scripts/bench_ort.py"))
        .arg(&models)
        .args(["--json", "--iters", &ITERS.to_string()])
        .output()
        .expect("python3");
    assert!(ort.status.success(), "bench_ort.py failed: {}", String::from_utf8_lossy(&ort.stderr));
    let ort: Value = serde_json::from_slice(&ort.stdout).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let home = tempfile::tempdir().unwrap();
    let node = rt
        .block_on(vouch_node::Node::start(
            home.path(),
            // The bench pushes unsigned through the client: its node takes that, as a private node may.
            vouch_node::NodeConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                unsigned_pushes: true,
                ..Default::default()
            },
            true,
        ))
        .unwrap();
    let url = format!("http://{}", node.local_addr());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = rt.spawn(node.serve(async move {
        let _ = stop_rx.await;
    }));
    let client = vouch_api::Client::new(&url);

    println!(
        "Machine: {} cores; {ITERS} sequential runs for latency, {}s windows for throughput ({} threads in-process, {} concurrent HTTP clients).\n",
        threads(),
        WINDOW.as_secs(),
        threads(),
        4 * threads()
    );
    println!(
        "| model | onnxruntime p50 us | vouch in-process p50 us | ratio | vouch in-process p99 us | vouch HTTP p50 us | HTTP p99 us | onnxruntime inf/s | in-process inf/s | HTTP inf/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for name in MODELS {
        let path = models.join(format!("{name}.onnx"));
        let (lat, thr) = in_process(&path);
        rt.block_on(client.push(&path, name, &Default::default(), |_| {})).unwrap();
        let info = inspect(&path).unwrap();
        let doc: Value = serde_json::to_value(vouch_codec::tensor::map_to_json(&input_for(&info))).unwrap();
        let (hl, ht) = rt.block_on(over_http(&url, name, &doc));
        let o = &ort[name];
        let op50 = o["p50_us"].as_f64().unwrap();
        println!(
            "| {name} | {op50:.1} | {:.1} | {:.2}x | {:.1} | {:.1} | {:.1} | {:.0} | {thr:.0} | {ht:.0} |",
            lat.p50_us,
            lat.p50_us / op50,
            lat.p99_us,
            hl.p50_us,
            hl.p99_us,
            o["throughput_per_s"].as_f64().unwrap()
        );
        let _ = lat.mean_us;
    }

    if let Some(big) = big {
        let size = std::fs::metadata(&big).unwrap().len();
        let rss_before = peak_rss_mib();
        let t = Instant::now();
        let v = rt.block_on(client.push(&big, "big", &Default::default(), |_| {})).unwrap();
        let push_s = t.elapsed().as_secs_f64();
        let out = home.path().join("pulled.onnx");
        let t = Instant::now();
        rt.block_on(client.pull(v.id, &out)).unwrap();
        let pull_s = t.elapsed().as_secs_f64();
        let mib = size as f64 / (1 << 20) as f64;
        println!("\n| transfer | size MiB | seconds | MiB/s |\n|---|---|---|---|");
        println!("| push (stream, hash, fsync, inspect, commit) | {mib:.0} | {push_s:.2} | {:.0} |", mib / push_s);
        println!("| pull (stream, client re-hash, fsync) | {mib:.0} | {pull_s:.2} | {:.0} |", mib / pull_s);
        println!(
            "\nPeak RSS of the bench process (node + client): {rss_before:.0} MiB before the transfers, {:.0} MiB after.",
            peak_rss_mib()
        );
    }
    let _ = stop_tx.send(());
    rt.block_on(server).unwrap().unwrap();
}
