//! Offline verification time per TEE platform, on the vendors' own evidence at its pinned time (the fixtures of
//! `tests/vendor.rs`), and on simulated evidence: `cargo bench -p vouch-tee --bench verify` (or build it with
//! `cargo build --release -p vouch-tee --bench verify` and run the binary). Prints the median and p90 of each.

use std::path::Path;
use std::time::Instant;

use vouch_codec::tee::PlatformReport;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

fn time(name: &str, reps: usize, mut f: impl FnMut()) {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!("{name:<34} median {:>8.3} ms   p90 {:>8.3} ms   ({reps} runs)", t[reps / 2], t[reps * 9 / 10]);
}

fn main() {
    let reps = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(50);
    let tdx = PlatformReport {
        platform: "tdx".into(),
        report: fixture("tdx_quote"),
        collateral: fixture("tdx_quote_collateral.json"),
    };
    let snp = PlatformReport {
        platform: "sev-snp".into(),
        report: hex::decode(String::from_utf8(fixture("report_milan.hex")).unwrap().trim()).unwrap(),
        collateral: fixture("vcek_milan.der"),
    };
    let nitro = PlatformReport { platform: "nitro".into(), report: fixture("attestation.cose"), collateral: vec![] };
    let dir = std::env::temp_dir().join(format!("vouch-tee-bench-{}", std::process::id()));
    let root = vouch_tee::simulated::SimulatedRoot::load_or_create(&dir.join("root.key")).unwrap();
    let sim = PlatformReport {
        platform: "simulated".into(),
        report: root.report(&[1; 48], &[2; 64], 1_000),
        collateral: vec![],
    };
    // Pinned times inside each evidence's validity (see tests/vendor.rs).
    for (name, r, at) in [
        ("tdx (dcap-qvl, quote + collateral)", &tdx, 1_751_328_000),
        ("sev-snp (sev, VCEK->ASK->ARK)", &snp, 1_704_067_200),
        ("nitro (nitro_attest, COSE + chain)", &nitro, 1_736_179_625),
        ("simulated (ed25519)", &sim, 1_000),
    ] {
        vouch_tee::verify_report(r, at).unwrap_or_else(|e| panic!("{name}: {e}"));
        time(name, reps, || {
            std::hint::black_box(vouch_tee::verify_report(r, at).unwrap());
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}
