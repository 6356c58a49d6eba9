//! The offline verifiers against real vendor evidence (`tests/fixtures/README.md` says where each file comes from):
//! each verifies at a pinned time inside its validity, and each single change (a signature byte, the measurement,
//! the report data, the time, the root, the TCB level, truncation, garbage) is refused with the variant naming the
//! check that failed. Nothing here depends on the wall clock.

use aws_nitro_enclaves_nsm_api::api::AttestationDoc;
use coset::{CborSerializable, CoseSign1};
use vouch_codec::tee::PlatformReport;
use vouch_tee::{Claims, Platform, Policy, Roots, SnpTcb, Tcb, TeeError, verify_report, verify_report_with};

const TDX_QUOTE: &[u8] = include_bytes!("fixtures/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("fixtures/tdx_quote_collateral.json");
const TDX_OUTDATED_QUOTE: &[u8] = include_bytes!("fixtures/tdx_quote_outdated");
const TDX_OUTDATED_COLLATERAL: &[u8] = include_bytes!("fixtures/tdx_quote_outdated_collateral.json");
const SGX_QUOTE: &[u8] = include_bytes!("fixtures/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("fixtures/sgx_quote_collateral.json");
const SNP_REPORT_HEX: &str = include_str!("fixtures/report_milan.hex");
const SNP_VCEK: &[u8] = include_bytes!("fixtures/vcek_milan.der");
const NITRO_DOC: &[u8] = include_bytes!("fixtures/attestation.cose");
const OTHER_P384_ROOT: &[u8] = include_bytes!("fixtures/other_root_p384.der");

/// 2025-07-01T00:00:00Z. `tdx_quote`'s collateral is valid from 2025-06-19T10:32:27Z (the QE identity's issue date,
/// its newest item) to [`TDX_NOT_AFTER`] (computed as dcap-qvl's `tests/verify_quote.rs::now_from_collateral` does).
const TDX_NOW: u64 = 1_751_328_000;
/// 2025-07-19T10:00:35Z: the PCK CRL's next update, the collateral's earliest expiry (the TCB info's is 10:16:03).
const TDX_NOT_AFTER: u64 = 1_752_919_235;
/// 2026-03-01T00:00:00Z, inside `tdx_quote_outdated`'s collateral window (2026-02-18T10:58:51Z to
/// [`TDX_OUTDATED_NOT_AFTER`]).
const TDX_OUTDATED_NOW: u64 = 1_772_323_200;
/// 2026-03-20T10:41:15Z: that collateral's PCK CRL next update.
const TDX_OUTDATED_NOT_AFTER: u64 = 1_774_003_275;
/// 2024-01-01T00:00:00Z, inside the Milan VCEK's validity (2023-04-03T19:23:43Z to [`SNP_NOT_AFTER`]).
const SNP_NOW: u64 = 1_704_067_200;
/// 2030-04-03T19:23:43Z: the VCEK's notAfter (the Milan ARK and ASK run to 2045).
const SNP_NOT_AFTER: u64 = 1_901_474_623;
/// 2025-01-06T16:07:05Z: the Nitro document's own timestamp, the time `nitro_attest`'s test verifies it at (its leaf
/// certificate lives a few hours).
const NITRO_NOW: u64 = 1_736_179_625;

// Offsets in the TDX quotes: a 48-byte header, then (v5 only) a 6-byte body header, the TD report, a 4-byte length
// and the signature data, which starts with the 64-byte ECDSA signature over header and report. In the TD report,
// MRTD is at 136 and REPORTDATA at 520.
const TDX_V4_MRTD: usize = 48 + 136;
const TDX_V4_REPORT_DATA: usize = 48 + 520;
const TDX_V4_SIGNATURE: usize = 48 + 584 + 4;
/// Where `tdx_quote` ends; 70 bytes of zero padding follow.
const TDX_V4_END: usize = 4936;
const TDX_V5_SIGNATURE: usize = 48 + 6 + 648 + 4;

// SEV-SNP report offsets.
const SNP_REPORT_DATA: usize = 0x50;
const SNP_MEASUREMENT: usize = 0x90;
const SNP_SIGNATURE: usize = 0x2A0;

fn report(platform: Platform, report: &[u8], collateral: &[u8]) -> PlatformReport {
    PlatformReport { platform: platform.name().into(), report: report.to_vec(), collateral: collateral.to_vec() }
}

fn tdx(quote: &[u8], collateral: &[u8], now_s: u64) -> Result<Claims, TeeError> {
    verify_report(&report(Platform::Tdx, quote, collateral), now_s)
}

fn snp_report() -> Vec<u8> {
    hex::decode(SNP_REPORT_HEX.trim()).unwrap()
}

fn snp(report_bytes: &[u8], vcek: &[u8], now_s: u64) -> Result<Claims, TeeError> {
    verify_report(&report(Platform::SevSnp, report_bytes, vcek), now_s)
}

fn nitro(doc: &[u8], now_s: u64) -> Result<Claims, TeeError> {
    verify_report(&report(Platform::Nitro, doc, &[]), now_s)
}

fn refused(result: Result<Claims, TeeError>) -> TeeError {
    match result {
        Ok(claims) => panic!("accepted: {claims:?}"),
        Err(e) => e,
    }
}

fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 0x01;
    b
}

/// Deterministic garbage (no RNG: a BLAKE3 stream of the seed).
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new_derive_key("vouch-tee vendor test garbage")
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn is_malformed(e: &TeeError, platform: Platform) -> bool {
    matches!(e, TeeError::Malformed { platform: p, .. } if *p == platform)
}

// ---------------------------------------------------------------- Intel TDX

#[test]
fn tdx_quote_verifies_with_its_claims() {
    let claims = tdx(TDX_QUOTE, TDX_COLLATERAL, TDX_NOW).unwrap();
    assert_eq!(claims.platform, Platform::Tdx);
    // MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2, read straight from the quote's TD report.
    assert_eq!(claims.measurement.len(), 192);
    assert_eq!(claims.measurement[..48], TDX_QUOTE[TDX_V4_MRTD..TDX_V4_MRTD + 48]);
    let rtmr0 = 48 + 328;
    assert_eq!(claims.measurement[48..], TDX_QUOTE[rtmr0..rtmr0 + 3 * 48]);
    assert_eq!(claims.report_data[..], TDX_QUOTE[TDX_V4_REPORT_DATA..TDX_V4_REPORT_DATA + 64]);
    assert_eq!(claims.tcb, Tcb::Status { status: "UpToDate".into(), advisories: vec![] });
    assert_eq!(claims.not_after_s, TDX_NOT_AFTER);
    assert_eq!(claims.produced_at_s, None);
    assert_eq!(claims.simulated_root, None);
    assert_eq!(Policy::default().check(&claims).unwrap(), "UpToDate");
    // The last second before the PCK CRL's next update is inside the window (webpki treats a CRL as expired from its
    // next update on).
    tdx(TDX_QUOTE, TDX_COLLATERAL, TDX_NOT_AFTER - 1).unwrap();
}

#[test]
fn tdx_outdated_quote_is_refused_for_its_tcb() {
    // The platform's SVNs (its PCK certificate's CPU SVN) are below every level of the TCB info: no level matches,
    // which dcap-qvl refuses before any policy (Intel's QVL calls it TCB_NOT_SUPPORTED). dcap-qvl's own tests only
    // verify this quote after overriding the TCB info.
    let e = refused(tdx(TDX_OUTDATED_QUOTE, TDX_OUTDATED_COLLATERAL, TDX_OUTDATED_NOW));
    assert!(
        matches!(&e, TeeError::TcbNotAccepted { platform: Platform::Tdx, status, .. } if status.contains("no TCB level")),
        "{e}"
    );
    // Everything before the TCB level verified: the same quote at a time past its collateral is refused as expired.
    let e = refused(tdx(TDX_OUTDATED_QUOTE, TDX_OUTDATED_COLLATERAL, TDX_OUTDATED_NOT_AFTER + 1));
    assert!(matches!(&e, TeeError::Expired { platform: Platform::Tdx, .. }), "{e}");
}

#[test]
fn default_policy_refuses_an_out_of_date_tdx_status() {
    // No fixture verifies with an out-of-date status (see above), so the real quote's claims carry the status the
    // outdated platform's nearest level has.
    let mut claims = tdx(TDX_QUOTE, TDX_COLLATERAL, TDX_NOW).unwrap();
    claims.tcb = Tcb::Status { status: "OutOfDate".into(), advisories: vec!["INTEL-SA-01036".into()] };
    let e = Policy::default().check(&claims).unwrap_err();
    assert!(
        matches!(&e, TeeError::TcbNotAccepted { platform: Platform::Tdx, status, accepted }
            if status == "OutOfDate (advisories INTEL-SA-01036)" && accepted == "UpToDate"),
        "{e}"
    );
    let lenient = Policy { accepted_tcb: vec!["UpToDate".into(), "OutOfDate".into()], ..Policy::default() };
    assert_eq!(lenient.check(&claims).unwrap(), "OutOfDate");
}

#[test]
fn tdx_refuses_a_flipped_signature_byte() {
    for (quote, collateral, now, at) in [
        (TDX_QUOTE, TDX_COLLATERAL, TDX_NOW, TDX_V4_SIGNATURE),
        (TDX_QUOTE, TDX_COLLATERAL, TDX_NOW, TDX_V4_SIGNATURE + 63),
        (TDX_OUTDATED_QUOTE, TDX_OUTDATED_COLLATERAL, TDX_OUTDATED_NOW, TDX_V5_SIGNATURE),
    ] {
        let e = refused(tdx(&flipped(quote, at), collateral, now));
        assert!(
            matches!(&e, TeeError::BadSignature { platform: Platform::Tdx, reason } if reason.contains("TD report's signature")),
            "byte {at}: {e}"
        );
    }
}

#[test]
fn tdx_refuses_a_changed_measurement_or_report_data() {
    // MRTD, RTMR0 and REPORTDATA are signed: a change in any is the TD report signature failing.
    for at in [TDX_V4_MRTD, TDX_V4_MRTD + 47, 48 + 328, TDX_V4_REPORT_DATA, TDX_V4_REPORT_DATA + 63] {
        let e = refused(tdx(&flipped(TDX_QUOTE, at), TDX_COLLATERAL, TDX_NOW));
        assert!(
            matches!(&e, TeeError::BadSignature { platform: Platform::Tdx, reason } if reason.contains("attestation key")),
            "byte {at}: {e}"
        );
    }
}

#[test]
fn tdx_refuses_outside_the_collateral_window() {
    for now in [TDX_NOT_AFTER, TDX_NOT_AFTER + 30 * 86_400, 1_748_736_000 /* 2025-06-01, before the issue dates */] {
        let e = refused(tdx(TDX_QUOTE, TDX_COLLATERAL, now));
        assert!(matches!(&e, TeeError::Expired { platform: Platform::Tdx, now_s, .. } if *now_s == now), "{now}: {e}");
    }
}

#[test]
fn tdx_refuses_a_chain_to_another_root() {
    // The collateral and PCK chains end at Intel's root; pin another one (AMD's Milan ARK).
    let pinned = Roots::pinned();
    let roots = Roots { intel_root_der: pinned.amd_arks[0].1.clone(), ..pinned };
    let e = refused(verify_report_with(&report(Platform::Tdx, TDX_QUOTE, TDX_COLLATERAL), &roots, TDX_NOW));
    assert!(
        matches!(&e, TeeError::UntrustedRoot { platform: Platform::Tdx, reason }
            if reason.contains("Intel SGX Root CA") && reason.contains("ARK-Milan")),
        "{e}"
    );
}

#[test]
fn tdx_refuses_tampered_collateral() {
    // The TCB info is signed by Intel's TCB signing key: change one second of its issue date.
    let mut collateral: serde_json::Value = serde_json::from_slice(TDX_COLLATERAL).unwrap();
    let tcb_info = collateral["tcb_info"].as_str().unwrap();
    assert!(tcb_info.contains("\"issueDate\":\"2025-06-19T10:16:03Z\""));
    collateral["tcb_info"] = tcb_info.replace("2025-06-19T10:16:03Z", "2025-06-19T10:16:04Z").into();
    let e = refused(tdx(TDX_QUOTE, &serde_json::to_vec(&collateral).unwrap(), TDX_NOW));
    assert!(
        matches!(&e, TeeError::BadChain { platform: Platform::Tdx, reason } if reason.contains("TCB info's signature")),
        "{e}"
    );
}

#[test]
fn tdx_refuses_an_sgx_quote() {
    let e = refused(tdx(SGX_QUOTE, SGX_COLLATERAL, TDX_NOW));
    assert!(
        matches!(&e, TeeError::Malformed { platform: Platform::Tdx, reason } if reason.contains("not a TDX quote")),
        "{e}"
    );
}

#[test]
fn tdx_refuses_garbage_truncation_and_missing_collateral() {
    for len in 0..TDX_V4_END {
        let e = refused(tdx(&TDX_QUOTE[..len], TDX_COLLATERAL, TDX_NOW));
        assert!(is_malformed(&e, Platform::Tdx), "{len} bytes: {e}");
    }
    // The quote proper ends at TDX_V4_END: the zero padding after it may be cut or kept, but not changed.
    tdx(&TDX_QUOTE[..TDX_V4_END], TDX_COLLATERAL, TDX_NOW).unwrap();
    let e = refused(tdx(&flipped(TDX_QUOTE, TDX_V4_END + 10), TDX_COLLATERAL, TDX_NOW));
    assert!(matches!(&e, TeeError::Malformed { reason, .. } if reason.contains("zero padding")), "{e}");

    for (seed, len) in [(1, 16), (2, 640), (3, 5006), (4, 70_000)] {
        let e = refused(tdx(&garbage(seed, len), TDX_COLLATERAL, TDX_NOW));
        assert!(is_malformed(&e, Platform::Tdx), "garbage {len}: {e}");
    }
    // Garbage behind a valid TDX header.
    let mut headed = TDX_QUOTE[..48].to_vec();
    headed.extend(garbage(5, 4000));
    assert!(is_malformed(&refused(tdx(&headed, TDX_COLLATERAL, TDX_NOW)), Platform::Tdx));

    let half = &TDX_COLLATERAL[..TDX_COLLATERAL.len() / 2];
    for collateral in [&b""[..], &b"{}"[..], &b"not json"[..], &garbage(6, 2000)[..], half] {
        let e = refused(tdx(TDX_QUOTE, collateral, TDX_NOW));
        assert!(
            matches!(&e, TeeError::Malformed { platform: Platform::Tdx, reason } if reason.contains("collateral")),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------- AMD SEV-SNP

#[test]
fn snp_report_verifies_with_its_claims() {
    let bytes = snp_report();
    assert_eq!(bytes.len(), 1184);
    let claims = snp(&bytes, SNP_VCEK, SNP_NOW).unwrap();
    assert_eq!(claims.platform, Platform::SevSnp);
    assert_eq!(claims.measurement.len(), 48);
    assert_eq!(claims.measurement, bytes[SNP_MEASUREMENT..SNP_MEASUREMENT + 48]);
    assert_eq!(
        hex::encode(&claims.measurement),
        "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
    );
    assert_eq!(claims.report_data[..], bytes[SNP_REPORT_DATA..SNP_REPORT_DATA + 64]);
    assert_eq!(claims.tcb, Tcb::Snp(SnpTcb { bootloader: 3, tee: 0, snp: 8, microcode: 115 }));
    assert_eq!(claims.not_after_s, SNP_NOT_AFTER);
    assert_eq!(claims.produced_at_s, None);
    assert_eq!(Policy::default().check(&claims).unwrap(), "UpToDate");
    snp(&bytes, SNP_VCEK, SNP_NOT_AFTER).unwrap();
}

#[test]
fn snp_policy_refuses_a_tcb_below_its_minimum() {
    // No older real SNP report exists to test with: raise the policy's minimum above the fixture's instead.
    let claims = snp(&snp_report(), SNP_VCEK, SNP_NOW).unwrap();
    let policy = Policy { snp_min_tcb: SnpTcb { bootloader: 3, tee: 0, snp: 8, microcode: 116 }, ..Policy::default() };
    let e = policy.check(&claims).unwrap_err();
    assert!(
        matches!(&e, TeeError::TcbNotAccepted { platform: Platform::SevSnp, status, .. }
            if status.contains("OutOfDate") && status.contains("microcode=115")),
        "{e}"
    );
}

#[test]
fn snp_refuses_a_flipped_signature_byte() {
    for at in [SNP_SIGNATURE, SNP_SIGNATURE + 47, SNP_SIGNATURE + 72, SNP_SIGNATURE + 72 + 47] {
        let e = refused(snp(&flipped(&snp_report(), at), SNP_VCEK, SNP_NOW));
        assert!(
            matches!(&e, TeeError::BadSignature { platform: Platform::SevSnp, reason } if reason.contains("VCEK's key")),
            "byte {at:#x}: {e}"
        );
    }
}

#[test]
fn snp_refuses_a_changed_measurement_or_report_data() {
    for at in [SNP_MEASUREMENT, SNP_MEASUREMENT + 47, SNP_REPORT_DATA, SNP_REPORT_DATA + 63] {
        let e = refused(snp(&flipped(&snp_report(), at), SNP_VCEK, SNP_NOW));
        assert!(
            matches!(&e, TeeError::BadSignature { platform: Platform::SevSnp, reason } if reason.contains("signature")),
            "byte {at:#x}: {e}"
        );
    }
}

#[test]
fn snp_refuses_outside_the_vcek_window() {
    for (now, what) in [(SNP_NOT_AFTER + 1, "VCEK"), (1_672_531_200 /* 2023-01-01, before the VCEK */, "VCEK")] {
        let e = refused(snp(&snp_report(), SNP_VCEK, now));
        assert!(
            matches!(&e, TeeError::Expired { platform: Platform::SevSnp, now_s, reason } if *now_s == now && reason.contains(what)),
            "{now}: {e}"
        );
    }
}

#[test]
fn snp_refuses_a_chain_to_another_root() {
    let mut roots = Roots::pinned();
    let turin = roots.amd_arks.iter().find(|(name, _)| name == "Turin").unwrap().1.clone();
    roots.amd_arks.iter_mut().find(|(name, _)| name == "Milan").unwrap().1 = turin;
    let e = refused(verify_report_with(&report(Platform::SevSnp, &snp_report(), SNP_VCEK), &roots, SNP_NOW));
    assert!(
        matches!(&e, TeeError::UntrustedRoot { platform: Platform::SevSnp, reason } if reason.contains("Milan ASK")),
        "{e}"
    );

    roots.amd_arks.retain(|(name, _)| name != "Milan");
    let e = refused(verify_report_with(&report(Platform::SevSnp, &snp_report(), SNP_VCEK), &roots, SNP_NOW));
    assert!(
        matches!(&e, TeeError::UntrustedRoot { reason, .. } if reason.contains("no ARK is pinned for Milan")),
        "{e}"
    );
}

#[test]
fn snp_refuses_a_certificate_that_is_not_the_vcek() {
    // A certificate from another PKI (Intel's root) is not issued by any AMD ASK.
    let intel_root = Roots::pinned().intel_root_der;
    let e = refused(snp(&snp_report(), &intel_root, SNP_NOW));
    assert!(
        matches!(&e, TeeError::BadChain { platform: Platform::SevSnp, reason } if reason.contains("not the ASK")),
        "{e}"
    );
    // A VCEK whose signature by the ASK is broken (a byte flipped in its signature, the certificate's last bytes).
    let e = refused(snp(&snp_report(), &flipped(SNP_VCEK, SNP_VCEK.len() - 1), SNP_NOW));
    assert!(matches!(&e, TeeError::BadChain { reason, .. } if reason.contains("not signed by the Milan ASK")), "{e}");
}

#[test]
fn snp_refuses_garbage_truncation_and_missing_collateral() {
    let bytes = snp_report();
    for len in 0..bytes.len() {
        assert!(is_malformed(&refused(snp(&bytes[..len], SNP_VCEK, SNP_NOW)), Platform::SevSnp), "{len} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(is_malformed(&refused(snp(&longer, SNP_VCEK, SNP_NOW)), Platform::SevSnp));
    for seed in 0..64 {
        let e = refused(snp(&garbage(seed, 1184), SNP_VCEK, SNP_NOW));
        assert!(is_malformed(&e, Platform::SevSnp), "garbage {seed}: {e}");
    }
    assert!(is_malformed(&refused(snp(&[0; 1184], SNP_VCEK, SNP_NOW)), Platform::SevSnp));
    // A non-zero reserved byte (0x1F8..0x1FF is reserved in a v2 report) is outside what `sev` parses.
    assert!(is_malformed(&refused(snp(&flipped(&bytes, 0x1F8), SNP_VCEK, SNP_NOW)), Platform::SevSnp));

    for vcek in [&b""[..], &SNP_VCEK[..100], &garbage(7, 1360)[..]] {
        let e = refused(snp(&bytes, vcek, SNP_NOW));
        assert!(
            matches!(&e, TeeError::Malformed { platform: Platform::SevSnp, reason } if reason.contains("VCEK")),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------- AWS Nitro

fn nitro_parts() -> (CoseSign1, AttestationDoc) {
    let sign1 = CoseSign1::from_slice(NITRO_DOC).unwrap();
    let doc = AttestationDoc::from_binary(sign1.payload.as_ref().unwrap()).unwrap();
    (sign1, doc)
}

/// The document with its payload replaced by `doc` (the signature is then over other bytes).
fn nitro_with(doc: &AttestationDoc) -> Vec<u8> {
    let (mut sign1, _) = nitro_parts();
    sign1.payload = Some(doc.to_binary());
    sign1.to_vec().unwrap()
}

#[test]
fn nitro_document_verifies_with_its_claims() {
    let claims = nitro(NITRO_DOC, NITRO_NOW).unwrap();
    let (_, doc) = nitro_parts();
    assert_eq!(claims.platform, Platform::Nitro);
    assert_eq!(claims.measurement.len(), 144);
    let pcrs: Vec<u8> = (0..3).flat_map(|i| doc.pcrs[&i].to_vec()).collect();
    assert_eq!(claims.measurement, pcrs);
    assert!(claims.measurement.chunks(48).all(|pcr| pcr.iter().any(|&b| b != 0)));
    // The document has no user_data: its report data is all zeros, which binds nothing.
    assert!(doc.user_data.is_none());
    assert_eq!(claims.report_data, [0; 64]);
    // Nitro reports no TCB level (AWS manages the hypervisor and the NSM): the policy has nothing to judge.
    assert_eq!(claims.tcb, Tcb::NotReported);
    assert_eq!(Policy::default().check(&claims).unwrap(), "NotReported");
    assert_eq!(claims.produced_at_s, Some(NITRO_NOW));
    assert!(claims.not_after_s > NITRO_NOW && claims.not_after_s < NITRO_NOW + 86_400, "{}", claims.not_after_s);
    nitro(NITRO_DOC, claims.not_after_s).unwrap();
}

#[test]
fn nitro_refuses_a_flipped_signature_byte() {
    // The COSE_Sign1 ends with the 96-byte ECDSA P-384 signature.
    let (sign1, _) = nitro_parts();
    assert_eq!(sign1.signature.len(), 96);
    assert_eq!(sign1.signature[..], NITRO_DOC[NITRO_DOC.len() - 96..]);
    for at in [NITRO_DOC.len() - 96, NITRO_DOC.len() - 1] {
        let e = refused(nitro(&flipped(NITRO_DOC, at), NITRO_NOW));
        assert!(
            matches!(&e, TeeError::BadSignature { platform: Platform::Nitro, reason } if reason.contains("COSE_Sign1")),
            "{e}"
        );
    }
}

#[test]
fn nitro_refuses_a_changed_measurement_or_report_data() {
    let (_, doc) = nitro_parts();
    // A PCR0 byte, flipped in place inside the signed payload.
    let pcr0 = doc.pcrs[&0].to_vec();
    let at = NITRO_DOC.windows(48).position(|w| w == pcr0).unwrap();
    let e = refused(nitro(&flipped(NITRO_DOC, at + 5), NITRO_NOW));
    assert!(matches!(&e, TeeError::BadSignature { platform: Platform::Nitro, .. }), "{e}");

    // Re-encoding the unchanged payload gives the signed bytes back, so what follows changes one field only.
    assert_eq!(nitro_with(&doc), NITRO_DOC);
    let mut changed = nitro_parts().1;
    changed.pcrs.get_mut(&1).unwrap()[0] ^= 1;
    assert!(matches!(refused(nitro(&nitro_with(&changed), NITRO_NOW)), TeeError::BadSignature { .. }));
    let mut with_data = nitro_parts().1;
    with_data.user_data = Some(nitro_attest::ByteBuf::from(vec![7; 64]));
    assert!(matches!(refused(nitro(&nitro_with(&with_data), NITRO_NOW)), TeeError::BadSignature { .. }));
}

#[test]
fn nitro_refuses_outside_the_certificates_window() {
    let not_after = nitro(NITRO_DOC, NITRO_NOW).unwrap().not_after_s;
    for now in [not_after + 1, NITRO_NOW + 365 * 86_400, NITRO_NOW - 86_400] {
        let e = refused(nitro(NITRO_DOC, now));
        assert!(
            matches!(&e, TeeError::Expired { platform: Platform::Nitro, now_s, .. } if *now_s == now),
            "{now}: {e}"
        );
    }
}

#[test]
fn nitro_refuses_a_chain_to_another_root() {
    let (_, mut doc) = nitro_parts();
    doc.cabundle[0] = nitro_attest::ByteBuf::from(OTHER_P384_ROOT.to_vec());
    let e = refused(nitro(&nitro_with(&doc), NITRO_NOW));
    assert!(
        matches!(&e, TeeError::UntrustedRoot { platform: Platform::Nitro, reason } if reason.contains("SHA-256")),
        "{e}"
    );
}

#[test]
fn nitro_refuses_garbage_truncation_and_collateral() {
    for len in 0..NITRO_DOC.len() {
        let e = refused(nitro(&NITRO_DOC[..len], NITRO_NOW));
        assert!(is_malformed(&e, Platform::Nitro), "{len} bytes: {e}");
    }
    for (seed, len) in [(8, 1), (9, 100), (10, 4781), (11, 20_000)] {
        assert!(is_malformed(&refused(nitro(&garbage(seed, len), NITRO_NOW)), Platform::Nitro), "garbage {len}");
    }
    // A Nitro document carries its chain; collateral is refused.
    let e = refused(verify_report(&report(Platform::Nitro, NITRO_DOC, b"x"), NITRO_NOW));
    assert!(
        matches!(&e, TeeError::Malformed { platform: Platform::Nitro, reason } if reason.contains("collateral")),
        "{e}"
    );
}

// ---------------------------------------------------------------- Across platforms

#[test]
fn evidence_for_one_platform_is_refused_as_another() {
    let snp_bytes = snp_report();
    for (platform, bytes, collateral) in [
        (Platform::Tdx, NITRO_DOC, TDX_COLLATERAL),
        (Platform::Tdx, &snp_bytes[..], TDX_COLLATERAL),
        (Platform::SevSnp, TDX_QUOTE, SNP_VCEK),
        (Platform::Nitro, TDX_QUOTE, &[][..]),
        (Platform::Nitro, &snp_bytes[..], &[][..]),
    ] {
        let e = refused(verify_report(&report(platform, bytes, collateral), TDX_NOW));
        assert!(is_malformed(&e, platform), "{platform}: {e}");
    }
}
