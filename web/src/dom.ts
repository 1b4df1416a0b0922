// Small DOM helpers shared by the page's modules. User text only ever reaches the page through
// textContent (or the Markdown renderer, which builds elements from an allowlist).

import { ApiError } from "./api.js";

export function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

export function make<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function status(text: string, error = false): void {
  const s = el("status");
  s.textContent = text;
  s.classList.toggle("error", error);
}

export function describe(e: unknown): string {
  if (e instanceof ApiError) return `The server said: ${e.message} (${e.code})`;
  if (e instanceof DOMException && e.name === "NotAllowedError")
    return "The passkey request was cancelled or timed out.";
  return e instanceof Error ? e.message : String(e);
}

/** Shows a modal <dialog> whose form uses method="dialog"; resolves with the value of the
 *  button that closed it ("" for Escape). */
export function ask(dialog: HTMLDialogElement): Promise<string> {
  return new Promise((resolve) => {
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true });
    dialog.showModal();
  });
}
