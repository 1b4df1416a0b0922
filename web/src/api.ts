// The (untrusted) server's HTTP API where the page reads it directly: the collateral the wasm
// channel checks (chat.ts). Account and history requests are the client core's, sent by
// drive.ts; the session lives in an HttpOnly cookie the page never sees.

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface ErrorBody {
  error?: unknown;
  message?: unknown;
}

async function get<T>(path: string): Promise<T> {
  const resp = await fetch(path, { credentials: "same-origin", cache: "no-store" });
  const text = await resp.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ApiError(
      resp.status,
      "malformed",
      `the server answered ${resp.status} with a body that is not Sotto's API`,
    );
  }
  if (!resp.ok) {
    const e = (parsed ?? {}) as ErrorBody;
    throw new ApiError(
      resp.status,
      typeof e.error === "string" ? e.error : "malformed",
      typeof e.message === "string" ? e.message : `the server answered ${resp.status}`,
    );
  }
  return parsed as T;
}

export const api = {
  collateral: () => get<{ files: Record<string, string> }>("/v1/collateral"),
};
