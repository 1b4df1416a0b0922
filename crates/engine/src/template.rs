//! Rendering a conversation into the model's prompt text with the model's own Jinja chat
//! template (`tokenizer.chat_template`).
//!
//! Pure: no I/O and no logging. The template comes from the model file, which the enclave has
//! already checked against its manifest, so it is trusted to be the publisher's template; it is
//! still run in minijinja's sandbox (no file system, no imports) with a recursion limit.

use minijinja::{Environment, Error, ErrorKind, Value};
use zeroize::Zeroizing;

use crate::ChatMessage;

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template plus the special-token strings templates refer to.
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    /// The template called `raise_exception`: it rejects this conversation (for example roles
    /// that do not alternate). The text is the template's own message.
    #[error("the chat template rejected the conversation: {0}")]
    Rejected(String),
    /// minijinja could not evaluate the template (a feature it lacks, a type error...).
    #[error("the chat template failed to render: {0}")]
    Engine(String),
}

/// Marker put in the detail of errors raised by the template itself, so they can be told
/// apart from minijinja's own failures.
const RAISED: &str = "sotto:raise_exception:";

impl ChatTemplate {
    /// Compiles `source` the way Hugging Face's `transformers` does (trim_blocks and
    /// lstrip_blocks on, loop controls, Python string/dict methods), which is the environment
    /// model publishers write and test their templates against.
    pub(crate) fn compile(
        source: &str,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        env.set_recursion_limit(100);
        // Debug info would copy the render context (the conversation) into error values.
        env.set_debug(false);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("{RAISED}{message}"),
                ))
            },
        );
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
        })
    }

    /// The prompt for `messages`, ending with the opening of the assistant's turn.
    pub(crate) fn render(
        &self,
        messages: &[ChatMessage],
    ) -> Result<Zeroizing<String>, RenderError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| RenderError::Engine(e.to_string()))?;
        let messages: Value = messages
            .iter()
            .map(|m| {
                Value::from_pairs([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        let ctx = Value::from_pairs([
            ("messages", messages),
            ("add_generation_prompt", Value::from(true)),
            ("bos_token", Value::from(self.bos_token.as_str())),
            ("eos_token", Value::from(self.eos_token.as_str())),
        ]);
        template.render(ctx).map(Zeroizing::new).map_err(classify)
    }
}

fn classify(error: Error) -> RenderError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(e) = source {
        if let Some(jinja) = e.downcast_ref::<Error>() {
            if let Some(message) = jinja.detail().and_then(|d| d.strip_prefix(RAISED)) {
                return RenderError::Rejected(message.to_owned());
            }
        }
        source = e.source();
    }
    RenderError::Engine(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn chat(template: &str) -> ChatTemplate {
        ChatTemplate::compile(template, "<s>".into(), "</s>".into()).unwrap()
    }

    #[test]
    fn chatml_with_generation_prompt() {
        let t = chat(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\
             {% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        );
        let out = t
            .render(&[
                ChatMessage::new(Role::System, "Be brief."),
                ChatMessage::new(Role::User, "Hi"),
            ])
            .unwrap();
        assert_eq!(
            out.as_str(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
             <|im_start|>assistant\n"
        );
    }

    #[test]
    fn python_methods_trim_blocks_and_bos() {
        // Gemma-style: bos_token, `| trim`, a Python method, block tags on their own lines.
        let t = chat(
            "{{ bos_token }}\n{% for m in messages %}\n    {% if m['role'].startswith('as') %}\
             {% set r = 'model' %}{% else %}{% set r = m['role'] %}{% endif %}\n\
             <start_of_turn>{{ r }}\n{{ m['content'] | trim }}<end_of_turn>\n{% endfor %}\n",
        );
        let out = t
            .render(&[
                ChatMessage::new(Role::User, "  q  "),
                ChatMessage::new(Role::Assistant, "a"),
            ])
            .unwrap();
        assert_eq!(
            out.as_str(),
            "<s>\n<start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\na<end_of_turn>\n"
        );
    }

    #[test]
    fn raise_exception_is_a_rejection() {
        let t = chat(
            "{% for m in messages %}{% if m.role == 'system' %}\
             {{ raise_exception('System role not supported') }}{% endif %}{% endfor %}",
        );
        match t.render(&[ChatMessage::new(Role::System, "x")]) {
            Err(RenderError::Rejected(message)) => assert_eq!(message, "System role not supported"),
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("template should have rejected the conversation"),
        }
        assert!(t.render(&[ChatMessage::new(Role::User, "x")]).is_ok());
    }

    #[test]
    fn unknown_filter_is_an_engine_error() {
        let t = chat("{{ messages | no_such_filter }}");
        assert!(matches!(
            t.render(&[ChatMessage::new(Role::User, "x")]),
            Err(RenderError::Engine(_))
        ));
    }
}
