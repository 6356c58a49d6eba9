//! Chat messages to a prompt. A GGUF's `tokenizer.chat_template` is Jinja: it is rendered by minijinja in a
//! sandbox (a fuel budget and a recursion limit bound what a hostile template can cost; Python string methods come
//! from minijinja-contrib's pycompat). A model without a template gets its architecture's turn format: Gemma's
//! `<start_of_turn>` turns for the gemma family, ChatML otherwise.

use serde::Serialize;

/// Most template instructions one render may execute.
const FUEL: u64 = 2_000_000;
/// Longest rendered prompt, in bytes.
pub const MAX_PROMPT_BYTES: usize = 4 << 20;

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// Why messages could not become a prompt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TemplateError {
    /// The model's template is not valid Jinja.
    #[error("the model's chat template does not parse: {0}")]
    Syntax(String),
    /// Rendering failed (the template raised an exception, ran out of fuel, or called something unknown).
    #[error("the model's chat template failed on these messages: {0}")]
    Render(String),
    /// The rendered prompt is too long.
    #[error("the rendered prompt has {0} bytes, above the limit of {MAX_PROMPT_BYTES}")]
    TooLong(usize),
}

/// The prompt for `messages`, ready for the assistant's turn.
pub fn render(
    template: Option<&str>,
    architecture: &str,
    messages: &[Message],
    bos: Option<&str>,
    eos: Option<&str>,
) -> Result<String, TemplateError> {
    let out = match template {
        Some(t) => jinja(t, messages, bos, eos)?,
        None if architecture.starts_with("gemma") => gemma(messages, bos),
        None => chatml(messages),
    };
    if out.len() > MAX_PROMPT_BYTES {
        return Err(TemplateError::TooLong(out.len()));
    }
    Ok(out)
}

fn jinja(template: &str, messages: &[Message], bos: Option<&str>, eos: Option<&str>) -> Result<String, TemplateError> {
    let mut env = minijinja::Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(64);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
        Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
    });
    env.add_template_owned("chat", template.to_owned()).map_err(|e| TemplateError::Syntax(e.to_string()))?;
    let t = env.get_template("chat").map_err(|e| TemplateError::Syntax(e.to_string()))?;
    let ctx = minijinja::context! {
        messages => messages,
        add_generation_prompt => true,
        bos_token => bos.unwrap_or(""),
        eos_token => eos.unwrap_or(""),
    };
    let mut out = Bounded(Vec::new());
    match t.render_captured_to(ctx, &mut out) {
        Ok(_) => String::from_utf8(out.0).map_err(|e| TemplateError::Render(e.to_string())),
        Err(_) if out.0.len() > MAX_PROMPT_BYTES => Err(TemplateError::TooLong(out.0.len())),
        Err(e) => Err(TemplateError::Render(e.to_string())),
    }
}

/// An output buffer that refuses to grow past [`MAX_PROMPT_BYTES`] (the render stops there).
struct Bounded(Vec<u8>);

impl std::io::Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_PROMPT_BYTES {
            self.0.extend_from_slice(&buf[..(MAX_PROMPT_BYTES + 1 - self.0.len()).min(buf.len())]);
            return Err(std::io::Error::other("prompt too long"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn chatml(messages: &[Message]) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.content));
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

/// Gemma's turns: `user` and `model`; a system message opens the first user turn.
fn gemma(messages: &[Message], bos: Option<&str>) -> String {
    let mut s = bos.unwrap_or("").to_owned();
    let mut system = String::new();
    for m in messages {
        match m.role.as_str() {
            "system" => {
                system.push_str(&m.content);
                system.push_str("\n\n");
            }
            role => {
                let role = if role == "assistant" { "model" } else { role };
                s.push_str(&format!(
                    "<start_of_turn>{role}\n{}{}<end_of_turn>\n",
                    std::mem::take(&mut system),
                    m.content
                ));
            }
        }
    }
    s.push_str("<start_of_turn>model\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<Message> {
        vec![
            Message { role: "system".into(), content: "Be brief.".into() },
            Message { role: "user".into(), content: "Hi".into() },
        ]
    }

    #[test]
    fn jinja_templates_render_with_python_methods() {
        let t = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'].strip() }}<|im_end|>\n{% endfor %}\
                 {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
        let out = render(Some(t), "llama", &msgs(), None, None).unwrap();
        assert_eq!(out, chatml(&msgs()));
    }

    #[test]
    fn fallbacks_by_architecture() {
        assert_eq!(
            render(None, "gemma3", &msgs(), Some("<bos>"), None).unwrap(),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n"
        );
        assert!(render(None, "qwen2", &msgs(), None, None).unwrap().ends_with("<|im_start|>assistant\n"));
    }

    #[test]
    fn hostile_templates_fail_cleanly() {
        assert!(matches!(render(Some("{% for"), "llama", &msgs(), None, None), Err(TemplateError::Syntax(_))));
        let raises = "{{ raise_exception('no system role') }}";
        assert!(
            matches!(render(Some(raises), "llama", &msgs(), None, None), Err(TemplateError::Render(e)) if e.contains("no system role"))
        );
        // An endless loop runs out of fuel.
        let spin = "{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}";
        assert!(matches!(render(Some(spin), "llama", &msgs(), None, None), Err(TemplateError::Render(_))));
        // Deep recursion is cut off.
        let deep = "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}";
        assert!(matches!(render(Some(deep), "llama", &msgs(), None, None), Err(TemplateError::Render(_))));
        // Output beyond the limit stops the render.
        let big = "{% for i in range(100) %}{{ 'x' * 100000 }}{% endfor %}";
        assert!(matches!(render(Some(big), "llama", &msgs(), None, None), Err(TemplateError::TooLong(_))));
    }
}
