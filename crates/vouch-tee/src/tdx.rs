//! Intel TDX: a DCAP quote (version 4 or 5, with a TD report) checked offline with `dcap-qvl` against Intel's SGX
//! root CA pinned here. The collateral is `dcap_qvl::QuoteCollateralV3` as JSON: the TCB info and QE identity with
//! their signatures and issuer chains, the root CA and PCK CRLs.
//!
//! `dcap-qvl` checks, in its order: the root CA against the root CA CRL (whose signature it checks with the pinned
//! root); the quote header (version, Intel QE vendor, ECDSA P-256 key type); the TCB info and QE identity (validity
//! window, issuer chain to the root with CRLs, signature); the PCK chain (from the collateral or the quote's
//! certification data) to the root with CRLs; the QE report's signature by the PCK key; that the QE report binds the
//! attestation key; the QE against the QE identity (MRSIGNER, ISVPRODID, MISCSELECT, ATTRIBUTES, ISVSVN); the TD
//! report's signature by the attestation key; the platform TCB level (FMSPC, SVNs, TDX module identity); it refuses
//! a `Revoked` TCB and debug, migratable or otherwise non-confidential TDs. It does not judge the TCB status:
//! [`crate::Policy`] does.
//!
//! Before handing the quote over, this module refuses a quote that is not TDX and collateral whose issuer chains end
//! at a self-issued root other than the pinned one, so that case is [`TeeError::UntrustedRoot`]. `dcap-qvl` reports
//! failures as text; `classify` maps each of its messages to the variant naming the failed check.

use dcap_qvl::QuoteCollateralV3;
use dcap_qvl::QuotePolicy;
use dcap_qvl::configs::RustCryptoConfig;
use dcap_qvl::quote::Quote;
use dcap_qvl::verify::QuoteVerifier;
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;
use x509_cert::der::{Decode, DecodePem, Encode};

use crate::{Claims, Platform, Roots, Tcb, TeeError};

const P: Platform = Platform::Tdx;

/// The TEE type a TDX quote header carries (SGX is 0).
const TEE_TYPE_TDX: u32 = 0x81;

/// The largest quote accepted (a TDX quote with its PCK chain is about 5 KiB).
const MAX_QUOTE_BYTES: usize = 64 * 1024;

/// The largest collateral accepted (Intel's is about 20 KiB of JSON).
const MAX_COLLATERAL_BYTES: usize = 1024 * 1024;

/// Intel's SGX/TDX provisioning root CA (`CN=Intel SGX Root CA`, valid 2018-05-21 to 2049-12-31), DER, as
/// `dcap-qvl` 0.7.1 ships it in `src/TrustedRootCA.der` (downloaded from
/// <https://certificates.trustedservices.intel.com/Intel_SGX_Provisioning_Certification_RootCA.cer>). SHA-256
/// 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3. `dcap-qvl` keeps its copy private.
const INTEL_SGX_ROOT_CA_DER: [u8; 659] = [
    0x30, 0x82, 0x02, 0x8f, 0x30, 0x82, 0x02, 0x34, 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x14, 0x22, 0x65, 0x0c, 0xd6,
    0x5a, 0x9d, 0x34, 0x89, 0xf3, 0x83, 0xb4, 0x95, 0x52, 0xbf, 0x50, 0x1b, 0x39, 0x27, 0x06, 0xac, 0x30, 0x0a, 0x06,
    0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x30, 0x68, 0x31, 0x1a, 0x30, 0x18, 0x06, 0x03, 0x55, 0x04,
    0x03, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20, 0x53, 0x47, 0x58, 0x20, 0x52, 0x6f, 0x6f, 0x74, 0x20, 0x43,
    0x41, 0x31, 0x1a, 0x30, 0x18, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20, 0x43,
    0x6f, 0x72, 0x70, 0x6f, 0x72, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x31, 0x14, 0x30, 0x12, 0x06, 0x03, 0x55, 0x04, 0x07,
    0x0c, 0x0b, 0x53, 0x61, 0x6e, 0x74, 0x61, 0x20, 0x43, 0x6c, 0x61, 0x72, 0x61, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03,
    0x55, 0x04, 0x08, 0x0c, 0x02, 0x43, 0x41, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x55,
    0x53, 0x30, 0x1e, 0x17, 0x0d, 0x31, 0x38, 0x30, 0x35, 0x32, 0x31, 0x31, 0x30, 0x34, 0x35, 0x31, 0x30, 0x5a, 0x17,
    0x0d, 0x34, 0x39, 0x31, 0x32, 0x33, 0x31, 0x32, 0x33, 0x35, 0x39, 0x35, 0x39, 0x5a, 0x30, 0x68, 0x31, 0x1a, 0x30,
    0x18, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x11, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x20, 0x53, 0x47, 0x58, 0x20, 0x52,
    0x6f, 0x6f, 0x74, 0x20, 0x43, 0x41, 0x31, 0x1a, 0x30, 0x18, 0x06, 0x03, 0x55, 0x04, 0x0a, 0x0c, 0x11, 0x49, 0x6e,
    0x74, 0x65, 0x6c, 0x20, 0x43, 0x6f, 0x72, 0x70, 0x6f, 0x72, 0x61, 0x74, 0x69, 0x6f, 0x6e, 0x31, 0x14, 0x30, 0x12,
    0x06, 0x03, 0x55, 0x04, 0x07, 0x0c, 0x0b, 0x53, 0x61, 0x6e, 0x74, 0x61, 0x20, 0x43, 0x6c, 0x61, 0x72, 0x61, 0x31,
    0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x08, 0x0c, 0x02, 0x43, 0x41, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55,
    0x04, 0x06, 0x13, 0x02, 0x55, 0x53, 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
    0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0x0b, 0xa9, 0xc4, 0xc0, 0xc0,
    0xc8, 0x61, 0x93, 0xa3, 0xfe, 0x23, 0xd6, 0xb0, 0x2c, 0xda, 0x10, 0xa8, 0xbb, 0xd4, 0xe8, 0x8e, 0x48, 0xb4, 0x45,
    0x85, 0x61, 0xa3, 0x6e, 0x70, 0x55, 0x25, 0xf5, 0x67, 0x91, 0x8e, 0x2e, 0xdc, 0x88, 0xe4, 0x0d, 0x86, 0x0b, 0xd0,
    0xcc, 0x4e, 0xe2, 0x6a, 0xac, 0xc9, 0x88, 0xe5, 0x05, 0xa9, 0x53, 0x55, 0x8c, 0x45, 0x3f, 0x6b, 0x09, 0x04, 0xae,
    0x73, 0x94, 0xa3, 0x81, 0xbb, 0x30, 0x81, 0xb8, 0x30, 0x1f, 0x06, 0x03, 0x55, 0x1d, 0x23, 0x04, 0x18, 0x30, 0x16,
    0x80, 0x14, 0x22, 0x65, 0x0c, 0xd6, 0x5a, 0x9d, 0x34, 0x89, 0xf3, 0x83, 0xb4, 0x95, 0x52, 0xbf, 0x50, 0x1b, 0x39,
    0x27, 0x06, 0xac, 0x30, 0x52, 0x06, 0x03, 0x55, 0x1d, 0x1f, 0x04, 0x4b, 0x30, 0x49, 0x30, 0x47, 0xa0, 0x45, 0xa0,
    0x43, 0x86, 0x41, 0x68, 0x74, 0x74, 0x70, 0x73, 0x3a, 0x2f, 0x2f, 0x63, 0x65, 0x72, 0x74, 0x69, 0x66, 0x69, 0x63,
    0x61, 0x74, 0x65, 0x73, 0x2e, 0x74, 0x72, 0x75, 0x73, 0x74, 0x65, 0x64, 0x73, 0x65, 0x72, 0x76, 0x69, 0x63, 0x65,
    0x73, 0x2e, 0x69, 0x6e, 0x74, 0x65, 0x6c, 0x2e, 0x63, 0x6f, 0x6d, 0x2f, 0x49, 0x6e, 0x74, 0x65, 0x6c, 0x53, 0x47,
    0x58, 0x52, 0x6f, 0x6f, 0x74, 0x43, 0x41, 0x2e, 0x64, 0x65, 0x72, 0x30, 0x1d, 0x06, 0x03, 0x55, 0x1d, 0x0e, 0x04,
    0x16, 0x04, 0x14, 0x22, 0x65, 0x0c, 0xd6, 0x5a, 0x9d, 0x34, 0x89, 0xf3, 0x83, 0xb4, 0x95, 0x52, 0xbf, 0x50, 0x1b,
    0x39, 0x27, 0x06, 0xac, 0x30, 0x0e, 0x06, 0x03, 0x55, 0x1d, 0x0f, 0x01, 0x01, 0xff, 0x04, 0x04, 0x03, 0x02, 0x01,
    0x06, 0x30, 0x12, 0x06, 0x03, 0x55, 0x1d, 0x13, 0x01, 0x01, 0xff, 0x04, 0x08, 0x30, 0x06, 0x01, 0x01, 0xff, 0x02,
    0x01, 0x01, 0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02, 0x03, 0x49, 0x00, 0x30, 0x46,
    0x02, 0x21, 0x00, 0xe5, 0xbf, 0xe5, 0x09, 0x11, 0xf9, 0x2f, 0x42, 0x89, 0x20, 0xdc, 0x36, 0x8a, 0x30, 0x2e, 0xe3,
    0xd1, 0x2e, 0xc5, 0x86, 0x7f, 0xf6, 0x22, 0xec, 0x64, 0x97, 0xf7, 0x80, 0x60, 0xc1, 0x3c, 0x20, 0x02, 0x21, 0x00,
    0xe0, 0x9d, 0x25, 0xac, 0x7a, 0x0c, 0xb3, 0xe5, 0xe8, 0xe6, 0x8f, 0xec, 0x5f, 0xa3, 0xbd, 0x41, 0x6c, 0x47, 0x44,
    0x0b, 0xd9, 0x50, 0x63, 0x9d, 0x45, 0x0e, 0xdc, 0xbe, 0xa4, 0x57, 0x6a, 0xa2,
];

/// Intel's root CA (DER), pinned in this binary.
pub(crate) fn pinned_root() -> Vec<u8> {
    INTEL_SGX_ROOT_CA_DER.to_vec()
}

/// Verifies a TDX quote and its collateral at `now_s` (Unix s) against `roots.intel_root_der`.
pub(crate) fn verify(report: &[u8], collateral: &[u8], roots: &Roots, now_s: u64) -> Result<Claims, TeeError> {
    if report.len() > MAX_QUOTE_BYTES {
        return Err(malformed(format!("quote is {} bytes, more than the {MAX_QUOTE_BYTES} allowed", report.len())));
    }
    if collateral.len() > MAX_COLLATERAL_BYTES {
        return Err(malformed(format!(
            "collateral is {} bytes, more than the {MAX_COLLATERAL_BYTES} allowed",
            collateral.len()
        )));
    }
    let collateral: QuoteCollateralV3 = serde_json::from_slice(collateral)
        .map_err(|e| malformed(format!("collateral is not DCAP QuoteCollateralV3 JSON: {e}")))?;
    let quote = Quote::parse(report).map_err(|e| malformed(format!("quote does not parse: {e:#}")))?;
    if quote.header.tee_type != TEE_TYPE_TDX || quote.report.as_td10().is_none() {
        return Err(malformed(format!(
            "not a TDX quote: TEE type {:#x} (TDX is {TEE_TYPE_TDX:#x}, SGX 0x0)",
            quote.header.tee_type
        )));
    }
    // dcap-qvl ignores bytes after the quote's signature data; they are unsigned. Allow the zero padding quote
    // generators leave (the sample quote has 70 bytes), refuse anything else.
    let end = quote_end(report, &quote)?;
    if let Some(at) = report.get(end..).and_then(|rest| rest.iter().position(|&b| b != 0)) {
        return Err(malformed(format!(
            "{} bytes follow the quote's end at {end}, not all zero padding (byte {} is not)",
            report.len() - end,
            end + at
        )));
    }
    for (what, crl) in [("root CA CRL", &collateral.root_ca_crl), ("PCK CRL", &collateral.pck_crl)] {
        CertificateList::from_der(crl)
            .map_err(|e| malformed(format!("the collateral's {what} does not parse: {e}")))?;
    }
    check_roots(&collateral, &quote, &roots.intel_root_der)?;

    let verifier = QuoteVerifier::<RustCryptoConfig>::new_with_config(roots.intel_root_der.clone());
    // `claims_only`: dcap-qvl's own policy accepts every status; Vouch's `Policy` judges the TCB status.
    let claims = verifier
        .verify_with_policy(report, collateral, now_s, &QuotePolicy::claims_only(now_s))
        .map_err(|e| classify(&format!("{e:#}"), now_s))?;

    if claims.tee_type != TEE_TYPE_TDX {
        return Err(malformed(format!("not a TDX quote: TEE type {:#x}", claims.tee_type)));
    }
    let td = claims.report.as_td10().ok_or_else(|| malformed("not a TDX quote: the body is not a TD report"))?;
    // dcap-qvl checks the TCB info, QE identity, certificates and the CRLs it uses at `now_s`; the window over all
    // of them (Intel QVL's collateral dates) is checked once more here so no item escapes.
    if now_s < claims.latest_issue_date {
        return Err(expired(
            now_s,
            format!(
                "the collateral's newest item is issued at {}, after the verification time",
                claims.latest_issue_date
            ),
        ));
    }
    if now_s > claims.earliest_expiration_date {
        return Err(expired(now_s, format!("the collateral expires at {}", claims.earliest_expiration_date)));
    }

    let mut measurement = Vec::with_capacity(4 * 48);
    for register in [&td.mr_td, &td.rt_mr0, &td.rt_mr1, &td.rt_mr2] {
        measurement.extend_from_slice(register);
    }
    Ok(Claims {
        platform: P,
        measurement,
        report_data: td.report_data,
        tcb: Tcb::Status { status: claims.tcb.status.to_string(), advisories: claims.tcb.advisory_ids },
        not_after_s: claims.earliest_expiration_date,
        produced_at_s: None,
        simulated_root: None,
    })
}

/// Where the quote ends: the signed header and body, then the 4-byte length and the signature data.
fn quote_end(report: &[u8], quote: &Quote) -> Result<usize, TeeError> {
    let signed = quote.signed_length();
    let length = report
        .get(signed..)
        .and_then(|rest| rest.first_chunk::<4>())
        .map(|len| u32::from_le_bytes(*len) as usize)
        .ok_or_else(|| malformed("the quote has no signature data length"))?;
    Ok(signed + 4 + length)
}

/// Refuses collateral or a PCK chain that ends at a self-issued certificate other than the pinned root: evidence
/// from another PKI (a test CA, another vendor). A chain that stops below the root is left to `dcap-qvl`'s path
/// building, which refuses it as an unknown issuer.
fn check_roots(collateral: &QuoteCollateralV3, quote: &Quote, root_der: &[u8]) -> Result<(), TeeError> {
    let root = Certificate::from_der(root_der)
        .map_err(|e| TeeError::UntrustedRoot { platform: P, reason: format!("the pinned root does not parse: {e}") })?;
    let pck_chain = match &collateral.pck_certificate_chain {
        Some(chain) => Some(chain.as_bytes()),
        // Certification data of another type is refused by dcap-qvl ("Unsupported DCAP PCK cert format").
        None => quote.raw_cert_chain().ok(),
    };
    let chains = [
        ("TCB info issuer chain", Some(collateral.tcb_info_issuer_chain.as_bytes())),
        ("QE identity issuer chain", Some(collateral.qe_identity_issuer_chain.as_bytes())),
        ("PCK certificate chain", pck_chain),
    ];
    for (what, pem) in chains {
        let Some(pem) = pem else { continue };
        let top = last_pem_certificate(pem).ok_or_else(|| malformed(format!("the {what} holds no PEM certificate")))?;
        let top = Certificate::from_pem(top)
            .map_err(|e| malformed(format!("the last certificate of the {what} does not parse: {e}")))?;
        let tbs = &top.tbs_certificate;
        let is_root = top.to_der().is_ok_and(|der| der == root_der);
        if !is_root && tbs.issuer == tbs.subject {
            return Err(TeeError::UntrustedRoot {
                platform: P,
                reason: format!(
                    "the {what} ends at the self-issued certificate \"{}\", not the pinned root \"{}\"",
                    tbs.subject, root.tbs_certificate.subject
                ),
            });
        }
    }
    Ok(())
}

/// The last PEM certificate block in `pem`, ignoring text around the blocks as `dcap-qvl` does (the quote's PCK
/// chain ends with a NUL).
fn last_pem_certificate(pem: &[u8]) -> Option<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let start = pem.windows(BEGIN.len()).rposition(|w| w == BEGIN)?;
    let block = pem.get(start..)?;
    let end = block.windows(END.len()).position(|w| w == END)?;
    block.get(..end + END.len())
}

/// What a `dcap-qvl` failure means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failed {
    Expired,
    UntrustedRoot,
    BadChain,
    BadSignature,
    Tcb,
    NotConfidential,
}

/// `dcap-qvl`'s messages (0.7.1), most specific first, with what they mean. A message none of them matches is
/// [`TeeError::Malformed`] (its remaining messages are parse failures).
const MESSAGES: &[(&str, Failed, &str)] = &[
    // Validity windows (webpki's CertExpired/CertNotValidYet/CrlExpired come inside "Failed to verify certificate
    // chain: ...", hence before the chain rules).
    ("CertExpired", Failed::Expired, "a certificate has expired"),
    ("CertNotValidYet", Failed::Expired, "a certificate is not valid yet"),
    ("CrlExpired", Failed::Expired, "a CRL is past its next update"),
    ("TCBInfo expired", Failed::Expired, "the TCB info is past its next update"),
    ("TCBInfo issue date is in the future", Failed::Expired, "the TCB info is issued after the verification time"),
    ("QE Identity expired", Failed::Expired, "the QE identity is past its next update"),
    (
        "QE Identity issue date is in the future",
        Failed::Expired,
        "the QE identity is issued after the verification time",
    ),
    // The root.
    ("Failed to load root ca", Failed::UntrustedRoot, "the pinned root is not a usable trust anchor"),
    ("UnknownIssuer", Failed::UntrustedRoot, "a certificate chain does not lead to the pinned root"),
    // Signatures over the quote.
    (
        "ISV enclave report signature is invalid",
        Failed::BadSignature,
        "the TD report's signature does not verify under the quote's attestation key",
    ),
    (
        "Signature is invalid for qe_report",
        Failed::BadSignature,
        "the QE report's signature does not verify under the PCK certificate's key",
    ),
    ("QE report hash mismatch", Failed::BadSignature, "the QE report does not bind the quote's attestation key"),
    ("Invalid QE auth data length", Failed::BadSignature, "the QE report does not bind the quote's attestation key"),
    // TCB levels dcap-qvl refuses before any policy.
    ("TCB status is invalid: Revoked", Failed::Tcb, "Revoked"),
    ("No matching TCB level found", Failed::Tcb, "no TCB level of the TCB info matches the platform's SVNs"),
    ("is below minimum", Failed::Tcb, "an SVN is below every level of the collateral"),
    ("No TDX module identity", Failed::Tcb, "the TDX module version is not in the TCB info"),
    // The QE's own attributes (a debug QE) come wrapped in this context, before the TD's attribute rules.
    (
        "QE report validation failed",
        Failed::BadChain,
        "the quoting enclave has attributes the QE identity refuses (a debug QE)",
    ),
    // TD attributes that make it no confidential VM.
    ("Debug mode is enabled", Failed::NotConfidential, "the TD is a debug TD"),
    ("TD profiling is enabled", Failed::NotConfidential, "the TD allows profiling"),
    ("TD migration is enabled", Failed::NotConfidential, "the TD is migratable"),
    ("SERVTD_EXT is enabled", Failed::NotConfidential, "the TD is bound to service TDs"),
    ("Invalid MR service TD", Failed::NotConfidential, "the TD is bound to a service TD"),
    ("SEPT_VE_DISABLE is not enabled", Failed::NotConfidential, "the TD does not disable SEPT #VE"),
    ("Reserved bits in TD attributes are set", Failed::NotConfidential, "the TD's attributes set reserved bits"),
    // The collateral's chains and signatures, and the collateral against the quote.
    (
        "Signature is invalid for tcb_info",
        Failed::BadChain,
        "the TCB info's signature does not verify under its signing certificate",
    ),
    (
        "Signature is invalid for qe_identity",
        Failed::BadChain,
        "the QE identity's signature does not verify under its signing certificate",
    ),
    ("CertRevoked", Failed::BadChain, "a certificate is revoked by a CRL"),
    ("Failed to parse root CA CRL", Failed::BadChain, "the root CA CRL does not verify under the pinned root"),
    (
        "must be issued directly by the root CA",
        Failed::BadChain,
        "a collateral signing certificate is not issued by the root",
    ),
    ("Failed to verify certificate chain", Failed::BadChain, "a certificate chain does not verify"),
    ("Fmspc mismatch", Failed::BadChain, "the TCB info is for another platform (FMSPC)"),
    ("non-TDX TCB info", Failed::BadChain, "the TCB info is not TDX's"),
    ("Unsupported QE Identity id/version", Failed::BadChain, "the QE identity is not the TDX QE's"),
    ("QE MRSIGNER mismatch", Failed::BadChain, "the quoting enclave is not signed by the signer the QE identity names"),
    ("QE ISVPRODID mismatch", Failed::BadChain, "the quoting enclave is not the product the QE identity names"),
    ("QE MISCSELECT mismatch", Failed::BadChain, "the quoting enclave's MISCSELECT is not the QE identity's"),
    ("QE ATTRIBUTES mismatch", Failed::BadChain, "the quoting enclave's attributes are not the QE identity's"),
    ("TDX module MRSIGNER mismatch", Failed::BadChain, "the TDX module is not signed by the signer the TCB info names"),
    ("SEAMATTRIBUTES", Failed::BadChain, "the TDX module's attributes are not the TCB info's"),
];

/// Maps a `dcap-qvl` error (`{:#}`, with its causes) to the variant naming the failed check.
fn classify(message: &str, now_s: u64) -> TeeError {
    let Some((_, failed, what)) = MESSAGES.iter().find(|(needle, _, _)| message.contains(needle)) else {
        return malformed(format!("dcap-qvl: {message}"));
    };
    let reason = format!("{what} (dcap-qvl: {message})");
    match failed {
        Failed::Expired => expired(now_s, reason),
        Failed::UntrustedRoot => TeeError::UntrustedRoot { platform: P, reason },
        Failed::BadChain => TeeError::BadChain { platform: P, reason },
        Failed::BadSignature => TeeError::BadSignature { platform: P, reason },
        Failed::NotConfidential => TeeError::NotConfidential { platform: P, reason },
        Failed::Tcb => TeeError::TcbNotAccepted {
            platform: P,
            status: format!("{what} (dcap-qvl: {message})"),
            accepted: "a TCB level Intel's TCB info lists, never Revoked (refused before any policy)".into(),
        },
    }
}

fn malformed(reason: impl std::fmt::Display) -> TeeError {
    TeeError::malformed(P, reason)
}

fn expired(now_s: u64, reason: String) -> TeeError {
    TeeError::Expired { platform: P, now_s, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_root_is_the_root_intel_collateral_chains_to() {
        let collateral: QuoteCollateralV3 =
            serde_json::from_str(include_str!("../tests/fixtures/tdx_quote_collateral.json")).unwrap();
        for chain in [&collateral.tcb_info_issuer_chain, &collateral.qe_identity_issuer_chain] {
            let top = Certificate::from_pem(last_pem_certificate(chain.as_bytes()).unwrap()).unwrap();
            assert_eq!(top.to_der().unwrap(), pinned_root());
        }
    }

    #[test]
    fn finds_the_last_pem_block_around_other_text() {
        let pem = b"junk-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----\n\0";
        assert_eq!(
            last_pem_certificate(pem),
            Some(&b"-----BEGIN CERTIFICATE-----\nBB==\n-----END CERTIFICATE-----"[..])
        );
        assert_eq!(last_pem_certificate(b"-----BEGIN CERTIFICATE-----\nBB=="), None);
        assert_eq!(last_pem_certificate(b""), None);
    }

    /// Each rule of `MESSAGES` on the message dcap-qvl 0.7.1 (with webpki's `Debug` errors) produces.
    #[test]
    fn classifies_each_dcap_qvl_failure() {
        let cases = [
            (
                "Failed to verify certificate chain: CertExpired { time: UnixTime(9), not_after: UnixTime(8) }",
                "Expired",
            ),
            (
                "Failed to verify certificate chain: CertNotValidYet { time: UnixTime(1), not_before: UnixTime(2) }",
                "Expired",
            ),
            (
                "Failed to verify certificate chain: CrlExpired { time: UnixTime(9), next_update: UnixTime(9) }",
                "Expired",
            ),
            ("TCBInfo expired", "Expired"),
            ("QE Identity issue date is in the future", "Expired"),
            ("Failed to verify certificate chain: UnknownIssuer", "UntrustedRoot"),
            ("Failed to load root ca: BadDer", "UntrustedRoot"),
            ("ISV enclave report signature is invalid", "BadSignature"),
            ("Signature is invalid for qe_report in quote", "BadSignature"),
            ("QE report hash mismatch", "BadSignature"),
            ("TCB status is invalid: Revoked", "TcbNotAccepted"),
            ("No matching TCB level found", "TcbNotAccepted"),
            ("QE ISVSVN 4 is below minimum required 5 from QE Identity", "TcbNotAccepted"),
            ("TDX module identity check: No TDX module identity with id TDX_09 found in TCB Info", "TcbNotAccepted"),
            ("QE report validation failed: Debug mode is enabled", "BadChain"),
            ("Debug mode is enabled", "NotConfidential"),
            ("TD migration is enabled", "NotConfidential"),
            ("SEPT_VE_DISABLE is not enabled", "NotConfidential"),
            ("Signature is invalid for tcb_info in quote_collateral", "BadChain"),
            ("Failed to verify certificate chain: CertRevoked", "BadChain"),
            ("Failed to verify certificate chain: InvalidSignatureForPublicKey", "BadChain"),
            ("Failed to parse root CA CRL: InvalidCrlSignatureForPublicKey", "BadChain"),
            ("Fmspc mismatch", "BadChain"),
            ("QE MRSIGNER mismatch: expected 00, got 01", "BadChain"),
            ("TDX module identity check: TDX module MRSIGNER mismatch: expected 00, got 01", "BadChain"),
            ("Failed to decode TcbInfo: missing field `fmspc`", "Malformed"),
            ("Failed to extract PCK certificates from quote: Failed to parse certs", "Malformed"),
        ];
        for (message, variant) in cases {
            let e = classify(message, 7);
            assert!(format!("{e:?}").starts_with(variant), "{message}: {e:?}");
            assert!(e.to_string().contains(message), "{message}: the reason keeps dcap-qvl's message: {e}");
        }
    }
}
