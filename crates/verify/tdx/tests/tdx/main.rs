//! The TDX verifier's integration tests, one binary: real Intel quotes and their collateral
//! (`real_vectors`), forged and altered evidence (`forged`, built with the kit in `forge`), and
//! the chain cache (`cache`). What more than one suite needs is here: the real v4 quote and its
//! collateral, the time they verify at, and the alterations of them that must be refused.

mod cache;
mod forge;
mod forged;
mod real_vectors;

use sotto_verify_core::crl::CrlError;
use sotto_verify_tdx::{Collateral, TdxError, UnixTime};

/// Inside every window of tdx_quote's real collateral: 2025-06-20T00:00:00Z.
const AT: UnixTime = UnixTime(1_750_377_600);
/// 2025-07-19T10:05:00Z: after the real PCK CRL's nextUpdate (10:00:35Z).
const AFTER_PCK_CRL: UnixTime = UnixTime(1_752_919_500);
/// 2025-06-19T10:20:00Z: the real CRLs already current, the QE identity issued at 10:32:27Z.
const BEFORE_QE_IDENTITY: UnixTime = UnixTime(1_750_328_400);
/// What the real collateral is refused with at [`BEFORE_QE_IDENTITY`].
const QE_IDENTITY_NOT_YET_VALID: TdxError = TdxError::QeIdentityNotYetValid {
    issue_date: 1_750_329_147,
    at: 1_750_328_400,
};
/// Start of the signature data in the v4 quote: after the header, the body and its length.
const SIG: usize = 48 + 584 + 4;

/// A file of `shared/vectors/tdx`.
fn read(name: &str) -> Vec<u8> {
    sotto_testkit::read_vector(&format!("tdx/{name}"))
}

fn real_quote() -> Vec<u8> {
    read("tdx_quote")
}

/// The real quote with one bit of byte `at` flipped.
fn flipped(at: usize) -> Vec<u8> {
    let mut q = real_quote();
    q[at] ^= 1;
    q
}

fn real_collateral_json() -> serde_json::Value {
    serde_json::from_slice(&read("tdx_quote_collateral.json")).expect("collateral json")
}

fn real_collateral() -> Collateral {
    Collateral::from_json(&read("tdx_quote_collateral.json")).expect("collateral")
}

fn collateral_from(json: &serde_json::Value) -> Collateral {
    Collateral::from_json(json.to_string().as_bytes()).expect("collateral parses")
}

/// The real collateral with `replace` applied once to its Intel-signed document `doc`.
fn real_collateral_edited(doc: &str, replace: (&str, &str)) -> Collateral {
    let mut json = real_collateral_json();
    json[doc] = json[doc]
        .as_str()
        .expect(doc)
        .replacen(replace.0, replace.1, 1)
        .into();
    collateral_from(&json)
}

/// The real TCB info claiming UpToDate where Intel signed OutOfDate.
fn tcb_info_upgraded() -> Collateral {
    real_collateral_edited(
        "tcb_info",
        ("\"tcbStatus\":\"OutOfDate\"", "\"tcbStatus\":\"UpToDate\""),
    )
}

/// The real QE identity accepting ISVSVN 0 where Intel signed 4.
fn qe_identity_downgraded() -> Collateral {
    real_collateral_edited("qe_identity", ("\"isvsvn\":4", "\"isvsvn\":0"))
}

/// Refused because the real PCK CRL was past its nextUpdate.
fn assert_pck_crl_expired<T: std::fmt::Debug>(got: &Result<T, TdxError>) {
    assert!(
        matches!(
            got,
            Err(TdxError::CrlExpired {
                crl: "PCK CRL",
                error: CrlError::Expired { .. }
            })
        ),
        "{got:?}"
    );
}
