//! Running one official ONNX node conformance case (`model.onnx` + `test_data_set_*/{input,output}_*.pb`)
//! through the same path the node uses: [`inspect`](crate::inspect), the [`ModelCache`](crate::ModelCache)
//! with [`TractEngine`](crate::TractEngine), and Vouch tensors in and out. Used by the conformance test and
//! by the `onnx_allowlist` example that regenerates the pinned allow-list.

use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;

use tract_onnx::data_resolver::MmapDataResolver;
use tract_onnx::tensor::{load_tensor, proto_from_reader};
use vouch_codec::{ModelId, Tensor, TensorData, TensorMap};

use crate::{ModelCache, TractEngine, contain, convert, inspect};

fn read_tensor(path: &Path) -> Result<Tensor, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let proto = proto_from_reader(file).map_err(|e| format!("{e:#}"))?;
    let t =
        contain(|| load_tensor(&MmapDataResolver, &proto, None).map_err(|e| crate::EngineError::Run(format!("{e:#}"))))
            .map_err(|e| e.to_string())?;
    convert::from_tract("expected", &t).map_err(|e| e.to_string())
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-5 + 1e-3 * b.abs()
}

/// Whether `got` matches `want`: same dtype and shape; floats within `atol 1e-5 + rtol 1e-3`, the rest exact.
pub fn tensors_match(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!("shape {:?}, expected {:?}", got.shape(), want.shape()));
    }
    let ok = match (got.data(), want.data()) {
        (TensorData::F32(a), TensorData::F32(b)) => a.iter().zip(b).all(|(x, y)| close(f64::from(*x), f64::from(*y))),
        (TensorData::F64(a), TensorData::F64(b)) => a.iter().zip(b).all(|(x, y)| close(*x, *y)),
        (a, b) => a == b,
    };
    if ok { Ok(()) } else { Err(format!("values differ ({} vs expected {})", got.dtype(), want.dtype())) }
}

/// Runs every data set of the case in `dir`.
pub fn run_case(dir: &Path) -> Result<(), String> {
    let model = dir.join("model.onnx");
    let info = inspect(&model).map_err(|e| e.to_string())?;
    let id = ModelId::of_bytes(&std::fs::read(&model).map_err(|e| e.to_string())?);
    let cache = ModelCache::new(Arc::new(TractEngine::default()), NonZeroUsize::new(4).expect("4 > 0"));
    let mut sets: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("test_data_set_")))
        .collect();
    sets.sort();
    if sets.is_empty() {
        return Err("no data sets".into());
    }
    for set in sets {
        let mut inputs = TensorMap::new();
        for (j, spec) in info.inputs.iter().enumerate() {
            let p = set.join(format!("input_{j}.pb"));
            if !p.exists() {
                return Err(format!("missing {}", p.display()));
            }
            inputs.insert(spec.name.clone(), read_tensor(&p)?);
        }
        crate::validate_inputs(&info.inputs, &inputs).map_err(|e| e.to_string())?;
        let plan = cache.get(id, &model, &info, &inputs).map_err(|e| e.to_string())?;
        let outputs = plan.run(&inputs).map_err(|e| e.to_string())?;
        for (j, spec) in info.outputs.iter().enumerate() {
            let want = read_tensor(&set.join(format!("output_{j}.pb")))?;
            let got = outputs.get(&spec.name).ok_or_else(|| format!("no output {}", spec.name))?;
            tensors_match(got, &want).map_err(|e| format!("output {}: {e}", spec.name))?;
        }
    }
    Ok(())
}
