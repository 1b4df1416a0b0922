//! Which engine answers: the embedded one (llama.cpp in this process, conversations batched on
//! one context) or a `llama-server` this enclave started (see [`crate::upstream`]). Either way
//! an answer arrives the same way: its pieces through a small bounded channel, its end through
//! a oneshot.

use std::sync::Arc;

use sotto_engine::{Batcher, ChatMessage, EngineError, GenParams, GenStats, Offer, Sink};
use tokio::sync::{mpsc, oneshot};
use zeroize::Zeroizing;

use crate::upstream::Upstream;

pub enum Backend {
    Embedded(Arc<Batcher>),
    LlamaServer(Arc<Upstream>),
}

/// Where the batching thread puts one answer. A full channel means this reader is slow: only
/// this conversation waits, the others decode on.
struct ToSession {
    pieces: mpsc::Sender<Zeroizing<String>>,
    done: Option<oneshot::Sender<Result<GenStats, EngineError>>>,
}

impl Sink for ToSession {
    fn offer(&mut self, piece: Zeroizing<String>) -> Offer {
        match self.pieces.try_send(piece) {
            Ok(()) => Offer::Taken,
            Err(mpsc::error::TrySendError::Full(piece)) => Offer::Full(piece),
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    fn closed(&self) -> bool {
        self.pieces.is_closed()
    }

    fn finish(&mut self, result: Result<GenStats, EngineError>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(result);
        }
    }
}

impl Backend {
    /// Starts answering `messages`: pieces go to `pieces` (the engine stops once it is
    /// closed), and the end to `done` after the last piece. An error here means nothing was
    /// started.
    pub async fn start(
        &self,
        messages: Vec<ChatMessage>,
        params: GenParams,
        pieces: mpsc::Sender<Zeroizing<String>>,
        done: oneshot::Sender<Result<GenStats, EngineError>>,
    ) -> Result<(), EngineError> {
        match self {
            Backend::Embedded(batcher) => {
                let batcher = batcher.clone();
                let sink = Box::new(ToSession {
                    pieces,
                    done: Some(done),
                });
                // Rendering and tokenizing happen here, off the runtime; the batching thread
                // only decodes.
                tokio::task::spawn_blocking(move || batcher.submit(&messages, &params, sink))
                    .await
                    .unwrap_or(Err(EngineError::Internal))
            }
            Backend::LlamaServer(upstream) => {
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let result = upstream.answer(&messages, &params, &pieces).await;
                    drop(pieces);
                    let _ = done.send(result);
                });
                Ok(())
            }
        }
    }
}
