//! Runs one model in a loop for profiling (`perf record`): `profile_model MODEL.onnx [ITERS]`.

use vouch_codec::{Dim, Tensor, TensorData};
use vouch_engine::{Engine, TractEngine, inspect};

fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: profile_model MODEL [ITERS]"));
    let iters: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let info = inspect(&path).unwrap();
    let model = TractEngine::default().compile(&path, &info, None).unwrap();
    let inputs = info
        .inputs
        .iter()
        .map(|s| {
            let shape: Vec<u64> =
                s.shape.iter().flatten().map(|d| if let Dim::Fixed(n) = d { *n } else { 1 }).collect();
            let n = shape.iter().product::<u64>() as usize;
            (
                s.name.clone(),
                Tensor::new(shape, TensorData::F32((0..n).map(|i| (i % 7) as f32 / 7.0).collect())).unwrap(),
            )
        })
        .collect();
    let t = std::time::Instant::now();
    for _ in 0..iters {
        std::hint::black_box(model.run(&inputs).unwrap());
    }
    eprintln!("{:.2} us/run", t.elapsed().as_secs_f64() * 1e6 / iters as f64);
}
