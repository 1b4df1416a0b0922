// The conversation list: grouped by folder, filtered by a search over titles and folders, all
// on decrypted data in this page (the server never sees titles, folders or queries).

import { make } from "./dom.js";
import type { Conversation } from "./history.js";

export interface ListView {
  into: HTMLElement;
  query: string;
  current: string | null;
  select(conv: string): void;
}

function matches(c: Conversation, words: string[]): boolean {
  const hay = `${c.title} ${c.folder}`.toLocaleLowerCase();
  return words.every((w) => hay.includes(w));
}

/** Renders the list: folders in name order ("No folder" first), each in the order given (the
 *  client's: most recently updated first). */
export function renderList(convs: Conversation[], view: ListView): void {
  const words = view.query.toLocaleLowerCase().split(/\s+/).filter(Boolean);
  const groups = new Map<string, Conversation[]>();
  for (const c of convs) {
    if (!matches(c, words)) continue;
    groups.set(c.folder, [...(groups.get(c.folder) ?? []), c]);
  }
  const names = [...groups.keys()].sort((a, b) =>
    a === "" ? -1 : b === "" ? 1 : a.localeCompare(b),
  );
  view.into.replaceChildren();
  if (names.length === 0) {
    view.into.append(
      make("p", "empty", words.length ? "No conversation matches." : "No conversations yet."),
    );
    return;
  }
  for (const name of names) {
    const section = make("section", "folder");
    section.dataset.folder = name;
    if (name !== "" || names.length > 1) section.append(make("h3", undefined, name || "No folder"));
    const ul = make("ul");
    for (const c of groups.get(name)!) {
      const li = make("li", c.id === view.current ? "current" : undefined);
      const button = make("button", "conv", c.title);
      button.type = "button";
      button.dataset.conv = c.id;
      button.addEventListener("click", () => view.select(c.id));
      li.append(button);
      ul.append(li);
    }
    section.append(ul);
    view.into.append(section);
  }
}

/** Every folder name in use, for the folder field's suggestions. */
export function folders(convs: Conversation[]): string[] {
  return [...new Set(convs.map((c) => c.folder).filter(Boolean))].sort((a, b) =>
    a.localeCompare(b),
  );
}
