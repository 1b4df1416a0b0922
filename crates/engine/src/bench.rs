//! Throughput measurement done the way llama.cpp's `llama-bench` does it, so the engine's
//! numbers can be compared with upstream's on the same machine and model.
//!
//! - prompt processing (pp): `n_prompt` pseudo-random tokens decoded in batches, as one prompt;
//! - token generation (tg): `n_gen` single-token decodes, each feeding a pseudo-random token
//!   (no sampling, exactly like `llama-bench`);
//!
//! each on its own context sized for the test, after one warm-up run, with the KV cache cleared
//! before every repetition. The tokens are synthetic, so nothing here touches user data.

use std::time::{Duration, Instant};

use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::token::LlamaToken;

use crate::{Engine, EngineError};

/// Per-repetition timings of one benchmark.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    pub n_prompt: u32,
    pub n_gen: u32,
    /// Time to process the whole prompt, one entry per repetition.
    pub prompt: Vec<Duration>,
    /// Time to generate all `n_gen` tokens, one entry per repetition.
    pub generation: Vec<Duration>,
}

impl BenchReport {
    /// Mean and sample standard deviation of prompt tokens per second.
    pub fn prompt_tokens_per_second(&self) -> (f64, f64) {
        rate_stats(self.n_prompt, &self.prompt)
    }

    /// Mean and sample standard deviation of generated tokens per second.
    pub fn gen_tokens_per_second(&self) -> (f64, f64) {
        rate_stats(self.n_gen, &self.generation)
    }
}

/// `llama-bench` averages per-repetition rates (not total tokens over total time); so do we.
fn rate_stats(tokens: u32, times: &[Duration]) -> (f64, f64) {
    let rates: Vec<f64> = times
        .iter()
        .filter(|t| !t.is_zero())
        .map(|t| f64::from(tokens) / t.as_secs_f64())
        .collect();
    if rates.is_empty() {
        return (0.0, 0.0);
    }
    let n = rates.len() as f64;
    let mean = rates.iter().sum::<f64>() / n;
    let var = if rates.len() > 1 {
        rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// A small deterministic generator for token ids (the values do not matter, only that they are
/// valid and vary).
struct TokenRng(u64);

impl TokenRng {
    fn next(&mut self, n_vocab: i32) -> LlamaToken {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let bound = u64::try_from(n_vocab.max(1)).unwrap_or(1);
        LlamaToken(i32::try_from((self.0 >> 33) % bound).unwrap_or(0))
    }
}

impl Engine {
    /// Runs the pp and tg benchmarks `reps` times each with this engine's threads and batch
    /// size. A zero `n_prompt` or `n_gen` skips that benchmark.
    pub fn bench(&self, n_prompt: u32, n_gen: u32, reps: u32) -> Result<BenchReport, EngineError> {
        let n_vocab = self.model.n_vocab();
        let bos = self
            .model
            .vocab()
            .should_add_bos()
            .then(|| self.model.vocab().bos());
        let mut rng = TokenRng(0x5eed);
        let mut report = BenchReport {
            n_prompt,
            n_gen,
            prompt: Vec::new(),
            generation: Vec::new(),
        };

        if n_prompt > 0 {
            let mut ctx = self.new_context(n_prompt, 1)?;
            let n_batch = ctx.n_batch().max(1) as usize;
            let mut run = |ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
                           n: usize|
             -> Result<Duration, EngineError> {
                ctx.clear_kv_cache();
                let started = Instant::now();
                let mut done = 0usize;
                while done < n {
                    let len = n_batch.min(n - done);
                    let tokens: Vec<LlamaToken> = (0..len)
                        .map(|i| match (done + i, bos) {
                            (0, Some(bos)) => bos,
                            _ => rng.next(n_vocab),
                        })
                        .collect();
                    let mut batch = LlamaBatch::get_one(&tokens)?;
                    ctx.decode(&mut batch)?;
                    done += len;
                }
                ctx.synchronize();
                Ok(started.elapsed())
            };
            run(&mut ctx, n_batch.min(n_prompt as usize))?;
            for _ in 0..reps {
                report.prompt.push(run(&mut ctx, n_prompt as usize)?);
            }
        }

        if n_gen > 0 {
            let mut ctx = self.new_context(n_gen, 1)?;
            let mut run = |ctx: &mut llama_cpp_2::context::LlamaContext<'_>,
                           n: u32|
             -> Result<Duration, EngineError> {
                ctx.clear_kv_cache();
                let started = Instant::now();
                let mut token = bos.unwrap_or_else(|| rng.next(n_vocab));
                for _ in 0..n {
                    let tokens = [token];
                    let mut batch = LlamaBatch::get_one(&tokens)?;
                    ctx.decode(&mut batch)?;
                    ctx.synchronize();
                    token = rng.next(n_vocab);
                }
                Ok(started.elapsed())
            };
            run(&mut ctx, 1)?;
            for _ in 0..reps {
                report.generation.push(run(&mut ctx, n_gen)?);
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_averaged_per_repetition() {
        let (mean, sd) = rate_stats(100, &[Duration::from_secs(1), Duration::from_millis(500)]);
        assert!((mean - 150.0).abs() < 1e-9);
        assert!((sd - 70.710_678_118).abs() < 1e-6);
        assert_eq!(rate_stats(10, &[]), (0.0, 0.0));
    }

    #[test]
    fn token_ids_stay_in_vocabulary() {
        let mut rng = TokenRng(1);
        assert!((0..1000).all(|_| (0..7).contains(&rng.next(7).0)));
    }
}
