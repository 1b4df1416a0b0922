// Light, dark, or whatever the system says; the choice is a preference, not a secret, so it
// lives in localStorage.

const KEY = "sotto.theme";
const modes = ["system", "light", "dark"] as const;
type Mode = (typeof modes)[number];

function saved(): Mode {
  const v = localStorage.getItem(KEY);
  return (modes as readonly string[]).includes(v ?? "") ? (v as Mode) : "system";
}

function apply(mode: Mode, button: HTMLElement): void {
  if (mode === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = mode;
  button.textContent = `Theme: ${mode}`;
  button.dataset.mode = mode;
}

/** Applies the saved theme and makes `button` cycle system → light → dark. */
export function themeSwitch(button: HTMLElement): void {
  apply(saved(), button);
  button.addEventListener("click", () => {
    const next = modes[(modes.indexOf(saved()) + 1) % modes.length];
    localStorage.setItem(KEY, next);
    apply(next, button);
  });
}
