// The "verified" panel: what this page checked about the enclave before sending anything
// (platform, measurement, model digest, TCB, the logged release that lists the build, the log
// and its witnesses, when), or why it refused. Rendering only.

import type { Verified } from "./chat.js";
import { el, make } from "./dom.js";

/** The TCB the evidence reports, readably: SEV-SNP's component levels or TDX's status. The
 *  full verdict stays one click away. */
function tcbText(verdict: Record<string, unknown>): string {
  const cpu = (verdict.cpu ?? {}) as {
    reported_tcb?: Record<string, unknown>;
    tcb_status?: unknown;
    advisory_ids?: unknown;
    checks?: unknown;
  };
  const parts: string[] = [];
  if (cpu.reported_tcb) {
    parts.push(
      Object.entries(cpu.reported_tcb)
        .map(([k, v]) => `${k} ${String(v)}`)
        .join(", "),
    );
  }
  if (typeof cpu.tcb_status === "string") parts.push(`status ${cpu.tcb_status}`);
  if (Array.isArray(cpu.advisory_ids) && cpu.advisory_ids.length > 0)
    parts.push(`advisories ${cpu.advisory_ids.join(", ")}`);
  if (Array.isArray(cpu.checks)) parts.push(`${cpu.checks.length} checks passed`);
  return parts.join("; ") || "see the full verdict";
}

/** "12 s", "3 min", "2 h": how long before `now` a time (POSIX seconds) was. */
function ago(then: number, now: Date): string {
  const secs = Math.max(0, Math.round(now.getTime() / 1000 - then));
  if (secs < 120) return `${secs} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  return `${Math.round(secs / 3600)} h`;
}

export function renderVerified(v: Verified): void {
  const s = v.summary;
  const r = s.admitted;
  const log = s.log;
  el("simulated-banner").hidden = !s.simulated && el("simulated-banner").hidden;
  const rows: [string, string][] = [
    ["Platform", s.simulated ? `${s.platform} (SIMULATED)` : s.platform],
    ["Measurement", s.measurement],
    ["Model", `${s.model.name} sha256 ${s.model.sha256}`],
    ["Release", `${r.name} ${r.version}, commit ${r.source_commit}`],
    ["Log entry", `#${r.index}, statement sha256 ${r.digest}`],
    ["Signed by", r.signers.join(", ")],
    [
      "Log",
      `${log.origin}, ${log.size} ${log.size === 1 ? "entry" : "entries"}` +
        (log.previous_size === null
          ? ", first checked by this browser"
          : `, consistent with the ${log.previous_size} this browser saw before`) +
        (log.dev ? " (DEVELOPMENT log: its keys live with the server and prove nothing)" : ""),
    ],
    ...log.cosigners.map((w): [string, string] => [
      "Witness",
      `${w.name} cosigned ${ago(w.timestamp, v.checkedAt)} ago`,
    ]),
    ["GPU attested", s.gpu_attested ? "yes" : "no"],
    ["TCB", tcbText(s.verdict)],
    [
      "Simulated root pinned",
      s.simulated
        ? s.simulated_root_pinned
          ? "yes"
          : "no: any simulated enclave accepted"
        : "n/a",
    ],
    [
      "Relay",
      (v.via ? `through the hop ${v.via}` : "this server's") +
        (v.tokenSpent ? "; paid with an anonymous token" : ""),
    ],
    ["Checked at", v.checkedAt.toISOString()],
    ["Verification took", `${v.finishMs.toFixed(1)} ms`],
    [
      "Log check took",
      `${v.logMs.toFixed(1)} ms (${v.logFiles} ${v.logFiles === 1 ? "file" : "files"} fetched)`,
    ],
  ];
  const dl = el("verified-list");
  dl.replaceChildren(
    ...rows.flatMap(([k, val]) => [make("dt", undefined, k), make("dd", undefined, val)]),
  );
  dl.dataset.finishMs = v.finishMs.toFixed(2);
  dl.dataset.logMs = v.logMs.toFixed(2);
  el("verdict").textContent = JSON.stringify(s, null, 2);
  el("verdict-box").hidden = false;
  const st = el("verified-state");
  st.textContent = "Checked in this page before anything was sent:";
  st.className = "ok";
}

export function renderRefused(why: string): void {
  const st = el("verified-state");
  st.textContent = `Refused: ${why}. Nothing was sent.`;
  st.className = "refused";
  el("verified-list").replaceChildren();
  el("verdict").textContent = "";
  el("verdict-box").hidden = true;
}
