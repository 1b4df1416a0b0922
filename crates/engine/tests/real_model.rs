//! Checks against the real default model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 491 MB), which
//! tests cannot download. Run with the model's path in `SOTTO_REAL_MODEL`:
//! `SOTTO_REAL_MODEL=/path/model.gguf cargo test --release -p sotto-engine -- --ignored`

use std::path::PathBuf;

use sotto_engine::{ChatMessage, Engine, EngineConfig, GenParams, Role, StopReason};

fn real_model() -> PathBuf {
    std::env::var_os("SOTTO_REAL_MODEL")
        .map(PathBuf::from)
        .expect("set SOTTO_REAL_MODEL to the path of the default model GGUF")
}

#[test]
#[ignore = "needs the 491 MB default model (SOTTO_REAL_MODEL)"]
fn real_model_knows_the_capital_of_france() {
    let engine = Engine::load(&real_model(), &EngineConfig::default()).unwrap();
    let info = engine.model_info();
    assert_eq!(info.architecture, "qwen2");
    assert_eq!(info.renderer, sotto_engine::TemplateRenderer::Jinja);
    let question = [ChatMessage::new(
        Role::User,
        "What is the capital of France? Answer in one word.",
    )];
    let mut answer = String::new();
    let stats = engine
        .generate(&question, &GenParams::greedy(16), &mut |piece| {
            answer.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(answer.trim().trim_end_matches('.'), "Paris");
    assert_eq!(stats.stop, StopReason::EndOfGeneration);
}
