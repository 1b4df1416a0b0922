//! A tiny, deterministic Qwen2-architecture GGUF model for tests.
//!
//! The file is real enough for llama.cpp to load and run (GGUF v3, F32 tensors, a GPT-2 byte-level
//! BPE tokenizer with ChatML control tokens and a Qwen-style chat template), yet small (about
//! 400 KB) and generated in memory, so engine tests need neither network nor a shipped model.
//! Its weights are pseudo-random: what it says is gibberish, but it says the same gibberish for
//! the same seed, which is what tests of streaming, stopping and determinism need.

use std::io;
use std::path::Path;

/// Hidden size (`qwen2.embedding_length`).
pub const TINY_HIDDEN: u32 = 64;
/// Number of transformer blocks.
pub const TINY_LAYERS: u32 = 2;
/// Attention heads.
pub const TINY_HEADS: u32 = 4;
/// Key/value heads (grouped-query attention).
pub const TINY_KV_HEADS: u32 = 2;
/// Feed-forward width.
pub const TINY_FFN: u32 = 128;
/// The training context length written to `qwen2.context_length`.
pub const TINY_CONTEXT_LENGTH: u32 = 512;

/// Merges of the tiny tokenizer, in rank order. Each result is also a vocabulary entry.
const MERGES: [(&str, &str); 8] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("i", "n"),
    ("Ġ", "a"),
    ("e", "r"),
    ("Ġt", "he"),
    ("o", "n"),
    ("r", "e"),
];

/// `<|endoftext|>`: beginning-of-sequence and padding token, like Qwen's.
pub const TOKEN_ENDOFTEXT: u32 = 256 + MERGES.len() as u32;
/// `<|im_start|>`: opens a ChatML turn.
pub const TOKEN_IM_START: u32 = TOKEN_ENDOFTEXT + 1;
/// `<|im_end|>`: closes a ChatML turn; the model's end-of-sequence token.
pub const TOKEN_IM_END: u32 = TOKEN_ENDOFTEXT + 2;
/// Vocabulary size: 256 byte tokens, the merges, three control tokens.
pub const TINY_VOCAB: u32 = TOKEN_IM_END + 1;

/// A ChatML template in the style of Qwen2.5's: a default system turn when none is given,
/// `raise_exception` for unknown roles, and Python-style string methods, so rendering it
/// exercises the same template features real models need.
pub const TINY_CHAT_TEMPLATE: &str = "{%- if messages[0]['role'] == 'system' %}\
{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\
{%- else %}{{- '<|im_start|>system\\nYou are a tiny test model.<|im_end|>\\n' }}{%- endif %}\
{%- for message in messages %}\
{%- if message.role not in ['system', 'user', 'assistant'] %}\
{{- raise_exception('Unknown role: ' + message.role) }}\
{%- elif message.role != 'system' or not loop.first %}\
{{- '<|im_start|>' + message.role.lower() + '\\n' + message.content + '<|im_end|>\\n' }}\
{%- endif %}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// What to put in the tiny model.
#[derive(Clone, Debug)]
pub struct TinyQwen2 {
    /// Seed of the pseudo-random weights.
    pub seed: u64,
    /// `tokenizer.chat_template`, or none to test models that lack one.
    pub chat_template: Option<String>,
    /// Transformer blocks: more make every token slower to generate, in proportion.
    pub layers: u32,
}

impl TinyQwen2 {
    /// The default tiny model for `seed`, with [`TINY_CHAT_TEMPLATE`].
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            chat_template: Some(TINY_CHAT_TEMPLATE.to_owned()),
            layers: TINY_LAYERS,
        }
    }

    /// The complete GGUF file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let tensors = self.tensors();
        let mut kv = KvWriter::default();
        kv.string("general.architecture", "qwen2");
        kv.string("general.name", "sotto-tiny-qwen2");
        kv.u32("general.alignment", ALIGNMENT as u32);
        kv.u32("qwen2.context_length", TINY_CONTEXT_LENGTH);
        kv.u32("qwen2.embedding_length", TINY_HIDDEN);
        kv.u32("qwen2.block_count", self.layers);
        kv.u32("qwen2.feed_forward_length", TINY_FFN);
        kv.u32("qwen2.attention.head_count", TINY_HEADS);
        kv.u32("qwen2.attention.head_count_kv", TINY_KV_HEADS);
        kv.f32("qwen2.attention.layer_norm_rms_epsilon", 1e-6);
        kv.f32("qwen2.rope.freq_base", 10_000.0);
        kv.string("tokenizer.ggml.model", "gpt2");
        kv.string("tokenizer.ggml.pre", "qwen2");
        let (tokens, types) = vocabulary();
        kv.string_array("tokenizer.ggml.tokens", &tokens);
        kv.i32_array("tokenizer.ggml.token_type", &types);
        let merges: Vec<String> = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
        kv.string_array("tokenizer.ggml.merges", &merges);
        kv.u32("tokenizer.ggml.bos_token_id", TOKEN_ENDOFTEXT);
        kv.u32("tokenizer.ggml.eos_token_id", TOKEN_IM_END);
        kv.u32("tokenizer.ggml.padding_token_id", TOKEN_ENDOFTEXT);
        kv.bool("tokenizer.ggml.add_bos_token", false);
        if let Some(template) = &self.chat_template {
            kv.string("tokenizer.chat_template", template);
        }

        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&kv.count.to_le_bytes());
        out.extend_from_slice(&kv.buf);

        let mut offset = 0usize;
        for tensor in &tensors {
            put_string(&mut out, &tensor.name);
            out.extend_from_slice(&(tensor.dims.len() as u32).to_le_bytes());
            for dim in &tensor.dims {
                out.extend_from_slice(&dim.to_le_bytes());
            }
            out.extend_from_slice(&GGML_TYPE_F32.to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = align(offset + tensor.data.len() * 4);
        }
        out.resize(align(out.len()), 0);
        for tensor in &tensors {
            for value in &tensor.data {
                out.extend_from_slice(&value.to_le_bytes());
            }
            out.resize(align(out.len()), 0);
        }
        out
    }

    fn tensors(&self) -> Vec<Tensor> {
        let mut rng = SplitMix64(self.seed);
        let hidden = u64::from(TINY_HIDDEN);
        let ffn = u64::from(TINY_FFN);
        let kv_width = hidden / u64::from(TINY_HEADS) * u64::from(TINY_KV_HEADS);
        let mut tensors = vec![
            Tensor::random(
                "token_embd.weight",
                &[hidden, u64::from(TINY_VOCAB)],
                0.5,
                &mut rng,
            ),
            Tensor::ones("output_norm.weight", hidden),
            // Untied from the embedding: with tied weights and near-identity random blocks the
            // model would just repeat its last input token.
            Tensor::random(
                "output.weight",
                &[hidden, u64::from(TINY_VOCAB)],
                0.5,
                &mut rng,
            ),
        ];
        // Uniform(-a, a) with a = 1/sqrt(fan_in) keeps activations near unit scale, so every
        // logit stays finite however the seed falls.
        let linear = |fan_in: u64| 1.0 / (fan_in as f32).sqrt();
        let (h, kv, lin_h, lin_f) = (hidden, kv_width, linear(hidden), linear(ffn));
        // Each block's tensors in file order (which fixes what the seed gives each): the name,
        // the shape, and the scale of its random weights, or `None` for a norm of all ones.
        let block: [(&str, &[u64], Option<f32>); 12] = [
            ("attn_norm.weight", &[h], None),
            ("attn_q.weight", &[h, h], Some(lin_h)),
            ("attn_q.bias", &[h], Some(0.01)),
            ("attn_k.weight", &[h, kv], Some(lin_h)),
            ("attn_k.bias", &[kv], Some(0.01)),
            ("attn_v.weight", &[h, kv], Some(lin_h)),
            ("attn_v.bias", &[kv], Some(0.01)),
            ("attn_output.weight", &[h, h], Some(lin_h)),
            ("ffn_norm.weight", &[h], None),
            ("ffn_gate.weight", &[h, ffn], Some(lin_h)),
            ("ffn_up.weight", &[h, ffn], Some(lin_h)),
            ("ffn_down.weight", &[ffn, h], Some(lin_f)),
        ];
        for layer in 0..self.layers {
            for &(part, dims, scale) in &block {
                let name = format!("blk.{layer}.{part}");
                tensors.push(match scale {
                    Some(scale) => Tensor::random(&name, dims, scale, &mut rng),
                    None => Tensor::ones(&name, dims[0]),
                });
            }
        }
        tensors
    }
}

/// Writes the default tiny model (see [`TinyQwen2::new`]) to `path`.
pub fn write_tiny_qwen2_gguf(path: &Path, seed: u64) -> io::Result<()> {
    std::fs::write(path, TinyQwen2::new(seed).to_bytes())
}

/// The text of every token (byte tokens in GPT-2's byte-to-unicode spelling, then the merge
/// results, then the control tokens) and its llama.cpp token type (1 normal, 3 control).
fn vocabulary() -> (Vec<String>, Vec<i32>) {
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| byte_to_unicode(b).to_string())
        .collect();
    tokens.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
    let mut types = vec![1i32; tokens.len()];
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.to_owned());
        types.push(3);
    }
    (tokens, types)
}

/// GPT-2's reversible byte-to-unicode map: printable Latin-1 bytes stand for themselves, the
/// other 68 bytes are shifted to U+0100 and up, in byte order.
fn byte_to_unicode(byte: u8) -> char {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable(byte) {
        char::from(byte)
    } else {
        let rank = (0..byte).filter(|b| !printable(*b)).count() as u32;
        char::from_u32(256 + rank).unwrap_or(char::REPLACEMENT_CHARACTER)
    }
}

const ALIGNMENT: usize = 32;
const GGML_TYPE_F32: u32 = 0;

fn align(n: usize) -> usize {
    n.div_ceil(ALIGNMENT) * ALIGNMENT
}

struct Tensor {
    name: String,
    /// ggml order: the innermost (contiguous) dimension first.
    dims: Vec<u64>,
    data: Vec<f32>,
}

impl Tensor {
    fn random(name: &str, dims: &[u64], scale: f32, rng: &mut SplitMix64) -> Self {
        let count: u64 = dims.iter().product();
        let data = (0..count).map(|_| rng.next_symmetric() * scale).collect();
        Self {
            name: name.to_owned(),
            dims: dims.to_vec(),
            data,
        }
    }

    fn ones(name: &str, len: u64) -> Self {
        Self {
            name: name.to_owned(),
            dims: vec![len],
            data: vec![1.0; len as usize],
        }
    }
}

/// SplitMix64: tiny, well-mixed and fully specified, so a seed means the same weights on every
/// platform and version.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1), from the top 24 bits (exactly representable in an f32).
    fn next_symmetric(&mut self) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        unit * 2.0 - 1.0
    }
}

// GGUF metadata value types.
const GGUF_U32: u32 = 4;
const GGUF_I32: u32 = 5;
const GGUF_F32: u32 = 6;
const GGUF_BOOL: u32 = 7;
const GGUF_STRING: u32 = 8;
const GGUF_ARRAY: u32 = 9;

#[derive(Default)]
struct KvWriter {
    buf: Vec<u8>,
    count: u64,
}

impl KvWriter {
    fn key(&mut self, key: &str, value_type: u32) {
        put_string(&mut self.buf, key);
        self.buf.extend_from_slice(&value_type.to_le_bytes());
        self.count += 1;
    }

    fn u32(&mut self, key: &str, value: u32) {
        self.key(key, GGUF_U32);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    fn f32(&mut self, key: &str, value: f32) {
        self.key(key, GGUF_F32);
        self.buf.extend_from_slice(&value.to_le_bytes());
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key, GGUF_BOOL);
        self.buf.push(u8::from(value));
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key, GGUF_STRING);
        put_string(&mut self.buf, value);
    }

    fn string_array(&mut self, key: &str, values: &[String]) {
        self.array_header(key, GGUF_STRING, values.len());
        for value in values {
            put_string(&mut self.buf, value);
        }
    }

    fn i32_array(&mut self, key: &str, values: &[i32]) {
        self.array_header(key, GGUF_I32, values.len());
        for value in values {
            self.buf.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// An array's key, then its element type and length; the elements follow.
    fn array_header(&mut self, key: &str, element: u32, len: usize) {
        self.key(key, GGUF_ARRAY);
        self.buf.extend_from_slice(&element.to_le_bytes());
        self.buf.extend_from_slice(&(len as u64).to_le_bytes());
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        let mut word = [0u8; 4];
        word.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(word)
    }

    fn u64_at(bytes: &[u8], at: usize) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    }

    #[test]
    fn header_counts_and_alignment() {
        let bytes = TinyQwen2::new(7).to_bytes();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(u32_at(&bytes, 4), 3);
        // token_embd, output_norm, output + 12 tensors per block.
        assert_eq!(u64_at(&bytes, 8), 3 + 12 * u64::from(TINY_LAYERS));
        assert_eq!(u64_at(&bytes, 16), 21);
        assert_eq!(bytes.len() % ALIGNMENT, 0);
        assert!(
            bytes.len() > 300_000 && bytes.len() < 500_000,
            "{}",
            bytes.len()
        );
        let without = TinyQwen2 {
            chat_template: None,
            ..TinyQwen2::new(7)
        }
        .to_bytes();
        assert_eq!(u64_at(&without, 16), 20);
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_weights() {
        let a = TinyQwen2::new(1).to_bytes();
        assert_eq!(a, TinyQwen2::new(1).to_bytes());
        let b = TinyQwen2::new(2).to_bytes();
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
    }

    #[test]
    fn gpt2_byte_map_is_a_bijection_with_known_points() {
        let chars: std::collections::BTreeSet<char> = (0..=255u8).map(byte_to_unicode).collect();
        assert_eq!(chars.len(), 256);
        assert_eq!(byte_to_unicode(b' '), 'Ġ');
        assert_eq!(byte_to_unicode(b'\n'), 'Ċ');
        assert_eq!(byte_to_unicode(b'A'), 'A');
        assert_eq!(byte_to_unicode(0xAD), 'Ń');
    }

    #[test]
    fn vocabulary_marks_control_tokens() {
        let (tokens, types) = vocabulary();
        assert_eq!(tokens.len(), TINY_VOCAB as usize);
        assert_eq!(tokens[TOKEN_IM_END as usize], "<|im_end|>");
        assert_eq!(tokens[TOKEN_IM_START as usize], "<|im_start|>");
        assert_eq!(types[TOKEN_ENDOFTEXT as usize], 3);
        assert_eq!(types[b'a' as usize], 1);
        assert!(tokens.contains(&"Ġthe".to_owned()));
    }
}
