//! AMD's X.509 extensions on VCEK and VLEK certificates (VCEK specification, "VCEK
//! certificate extensions"): the TCB the key was derived for, the chip it belongs to and
//! the product name. The simulated signer writes the same extensions.
//!
//! Trust: values are read from a certificate whose chain has already been verified; this
//! module only decodes them.

use const_oid::ObjectIdentifier;
use der::asn1::{Ia5StringRef, OctetStringRef};
use der::Decode;
use sotto_verify_core::x509::Cert;

#[cfg(feature = "sim")]
pub const STRUCT_VERSION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.1");
pub const PRODUCT_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.2");
pub const BL_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.1");
pub const TEE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.2");
pub const SNP_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.3");
/// spl_4 .. spl_7: reserved patch levels, zero on every product so far.
#[cfg(feature = "sim")]
pub const RESERVED_SPLS: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.4"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.5"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.6"),
    ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.7"),
];
pub const UCODE_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.8");
pub const FMC_SPL: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.3.9");
pub const HW_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.4");
/// The cloud provider a VLEK was issued to; only VLEKs carry it.
pub const CSP_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.3704.1.5");

/// The `productName` IA5String.
pub fn product_name(cert: &Cert) -> Option<String> {
    let value = cert.extension(PRODUCT_NAME)?;
    Ia5StringRef::from_der(value)
        .ok()
        .map(|s| s.as_str().to_owned())
}

/// A security patch level: a DER INTEGER in 0..=255.
pub fn spl(cert: &Cert, oid: ObjectIdentifier) -> Option<u8> {
    u8::from_der(cert.extension(oid)?).ok()
}

/// The chip identifier. AMD puts the raw bytes in the extension value (64 bytes; 8 on
/// Turin) although RFC 5280 wants DER there, and some issuers wrap them in an OCTET STRING;
/// both forms are read.
pub fn hw_id(cert: &Cert) -> Option<&[u8]> {
    let value = cert.extension(HW_ID)?;
    if value.len() == 64 || value.len() == 8 {
        return Some(value);
    }
    OctetStringRef::from_der(value).ok().map(|s| s.as_bytes())
}
