//! The operator's side of Sotto's transparency log: a directory of static files in the C2SP
//! tlog-tiles layout (`checkpoint`, `tile/<L>/<N>[.p/<W>]`, `tile/entries/<N>[.p/<W>]`) that
//! any static host can serve, appended to crash-safely, and cosigned by witnesses.
//!
//! Crash safety: every file is written to a temporary name, synced and renamed into place,
//! and the directory synced; tiles and entry bundles are written before the checkpoint that
//! covers them, and the checkpoint last. A process killed at any instant leaves the previous
//! checkpoint with all of its tiles (the new, uncommitted tiles beyond it are harmless and
//! rewritten by the next append), and an append that returned is on disk. One appender at a
//! time holds an exclusive lock on the directory.
//!
//! Trust: the files may have been changed by anyone with access to the disk, so opening a log
//! checks that its checkpoint is signed by the log key and that its entries and hash tiles
//! match the signed root before anything is appended.

pub mod dir;
pub mod witnesses;

pub use dir::{Log, LogError};
pub use witnesses::{collect_cosignatures, WitnessEndpoint, WitnessError};
