//! NVIDIA Reference Integrity Manifests (RIMs): ISO/IEC 19770-2 SWID tags listing, per
//! measurement index, the digests a genuine driver or VBIOS produces.
//!
//! Trust: the XML is parsed defensively (size and node limits, no DTD) but its XML-DSig
//! signature is NOT verified here (that needs exclusive XML canonicalisation). A RIM is
//! therefore only as trustworthy as the channel it came from: Sotto takes RIMs from the
//! release manifest in the transparency log and pins them by [`Rim::sha256`], which the
//! verdict reports.

use sha2::{Digest, Sha256};
use sotto_verify_core::at_most;

/// Largest RIM accepted; NVIDIA's are about 20 KiB.
pub const MAX_RIM_LEN: usize = 1024 * 1024;
/// Largest number of XML nodes accepted.
const MAX_NODES: u32 = 20_000;
/// The RIM's index is the SPDM block index minus one, and SPDM indices stop at 0xFE.
const MAX_RIM_INDEX: u32 = 0xFD;
/// NVIDIA lists at most a handful of alternatives per index.
const MAX_ALTERNATIVES: usize = 64;
/// Largest digest a measurement can hold (SHA-512).
const MAX_DIGEST_LEN: usize = 64;

const SWID_NS: &str = "http://standards.iso.org/iso/19770/-2/2015/schema.xsd";

/// Why a RIM was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RimError {
    #[error("RIM is {len} bytes, more than the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("RIM is not UTF-8")]
    NotUtf8,
    #[error("RIM is not well-formed XML: {0}")]
    Xml(String),
    #[error("root element is not a SWID SoftwareIdentity")]
    NotSwidTag,
    #[error("RIM has no Meta element with a colloquialVersion")]
    MissingVersion,
    #[error("RIM lists no measurements")]
    NoMeasurements,
    #[error("measurement resource {position}: {reason}")]
    BadMeasurement {
        position: usize,
        reason: &'static str,
    },
    #[error("RIM lists index {index} twice")]
    DuplicateIndex { index: u32 },
}

/// One reference measurement of a RIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RimMeasurement {
    /// NVIDIA's 0-based index; it describes SPDM block `index + 1`.
    pub index: u32,
    /// Inactive entries are not compared.
    pub active: bool,
    pub name: String,
    /// Digest length in bytes.
    pub size: usize,
    /// Any one of these is an acceptable value.
    pub alternatives: Vec<Vec<u8>>,
}

/// A parsed RIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rim {
    /// SHA-256 of the exact RIM bytes, for pinning.
    pub sha256: [u8; 32],
    /// `Meta/@colloquialVersion`: the VBIOS (e.g. `96.00.5E.00.01`) or driver (`550.90.07`) version.
    pub version: String,
    /// `SoftwareIdentity/@name`, e.g. `GH100`.
    pub product: String,
    pub tag_id: String,
    pub measurements: Vec<RimMeasurement>,
}

impl Rim {
    pub fn parse(bytes: &[u8]) -> Result<Self, RimError> {
        at_most(bytes.len(), MAX_RIM_LEN, |len, max| RimError::TooLarge {
            len,
            max,
        })?;
        let text = std::str::from_utf8(bytes).map_err(|_| RimError::NotUtf8)?;
        let doc = roxmltree::Document::parse_with_options(
            text,
            roxmltree::ParsingOptions {
                allow_dtd: false,
                nodes_limit: MAX_NODES,
            },
        )
        .map_err(|e| RimError::Xml(e.to_string()))?;

        let root = doc.root_element();
        if !is_swid(root, "SoftwareIdentity") {
            return Err(RimError::NotSwidTag);
        }
        let version = root
            .children()
            .find(|n| is_swid(*n, "Meta") && n.attribute("colloquialVersion").is_some())
            .and_then(|n| n.attribute("colloquialVersion"))
            .filter(|v| !v.trim().is_empty())
            .ok_or(RimError::MissingVersion)?
            .trim()
            .to_string();

        let mut measurements: Vec<RimMeasurement> = Vec::new();
        let resources = root
            .children()
            .filter(|n| is_swid(*n, "Payload"))
            .flat_map(|p| p.children())
            .filter(|n| is_swid(*n, "Resource") && n.attribute("type") == Some("Measurement"));
        for (position, node) in resources.enumerate() {
            let m = parse_measurement(node, position)?;
            if measurements.iter().any(|x| x.index == m.index) {
                return Err(RimError::DuplicateIndex { index: m.index });
            }
            measurements.push(m);
        }
        if measurements.is_empty() {
            return Err(RimError::NoMeasurements);
        }

        Ok(Rim {
            sha256: Sha256::digest(bytes).into(),
            version,
            product: root.attribute("name").unwrap_or_default().to_string(),
            tag_id: root.attribute("tagId").unwrap_or_default().to_string(),
            measurements,
        })
    }

    pub fn measurement(&self, index: u32) -> Option<&RimMeasurement> {
        self.measurements.iter().find(|m| m.index == index)
    }
}

fn is_swid(node: roxmltree::Node<'_, '_>, name: &str) -> bool {
    node.is_element()
        && node.tag_name().name() == name
        && node.tag_name().namespace() == Some(SWID_NS)
}

fn parse_measurement(
    node: roxmltree::Node<'_, '_>,
    position: usize,
) -> Result<RimMeasurement, RimError> {
    let bad = |reason| RimError::BadMeasurement { position, reason };
    let index: u32 = node
        .attribute("index")
        .and_then(|v| v.parse().ok())
        .filter(|i| *i <= MAX_RIM_INDEX)
        .ok_or_else(|| bad("index missing or out of range"))?;
    let active = match node.attribute("active") {
        Some("True") | Some("true") => true,
        Some("False") | Some("false") => false,
        _ => return Err(bad("active is not True or False")),
    };
    let size: usize = node
        .attribute("size")
        .and_then(|v| v.parse().ok())
        .filter(|s| (1..=MAX_DIGEST_LEN).contains(s))
        .ok_or_else(|| bad("size missing or out of range"))?;
    let count: usize = node
        .attribute("alternatives")
        .and_then(|v| v.parse().ok())
        .filter(|c| (1..=MAX_ALTERNATIVES).contains(c))
        .ok_or_else(|| bad("alternatives missing or out of range"))?;

    let hash_attrs: Vec<_> = node
        .attributes()
        .filter(|a| a.name().starts_with("Hash"))
        .collect();
    if hash_attrs.len() != count {
        return Err(bad("number of HashN attributes differs from alternatives"));
    }
    let mut alternatives = Vec::with_capacity(count);
    for i in 0..count {
        let wanted = format!("Hash{i}");
        let value = hash_attrs
            .iter()
            .find(|a| a.name() == wanted)
            .map(|a| a.value())
            .ok_or_else(|| bad("HashN attributes are not numbered 0..alternatives"))?;
        let digest = hex::decode(value).map_err(|_| bad("hash is not hex"))?;
        if digest.len() != size {
            return Err(bad("hash length differs from size"));
        }
        alternatives.push(digest);
    }

    Ok(RimMeasurement {
        index,
        active,
        name: node.attribute("name").unwrap_or_default().to_string(),
        size,
        alternatives,
    })
}
