// Chat messages as Markdown on the page: the Rust core (crates/web/src/markdown.rs) parses the
// untrusted text into a tree of allowlisted elements, and this file builds it with
// createElement and text nodes only, never HTML. The tree is checked again here as if it were
// hostile, so a bug on either side alone cannot put an arbitrary element, attribute or link
// scheme on the page: tag names come from the table below, hrefs must be http(s) or mailto,
// and anything else is shown as its text or dropped.

import { markdown } from "../pkg/sotto_web.js";

/** The element names the tree may ask for, mapped to the only names createElement gets. */
const ELEMENTS: ReadonlyMap<string, keyof HTMLElementTagNameMap> = new Map<
  string,
  keyof HTMLElementTagNameMap
>([
  ["p", "p"],
  ["h3", "h3"],
  ["h4", "h4"],
  ["h5", "h5"],
  ["h6", "h6"],
  ["em", "em"],
  ["strong", "strong"],
  ["del", "del"],
  ["code", "code"],
  ["blockquote", "blockquote"],
  ["ul", "ul"],
  ["ol", "ol"],
  ["li", "li"],
  ["a", "a"],
  ["hr", "hr"],
  ["br", "br"],
  ["table", "table"],
  ["thead", "thead"],
  ["tbody", "tbody"],
  ["tr", "tr"],
  ["th", "th"],
  ["td", "td"],
]);
const VOID = new Set(["hr", "br"]);
const SAFE_HREF = /^(https?:\/\/|mailto:)/i;
const SAFE_LANG = /^[A-Za-z0-9_+\-.#]{1,32}$/;
/** The core caps nesting at 32; this bounds the recursion below whatever arrives. */
const MAX_DEPTH = 64;
const COPY_FEEDBACK_MS = 1500;

/** Parses `text` in the wasm core and shows it in `into` (whose children it replaces). */
export function renderMessage(into: HTMLElement, text: string): void {
  renderMarkdown(into, JSON.parse(markdown(text)));
}

/** Replaces `into`'s children with the DOM for a node tree from the core's `markdown()`, and
 *  gives `into` the `md` class that markdown.css styles. */
export function renderMarkdown(into: HTMLElement, nodes: unknown): void {
  const fragment = document.createDocumentFragment();
  appendAll(fragment, nodes, 0);
  into.classList.add("md");
  into.replaceChildren(fragment);
}

function appendAll(parent: Node, nodes: unknown, depth: number): void {
  if (!Array.isArray(nodes) || depth > MAX_DEPTH) return;
  for (const node of nodes) append(parent, node, depth);
}

function append(parent: Node, node: unknown, depth: number): void {
  if (typeof node === "string") {
    parent.appendChild(document.createTextNode(node));
    return;
  }
  if (typeof node !== "object" || node === null || Array.isArray(node)) return;
  const { t, c, href, start, lang, code } = node as Record<string, unknown>;
  if (t === "pre") {
    if (typeof code === "string") {
      parent.appendChild(
        codeBlock(code, typeof lang === "string" && SAFE_LANG.test(lang) ? lang : ""),
      );
    }
    return;
  }
  const tag = typeof t === "string" ? ELEMENTS.get(t) : undefined;
  const safeLink = tag !== "a" || (typeof href === "string" && SAFE_HREF.test(href));
  if (tag === undefined || !safeLink) {
    // Unknown or refused: its content still shows, in the parent.
    appendAll(parent, c, depth + 1);
    return;
  }
  const el = document.createElement(tag);
  if (el instanceof HTMLAnchorElement && typeof href === "string") {
    el.href = href;
    el.rel = "noopener noreferrer nofollow";
    el.target = "_blank";
  } else if (
    el instanceof HTMLOListElement &&
    typeof start === "number" &&
    Number.isSafeInteger(start)
  ) {
    el.start = start;
  }
  if (!VOID.has(tag)) appendAll(el, c, depth + 1);
  parent.appendChild(el);
}

/** `<div class="code"><div class="code-bar"><span class="lang">…</span><button class="copy">`
 *  then `<pre><code>…</code></pre></div>`. */
function codeBlock(code: string, lang: string): HTMLElement {
  const box = document.createElement("div");
  box.className = "code";
  const bar = document.createElement("div");
  bar.className = "code-bar";
  const label = document.createElement("span");
  label.className = "lang";
  label.textContent = lang;
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "copy";
  copy.textContent = "Copy";
  let reset: number | undefined;
  const show = (what: string): void => {
    copy.textContent = what;
    window.clearTimeout(reset);
    reset = window.setTimeout(() => {
      copy.textContent = "Copy";
    }, COPY_FEEDBACK_MS);
  };
  copy.addEventListener("click", () => {
    // Absent outside secure contexts (plain http other than localhost).
    const clipboard = navigator.clipboard as Clipboard | undefined;
    if (!clipboard) {
      show("Copy failed");
      return;
    }
    clipboard.writeText(code).then(
      () => show("Copied"),
      () => show("Copy failed"),
    );
  });
  bar.append(label, copy);
  const pre = document.createElement("pre");
  const inner = document.createElement("code");
  inner.textContent = code;
  pre.appendChild(inner);
  box.append(bar, pre);
  return box;
}
