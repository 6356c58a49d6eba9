//! AMD SEV-SNP: the 1184-byte attestation report, parsed and its signature checked with the `sev` crate, and the
//! chip's VCEK certificate (DER) as collateral. The VCEK's issuer names the product (Milan, Genoa, Turin): the chain
//! is the product's ARK from [`Roots::amd_arks`] → its ASK (built into `sev`) → the VCEK.
//!
//! Checks, in order: the report's size, that it parses and re-encodes to the same signed bytes, its signature
//! algorithm and signing key (a VCEK); the VCEK parses and its issuer is a pinned product's ASK; the ARK is
//! self-signed and signs the ASK, the ASK signs the VCEK (RSA-PSS, SHA-384); the ARK, ASK and VCEK are valid at
//! the verification time; the VCEK signs the report (ECDSA P-384, SHA-384); the VCEK certifies the TCB level the
//! report claims and the report's chip; the guest policy does not allow debugging.

use sev::certs::snp::{Certificate as SevCertificate, Verifiable, builtin};
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser;
use x509_cert::Certificate;
use x509_cert::der::Decode;
use x509_cert::der::asn1::ObjectIdentifier;

use crate::{Claims, Platform, Roots, SnpTcb, Tcb, TeeError};

const P: Platform = Platform::SevSnp;

/// An attestation report's size (all versions).
const REPORT_BYTES: usize = 1184;

/// The signature covers bytes 0 to 0x29F.
const SIGNED_BYTES: usize = 0x2A0;

/// `SIGNATURE_ALGO` for ECDSA P-384 with SHA-384, the only one defined.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;

/// `KEY_INFO.SIGNING_KEY` values.
const SIGNING_KEY_VCEK: u32 = 0;
const SIGNING_KEY_VLEK: u32 = 1;
const SIGNING_KEY_NONE: u32 = 7;

/// The largest VCEK certificate accepted (AMD's are about 1.3 KiB).
const MAX_VCEK_BYTES: usize = 16 * 1024;

/// VCEK extensions (AMD's "VCEK Certificate and KDS Interface Specification", 57230): the SVNs the VCEK is derived
/// for and the chip's id.
const OID_BL_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
const OID_TEE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
const OID_SNP_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
const OID_UCODE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
const OID_FMC_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
const OID_HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");

/// The products whose ARK and ASK `sev` builds in (PEM).
fn products() -> [(&'static str, &'static [u8], &'static [u8]); 3] {
    [
        ("Milan", builtin::milan::ARK, builtin::milan::ASK),
        ("Genoa", builtin::genoa::ARK, builtin::genoa::ASK),
        ("Turin", builtin::turin::ARK, builtin::turin::ASK),
    ]
}

/// AMD's ARKs for Milan, Genoa and Turin (DER), as `sev` ships them.
pub(crate) fn pinned_arks() -> Vec<(String, Vec<u8>)> {
    products()
        .into_iter()
        .filter_map(|(name, ark, _)| Some((name.to_owned(), SevCertificate::from_pem(ark).ok()?.to_der().ok()?)))
        .collect()
}

/// Verifies an SEV-SNP report and its VCEK at `now_s` (Unix s) against `roots.amd_arks`.
pub(crate) fn verify(report: &[u8], collateral: &[u8], roots: &Roots, now_s: u64) -> Result<Claims, TeeError> {
    let parsed = parse_report(report)?;

    // The chain: the VCEK's issuer picks the product, whose ASK the pinned ARK must sign.
    if collateral.is_empty() {
        return Err(malformed("the collateral must be the VCEK certificate (DER); it is empty"));
    }
    if collateral.len() > MAX_VCEK_BYTES {
        return Err(malformed(format!(
            "the VCEK certificate is {} bytes, more than the {MAX_VCEK_BYTES} allowed",
            collateral.len()
        )));
    }
    let vcek = Certificate::from_der(collateral)
        .map_err(|e| malformed(format!("the collateral is not a DER X.509 certificate (the VCEK): {e}")))?;
    let (product, ask) = products()
        .into_iter()
        .find_map(|(name, _, ask_pem)| {
            let ask = SevCertificate::from_pem(ask_pem).ok()?;
            let subject = &x509_cert::Certificate::from(ask.clone()).tbs_certificate.subject;
            (*subject == vcek.tbs_certificate.issuer).then_some((name, ask))
        })
        .ok_or_else(|| TeeError::BadChain {
            platform: P,
            reason: format!(
                "the VCEK's issuer \"{}\" is not the ASK of Milan, Genoa or Turin",
                vcek.tbs_certificate.issuer
            ),
        })?;
    let untrusted = |reason: String| TeeError::UntrustedRoot { platform: P, reason };
    let (_, ark_der) = roots
        .amd_arks
        .iter()
        .find(|(name, _)| name == product)
        .ok_or_else(|| untrusted(format!("no ARK is pinned for {product}, the VCEK's product")))?;
    let ark = SevCertificate::from_der(ark_der)
        .map_err(|e| untrusted(format!("the pinned {product} ARK does not parse: {e}")))?;
    (&ark, &ark).verify().map_err(|e| untrusted(format!("the pinned {product} ARK is not self-signed: {e}")))?;
    (&ark, &ask)
        .verify()
        .map_err(|e| untrusted(format!("the {product} ASK is not signed by the pinned {product} ARK: {e}")))?;
    let vcek_sev = SevCertificate::from(vcek.clone());
    (&ask, &vcek_sev).verify().map_err(|e| TeeError::BadChain {
        platform: P,
        reason: format!("the VCEK is not signed by the {product} ASK: {e}"),
    })?;

    // Validity windows of the whole chain.
    let mut not_after_s = u64::MAX;
    for (what, cert) in [("ARK", x509_cert::Certificate::from(ark)), ("ASK", ask.into()), ("VCEK", vcek.clone())] {
        let validity = &cert.tbs_certificate.validity;
        let (from, until) =
            (validity.not_before.to_unix_duration().as_secs(), validity.not_after.to_unix_duration().as_secs());
        if now_s < from || now_s > until {
            return Err(TeeError::Expired {
                platform: P,
                now_s,
                reason: format!("the {product} {what} is valid from {from} to {until} (Unix s)"),
            });
        }
        not_after_s = not_after_s.min(until);
    }

    // The report's signature over its first 0x2A0 bytes. `sev` checks it over its re-encoding of the parsed report,
    // which `parse_report` has required to be the received bytes.
    (&vcek_sev, &parsed).verify().map_err(|e| TeeError::BadSignature {
        platform: P,
        reason: format!("the report's signature does not verify under the {product} VCEK's key: {e}"),
    })?;

    let tcb = SnpTcb {
        bootloader: parsed.reported_tcb.bootloader,
        tee: parsed.reported_tcb.tee,
        snp: parsed.reported_tcb.snp,
        microcode: parsed.reported_tcb.microcode,
    };
    check_vcek_binds(&vcek, &parsed, &tcb)?;
    check_confidential(&parsed)?;

    Ok(Claims {
        platform: P,
        measurement: parsed.measurement.to_vec(),
        report_data: parsed.report_data,
        tcb: Tcb::Snp(tcb),
        not_after_s,
        produced_at_s: None,
        simulated_root: None,
    })
}

/// Parses the report and checks what its signature is: its size, that `sev` re-encodes it to the received signed
/// bytes (so the bytes `sev` verifies are these), the algorithm and that a VCEK signed it.
fn parse_report(report: &[u8]) -> Result<AttestationReport, TeeError> {
    if report.len() != REPORT_BYTES {
        return Err(malformed(format!(
            "the report is {} bytes; an SEV-SNP attestation report is {REPORT_BYTES}",
            report.len()
        )));
    }
    let parsed = AttestationReport::from_bytes(report)
        .map_err(|e| malformed(format!("the attestation report does not parse: {e}")))?;
    let encoded =
        parsed.to_bytes().map_err(|e| malformed(format!("the attestation report does not re-encode: {e}")))?;
    if encoded.get(..SIGNED_BYTES) != report.get(..SIGNED_BYTES) {
        return Err(malformed(
            "the report's signed bytes do not re-encode byte-exactly (reserved fields are not zero)",
        ));
    }
    if parsed.sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
        return Err(malformed(format!(
            "signature algorithm {} (only {SIG_ALGO_ECDSA_P384_SHA384}, ECDSA P-384 with SHA-384, is defined)",
            parsed.sig_algo
        )));
    }
    match parsed.key_info.signing_key() {
        SIGNING_KEY_VCEK => Ok(parsed),
        SIGNING_KEY_VLEK => Err(TeeError::BadChain {
            platform: P,
            reason: "the report is signed by a VLEK; only VCEK chains are verified".into(),
        }),
        SIGNING_KEY_NONE => Err(TeeError::BadSignature {
            platform: P,
            reason: "the report is unsigned (KEY_INFO.SIGNING_KEY is none)".into(),
        }),
        other => Err(malformed(format!("KEY_INFO.SIGNING_KEY {other} is reserved"))),
    }
}

/// The VCEK is derived for one TCB level of one chip and certifies both in its extensions; `sev` does not compare
/// them with the report. Without this, firmware holding the VCEK of an old TCB could claim a newer one.
fn check_vcek_binds(vcek: &Certificate, report: &AttestationReport, tcb: &SnpTcb) -> Result<(), TeeError> {
    let bad = |reason: String| TeeError::BadChain { platform: P, reason };
    let extension = |oid: ObjectIdentifier| {
        vcek.tbs_certificate.extensions.iter().flatten().find(|e| e.extn_id == oid).map(|e| e.extn_value.as_bytes())
    };
    let svn = |name: &str, oid: ObjectIdentifier| -> Result<Option<u8>, TeeError> {
        extension(oid)
            .map(|value| u8::from_der(value).map_err(|e| malformed(format!("the VCEK's {name} extension: {e}"))))
            .transpose()
    };
    let mut certified = Vec::new();
    for (name, oid, reported) in [
        ("blSPL", OID_BL_SPL, tcb.bootloader),
        ("teeSPL", OID_TEE_SPL, tcb.tee),
        ("snpSPL", OID_SNP_SPL, tcb.snp),
        ("ucodeSPL", OID_UCODE_SPL, tcb.microcode),
    ] {
        let value = svn(name, oid)?.ok_or_else(|| bad(format!("the VCEK carries no {name} extension")))?;
        certified.push((name, value, reported));
    }
    if let (Some(value), Some(reported)) = (svn("fmcSPL", OID_FMC_SPL)?, report.reported_tcb.fmc) {
        certified.push(("fmcSPL", value, reported));
    }
    if let Some((name, value, reported)) = certified.iter().find(|(_, value, reported)| value != reported) {
        return Err(bad(format!("the VCEK certifies {name} {value}, the report claims {reported} in REPORTED_TCB")));
    }
    // A report whose chip id is masked (MASK_CHIP_ID) carries zeros: nothing to compare.
    if report.chip_id != [0; 64] {
        let hw_id = extension(OID_HW_ID).ok_or_else(|| bad("the VCEK carries no hwID extension".into()))?;
        // Milan and Genoa certify the 64-byte chip id, Turin its first 8 bytes.
        if !matches!(hw_id.len(), 8 | 64) || report.chip_id.get(..hw_id.len()) != Some(hw_id) {
            return Err(bad(format!(
                "the VCEK is for chip {}, the report is from chip {}",
                hex::encode(hw_id),
                hex::encode(report.chip_id)
            )));
        }
    }
    Ok(())
}

/// Refuses a guest whose policy lets the host debug it (read and write its memory).
fn check_confidential(report: &AttestationReport) -> Result<(), TeeError> {
    if report.policy.debug_allowed() {
        return Err(TeeError::NotConfidential {
            platform: P,
            reason: "the guest policy allows debugging (POLICY.DEBUG = 1)".into(),
        });
    }
    Ok(())
}

fn malformed(reason: impl std::fmt::Display) -> TeeError {
    TeeError::malformed(P, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT_HEX: &str = include_str!("../tests/fixtures/report_milan.hex");

    fn fixture() -> AttestationReport {
        let bytes = hex::decode(REPORT_HEX.trim()).unwrap();
        AttestationReport::from_bytes(&bytes).unwrap()
    }

    #[test]
    fn pins_three_arks() {
        let arks = pinned_arks();
        let names: Vec<&str> = arks.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["Milan", "Genoa", "Turin"]);
        for (_, der) in &arks {
            let ark = SevCertificate::from_der(der).unwrap();
            (&ark, &ark).verify().unwrap();
        }
    }

    #[test]
    fn refuses_a_debug_guest() {
        let mut report = fixture();
        assert!(check_confidential(&report).is_ok());
        report.policy.set_debug_allowed(true);
        match check_confidential(&report) {
            Err(TeeError::NotConfidential { platform: Platform::SevSnp, reason }) => assert!(reason.contains("DEBUG")),
            other => panic!("expected NotConfidential, got {other:?}"),
        }
    }

    #[test]
    fn refuses_a_vcek_for_another_tcb_or_chip() {
        let vcek = Certificate::from_der(include_bytes!("../tests/fixtures/vcek_milan.der")).unwrap();
        let report = fixture();
        let tcb = SnpTcb { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
        check_vcek_binds(&vcek, &report, &tcb).unwrap();

        let newer = SnpTcb { snp: 9, ..tcb };
        match check_vcek_binds(&vcek, &report, &newer) {
            Err(TeeError::BadChain { reason, .. }) => assert!(reason.contains("snpSPL 8"), "{reason}"),
            other => panic!("expected BadChain, got {other:?}"),
        }
        let mut other_chip = report;
        other_chip.chip_id[0] ^= 1;
        match check_vcek_binds(&vcek, &other_chip, &tcb) {
            Err(TeeError::BadChain { reason, .. }) => assert!(reason.contains("chip"), "{reason}"),
            other => panic!("expected BadChain, got {other:?}"),
        }
    }
}
