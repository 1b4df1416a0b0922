//! Chat messages rendered as Markdown, safely: the text is parsed here (CommonMark plus
//! tables, strikethrough and task lists) into a small tree of allowlisted elements that the
//! page builds with `createElement`/`textContent`, never as HTML.
//!
//! Trust: none in the text. A model's answer (or a pasted prompt) may carry HTML, script links
//! or images meant to call a third party, so: raw HTML stays literal text, only `http://`,
//! `https://` and `mailto:` links survive as links, images never load (their alt text is shown
//! instead), and nesting is capped so hostile input cannot make the tree, its serialization or
//! the page's recursive DOM builder run out of stack.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, LinkType, Options, Parser, Tag};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// Elements nested deeper than this are flattened into their parent: their text stays, their
/// structure goes. Real messages stay far below it (a list in a quote in a list is ~8 deep).
const MAX_DEPTH: usize = 32;

const MAX_LANG_LEN: usize = 32;

/// The allowlisted elements without attributes. Headings start at `h3` so a message never
/// shouts with a page-sized title.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    P,
    H3,
    H4,
    H5,
    H6,
    Em,
    Strong,
    Del,
    Blockquote,
    Ul,
    Li,
    Hr,
    Br,
    Table,
    Thead,
    Tbody,
    Tr,
    Th,
    Td,
}

impl Element {
    pub fn name(self) -> &'static str {
        match self {
            Element::P => "p",
            Element::H3 => "h3",
            Element::H4 => "h4",
            Element::H5 => "h5",
            Element::H6 => "h6",
            Element::Em => "em",
            Element::Strong => "strong",
            Element::Del => "del",
            Element::Blockquote => "blockquote",
            Element::Ul => "ul",
            Element::Li => "li",
            Element::Hr => "hr",
            Element::Br => "br",
            Element::Table => "table",
            Element::Thead => "thead",
            Element::Tbody => "tbody",
            Element::Tr => "tr",
            Element::Th => "th",
            Element::Td => "td",
        }
    }
}

/// One node of a rendered message. Serialized compactly for the page: text as a JSON string,
/// elements as `{"t":tag,"c":[children]}` (`c` left out when empty), plus `href` on `a`,
/// `start` on `ol` (only when not 1), and `{"t":"pre","lang"?,"code"}` for code blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Text(String),
    Element {
        tag: Element,
        children: Vec<Node>,
    },
    /// `href` is `http://`, `https://` or `mailto:` (checked case-insensitively).
    Link {
        href: String,
        children: Vec<Node>,
    },
    OrderedList {
        start: u64,
        children: Vec<Node>,
    },
    /// Inline code: `{"t":"code","c":[text]}`, always exactly one string.
    InlineCode(String),
    /// `lang` only when it is 1 to 32 of `[A-Za-z0-9_+-.#]`.
    CodeBlock {
        lang: Option<String>,
        code: String,
    },
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        fn children<M: SerializeMap>(m: &mut M, c: &[Node]) -> Result<(), M::Error> {
            if c.is_empty() {
                Ok(())
            } else {
                m.serialize_entry("c", c)
            }
        }
        match self {
            Node::Text(text) => s.serialize_str(text),
            Node::Element { tag, children: c } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("t", tag.name())?;
                children(&mut m, c)?;
                m.end()
            }
            Node::Link { href, children: c } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("t", "a")?;
                m.serialize_entry("href", href)?;
                children(&mut m, c)?;
                m.end()
            }
            Node::OrderedList { start, children: c } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("t", "ol")?;
                if *start != 1 {
                    m.serialize_entry("start", start)?;
                }
                children(&mut m, c)?;
                m.end()
            }
            Node::InlineCode(code) => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("t", "code")?;
                m.serialize_entry("c", &[code])?;
                m.end()
            }
            Node::CodeBlock { lang, code } => {
                let mut m = s.serialize_map(None)?;
                m.serialize_entry("t", "pre")?;
                if let Some(lang) = lang {
                    m.serialize_entry("lang", lang)?;
                }
                m.serialize_entry("code", code)?;
                m.end()
            }
        }
    }
}

/// Parses `text` into the sanitized tree. Never fails: whatever cannot be shown safely is
/// shown as text or dropped.
pub fn render(text: &str) -> Vec<Node> {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let mut builder = Builder::new();
    for event in Parser::new_ext(text, options) {
        builder.event(event);
    }
    builder.finish()
}

/// The tree as the JSON array the page reads.
pub fn render_json(text: &str) -> String {
    let nodes = render(text);
    // Strings and integers only, so serde_json cannot fail; the fallback still shows the text.
    serde_json::to_string(&nodes).unwrap_or_else(|_| {
        serde_json::Value::Array(vec![serde_json::Value::String(text.to_owned())]).to_string()
    })
}

/// What an open parser tag turns into once its `End` arrives.
enum Kind {
    /// Contributes its children to its parent: the root, links to refused destinations, tags
    /// we do not show, and anything opened beyond `MAX_DEPTH` or inside an image's alt text.
    Transparent,
    Element(Element),
    /// The parser puts header cells straight into the head; HTML wants a row between.
    TableHead,
    /// Body rows get wrapped in a `tbody` when the table closes.
    Table,
    Link(String),
    OrderedList(u64),
    CodeBlock(Option<String>),
    /// Raw HTML shown as typed, in a paragraph of its own.
    HtmlBlock,
    Image,
}

impl Kind {
    /// How many element levels this adds to the output.
    fn depth(&self) -> usize {
        match self {
            Kind::Transparent | Kind::Image | Kind::CodeBlock(_) => 0,
            Kind::Element(_) | Kind::Link(_) | Kind::OrderedList(_) | Kind::HtmlBlock => 1,
            Kind::TableHead | Kind::Table => 2,
        }
    }
}

struct Frame {
    kind: Kind,
    children: Vec<Node>,
}

/// Turns the parser's balanced start/end events into a tree with an explicit stack, so input
/// nesting never becomes call depth here.
struct Builder {
    /// Never empty: `stack[0]` is the root.
    stack: Vec<Frame>,
    depth: usize,
    /// Open `Image` frames: inside one, everything is collected as plain alt text.
    images: usize,
}

impl Builder {
    fn new() -> Self {
        Builder {
            stack: vec![Frame {
                kind: Kind::Transparent,
                children: Vec::new(),
            }],
            depth: 0,
            images: 0,
        }
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(tag) => {
                let kind = self.kind_for(tag);
                self.open(kind);
            }
            Event::End(_) => self.close(),
            Event::Code(code) if self.images == 0 => {
                self.push(Node::InlineCode(code.into_string()))
            }
            Event::Text(text)
            | Event::Code(text)
            | Event::Html(text)
            | Event::InlineHtml(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => self.push_text(&text),
            Event::FootnoteReference(label) => self.push_text(&format!("[^{label}]")),
            Event::SoftBreak if self.images > 0 => self.push_text(" "),
            // Kept as a newline (the page shows it with `white-space: pre-line`): chat text is
            // typed with Enter meaning "new line", and so is most models' prose.
            Event::SoftBreak => self.push_text("\n"),
            Event::HardBreak if self.images > 0 => self.push_text(" "),
            Event::HardBreak => self.push(element(Element::Br, Vec::new())),
            Event::Rule => self.push(element(Element::Hr, Vec::new())),
            Event::TaskListMarker(done) => self.push_text(if done { "☑ " } else { "☐ " }),
        }
    }

    fn kind_for(&self, tag: Tag<'_>) -> Kind {
        match tag {
            Tag::Paragraph => Kind::Element(Element::P),
            Tag::Heading { level, .. } => Kind::Element(match level {
                HeadingLevel::H1 => Element::H3,
                HeadingLevel::H2 => Element::H4,
                HeadingLevel::H3 => Element::H5,
                HeadingLevel::H4 | HeadingLevel::H5 | HeadingLevel::H6 => Element::H6,
            }),
            Tag::BlockQuote(_) => Kind::Element(Element::Blockquote),
            Tag::CodeBlock(CodeBlockKind::Fenced(info)) => Kind::CodeBlock(code_lang(&info)),
            Tag::CodeBlock(CodeBlockKind::Indented) => Kind::CodeBlock(None),
            Tag::HtmlBlock => Kind::HtmlBlock,
            Tag::List(Some(start)) => Kind::OrderedList(start),
            Tag::List(None) => Kind::Element(Element::Ul),
            Tag::Item => Kind::Element(Element::Li),
            Tag::Table(_) => Kind::Table,
            Tag::TableHead => Kind::TableHead,
            Tag::TableRow => Kind::Element(Element::Tr),
            Tag::TableCell => match self.top().kind {
                Kind::TableHead => Kind::Element(Element::Th),
                _ => Kind::Element(Element::Td),
            },
            Tag::Emphasis => Kind::Element(Element::Em),
            Tag::Strong => Kind::Element(Element::Strong),
            Tag::Strikethrough => Kind::Element(Element::Del),
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => match safe_href(link_type, &dest_url) {
                Some(href) => Kind::Link(href),
                None => Kind::Transparent,
            },
            Tag::Image { .. } => Kind::Image,
            // Not enabled in `render`'s options; should one appear, its text still shows.
            Tag::FootnoteDefinition(_)
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition
            | Tag::Superscript
            | Tag::Subscript
            | Tag::MetadataBlock(_) => Kind::Transparent,
        }
    }

    fn top(&self) -> &Frame {
        let last = self.stack.len() - 1;
        &self.stack[last]
    }

    fn top_mut(&mut self) -> &mut Frame {
        let last = self.stack.len() - 1;
        &mut self.stack[last]
    }

    fn open(&mut self, kind: Kind) {
        let kind = match kind {
            Kind::Image if self.images == 0 => Kind::Image,
            _ if self.images > 0 => Kind::Transparent,
            kind if self.depth + kind.depth() > MAX_DEPTH => Kind::Transparent,
            kind => kind,
        };
        self.depth += kind.depth();
        if matches!(kind, Kind::Image) {
            self.images += 1;
        }
        self.stack.push(Frame {
            kind,
            children: Vec::new(),
        });
    }

    fn close(&mut self) {
        if self.stack.len() < 2 {
            return;
        }
        let Some(Frame { kind, children }) = self.stack.pop() else {
            return;
        };
        self.depth -= kind.depth();
        match kind {
            Kind::Transparent => {
                for child in children {
                    self.push(child);
                }
            }
            Kind::Element(tag) => self.push(element(tag, children)),
            Kind::TableHead => self.push(element(
                Element::Thead,
                vec![element(Element::Tr, children)],
            )),
            Kind::Table => {
                let (head, body): (Vec<Node>, Vec<Node>) = children.into_iter().partition(|n| {
                    matches!(
                        n,
                        Node::Element {
                            tag: Element::Thead,
                            ..
                        }
                    )
                });
                let mut table = head;
                if !body.is_empty() {
                    table.push(element(Element::Tbody, body));
                }
                self.push(element(Element::Table, table));
            }
            Kind::Link(href) => self.push(Node::Link { href, children }),
            Kind::OrderedList(start) => self.push(Node::OrderedList { start, children }),
            Kind::CodeBlock(lang) => {
                // The fence's closing line break is not part of the code a user copies.
                let mut code = plain_text(children);
                if code.ends_with('\n') {
                    code.pop();
                }
                self.push(Node::CodeBlock { lang, code });
            }
            Kind::HtmlBlock => {
                let mut html = plain_text(children);
                html.truncate(html.trim_end_matches(['\n', '\r']).len());
                self.push(element(Element::P, vec![Node::Text(html)]));
            }
            Kind::Image => {
                self.images -= 1;
                let alt = plain_text(children);
                self.push_text(&format!("[image: {alt}]"));
            }
        }
    }

    fn push(&mut self, node: Node) {
        let children = &mut self.top_mut().children;
        match (children.last_mut(), node) {
            (Some(Node::Text(last)), Node::Text(text)) => last.push_str(&text),
            (_, node) => children.push(node),
        }
    }

    fn push_text(&mut self, text: &str) {
        if let Some(Node::Text(last)) = self.top_mut().children.last_mut() {
            last.push_str(text);
        } else {
            self.push(Node::Text(text.to_owned()));
        }
    }

    fn finish(mut self) -> Vec<Node> {
        while self.stack.len() > 1 {
            self.close();
        }
        std::mem::take(&mut self.top_mut().children)
    }
}

fn element(tag: Element, children: Vec<Node>) -> Node {
    Node::Element { tag, children }
}

/// The text of nodes that, by construction, are only text (code blocks, alt text, raw HTML).
fn plain_text(nodes: Vec<Node>) -> String {
    nodes
        .into_iter()
        .filter_map(|n| match n {
            Node::Text(text) => Some(text),
            _ => None,
        })
        .collect()
}

/// The first word of a fence's info string, if it looks like a language name (it ends up as a
/// label and maybe a class, so nothing that could be anything else).
fn code_lang(info: &str) -> Option<String> {
    let lang = info.split_whitespace().next()?;
    let ok = lang.len() <= MAX_LANG_LEN
        && lang
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_+-.#".contains(&b));
    ok.then(|| lang.to_owned())
}

/// The destination to link to, or `None` to show the link's text only. An allowlist of
/// prefixes rather than a blocklist of schemes: `javascript:`, `data:`, `vbscript:`, relative
/// and scheme-relative URLs all fail it, however they are cased or padded. `http:`/`https:`
/// must be followed by `//`, since `https:foo` would resolve against the page.
fn safe_href(link_type: LinkType, dest: &str) -> Option<String> {
    let dest = dest.trim();
    if link_type == LinkType::Email {
        // The parser hands e-mail autolinks (`<a@b.example>`) over without their scheme.
        return Some(format!("mailto:{dest}"));
    }
    let allowed = ["http://", "https://", "mailto:"].iter().any(|prefix| {
        dest.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    });
    allowed.then(|| dest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> String {
        render_json(text)
    }

    #[test]
    fn paragraphs_emphasis_and_inline_code() {
        assert_eq!(
            json("Hello *there* **you** ~~not~~ `x < y`\nnext line\n\nSecond"),
            r#"[{"t":"p","c":["Hello ",{"t":"em","c":["there"]}," ",{"t":"strong","c":["you"]}," ",{"t":"del","c":["not"]}," ",{"t":"code","c":["x < y"]},"\nnext line"]},{"t":"p","c":["Second"]}]"#
        );
    }

    #[test]
    fn headings_are_demoted() {
        assert_eq!(
            json("# a\n## b\n### c\n#### d\n###### f"),
            r#"[{"t":"h3","c":["a"]},{"t":"h4","c":["b"]},{"t":"h5","c":["c"]},{"t":"h6","c":["d"]},{"t":"h6","c":["f"]}]"#
        );
    }

    #[test]
    fn lists_tasks_quotes_rules_breaks() {
        assert_eq!(
            json("- a\n- [ ] todo\n- [x] done\n\n3. three\n4. four\n\nthen\n\n1. one\n\n   more"),
            r#"[{"t":"ul","c":[{"t":"li","c":["a"]},{"t":"li","c":["☐ todo"]},{"t":"li","c":["☑ done"]}]},{"t":"ol","start":3,"c":[{"t":"li","c":["three"]},{"t":"li","c":["four"]}]},{"t":"p","c":["then"]},{"t":"ol","c":[{"t":"li","c":[{"t":"p","c":["one"]},{"t":"p","c":["more"]}]}]}]"#
        );
        assert_eq!(
            json("> quoted  \nbroken\n\n---"),
            r#"[{"t":"blockquote","c":[{"t":"p","c":["quoted",{"t":"br"},"broken"]}]},{"t":"hr"}]"#
        );
    }

    #[test]
    fn code_blocks_keep_a_safe_language_only() {
        assert_eq!(
            json("```rust ignore\nfn main() {}\n```"),
            r#"[{"t":"pre","lang":"rust","code":"fn main() {}"}]"#
        );
        assert_eq!(
            json("```c++\nx\n```\n```c#\ny\n```"),
            r#"[{"t":"pre","lang":"c++","code":"x"},{"t":"pre","lang":"c#","code":"y"}]"#
        );
        assert_eq!(
            json("```\"><script>\nx\n```"),
            r#"[{"t":"pre","code":"x"}]"#
        );
        let long = format!("```{}\nx\n```", "a".repeat(33));
        assert_eq!(json(&long), r#"[{"t":"pre","code":"x"}]"#);
        assert_eq!(json("    indented\n"), r#"[{"t":"pre","code":"indented"}]"#);
        assert_eq!(
            json("```html\n<script>alert(1)</script>\n```"),
            r#"[{"t":"pre","lang":"html","code":"<script>alert(1)</script>"}]"#
        );
    }

    #[test]
    fn an_unclosed_fence_while_streaming_is_still_code() {
        assert_eq!(
            json("Here:\n```rust\nfn main("),
            r#"[{"t":"p","c":["Here:"]},{"t":"pre","lang":"rust","code":"fn main("}]"#
        );
    }

    #[test]
    fn tables_get_head_and_body() {
        assert_eq!(
            json("| a | b |\n|---|:-:|\n| 1 | *2* |\n| 3 | 4 |"),
            r#"[{"t":"table","c":[{"t":"thead","c":[{"t":"tr","c":[{"t":"th","c":["a"]},{"t":"th","c":["b"]}]}]},{"t":"tbody","c":[{"t":"tr","c":[{"t":"td","c":["1"]},{"t":"td","c":[{"t":"em","c":["2"]}]}]},{"t":"tr","c":[{"t":"td","c":["3"]},{"t":"td","c":["4"]}]}]}]}]"#
        );
        assert_eq!(
            json("| a |\n|---|"),
            r#"[{"t":"table","c":[{"t":"thead","c":[{"t":"tr","c":[{"t":"th","c":["a"]}]}]}]}]"#
        );
    }

    #[test]
    fn raw_html_stays_text() {
        assert_eq!(
            json("<script>alert(1)</script>"),
            r#"[{"t":"p","c":["<script>alert(1)</script>"]}]"#
        );
        assert_eq!(
            json("hi <img src=x onerror=alert(1)> there"),
            r#"[{"t":"p","c":["hi <img src=x onerror=alert(1)> there"]}]"#
        );
        assert_eq!(
            json("<div>\n<img src=x onerror=alert(1)>\n</div>"),
            r#"[{"t":"p","c":["<div>\n<img src=x onerror=alert(1)>\n</div>"]}]"#
        );
    }

    #[test]
    fn only_web_and_mail_links_are_links() {
        for bad in [
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x]( javascript:alert(1) )",
            "[x](<java\tscript:alert(1)>)",
            "[x](javascript&#58;alert(1))",
            "[x](data:text/html,<script>alert(1)</script>)",
            "[x](vbscript:msgbox)",
            "[x](/relative)",
            "[x](//evil.example/)",
            "[x](https:evil)",
            "[x](#top)",
            "[x][r]\n\n[r]: javascript:alert(1)",
        ] {
            assert_eq!(json(bad), r#"[{"t":"p","c":["x"]}]"#, "{bad}");
        }
        assert_eq!(
            json("[x](HTTPS://example.com/a?b=1 \"title\")"),
            r#"[{"t":"p","c":[{"t":"a","href":"HTTPS://example.com/a?b=1","c":["x"]}]}]"#
        );
        assert_eq!(
            json("[**x**][r]\n\n[r]: http://example.com"),
            r#"[{"t":"p","c":[{"t":"a","href":"http://example.com","c":[{"t":"strong","c":["x"]}]}]}]"#
        );
        assert_eq!(
            json("[mail](mailto:a@b.example)"),
            r#"[{"t":"p","c":[{"t":"a","href":"mailto:a@b.example","c":["mail"]}]}]"#
        );
    }

    #[test]
    fn autolinks_are_links() {
        assert_eq!(
            json("see <https://example.com> or <a@b.example>"),
            r#"[{"t":"p","c":["see ",{"t":"a","href":"https://example.com","c":["https://example.com"]}," or ",{"t":"a","href":"mailto:a@b.example","c":["a@b.example"]}]}]"#
        );
        assert_eq!(
            json("<javascript:alert(1)>"),
            r#"[{"t":"p","c":["javascript:alert(1)"]}]"#
        );
    }

    #[test]
    fn images_never_load() {
        let out = json("![alt](https://evil.example/t.png \"t\")");
        assert_eq!(out, r#"[{"t":"p","c":["[image: alt]"]}]"#);
        let out = json("[![*nested* `alt` ![inner](https://evil.example/i.png)](https://evil.example/o.png)](https://ok.example/)\n\n![r][r]\n\n[r]: https://evil.example/r.png");
        assert!(!out.contains("evil"), "{out}");
        assert_eq!(
            out,
            r#"[{"t":"p","c":[{"t":"a","href":"https://ok.example/","c":["[image: nested alt inner]"]}]},{"t":"p","c":["[image: r]"]}]"#
        );
    }

    #[test]
    fn deep_nesting_is_flattened_not_recursed() {
        for input in [
            ">".repeat(100_000),
            "[".repeat(100_000),
            "*".repeat(100_000) + "a" + &"*".repeat(100_000),
            "- ".repeat(50_000) + "x",
            "> - ".repeat(30_000) + "x",
            "![".repeat(50_000) + "a" + &"](x)".repeat(50_000),
        ] {
            let nodes = render(&input);
            assert!(nodes.iter().all(|n| depth(n) <= MAX_DEPTH + 1));
            let out = serde_json::to_string(&nodes).unwrap();
            assert!(out.starts_with('['));
        }
        let quoted = render(&(">".repeat(100) + " deep"));
        assert_eq!(depth(&quoted[0]), MAX_DEPTH);
        assert!(render_json(&(">".repeat(100) + " deep")).contains("\"deep\""));
    }

    /// Iterative, so measuring a wrongly deep tree cannot itself overflow.
    fn depth(node: &Node) -> usize {
        let mut max = 0;
        let mut todo = vec![(node, 1)];
        while let Some((node, d)) = todo.pop() {
            if !matches!(node, Node::Text(_)) {
                max = max.max(d);
            }
            if let Node::Element { children, .. }
            | Node::Link { children, .. }
            | Node::OrderedList { children, .. } = node
            {
                todo.extend(children.iter().map(|c| (c, d + 1)));
            }
        }
        max
    }

    #[test]
    fn empty_and_whitespace() {
        assert_eq!(json(""), "[]");
        assert_eq!(json("  \n\n"), "[]");
    }
}
