// Write an Airlock action node in a few lines of JavaScript.
//
// A node is one function wrapped with `node()` and exported as `run`: it gets the node's config
// (every template already rendered by the host) as an object and returns its output (anything
// JSON can hold). Throwing fails the node run with the error's message. The only way out of the
// sandbox is `get`/`post`/`send` (the egress import) or `fetch()` (wasi:http): both go through
// the host's egress gate, which checks the destination against the operator's policy and the
// node's manifest, puts secret values where the node holds secret handles (the node never sees a
// secret), and audits the attempt.
//
//   import { node, get } from "./airlock.js";
//   export const run = node((ctx, config) => ({ status: get(config.url).status }));

import { send as egressSend } from "airlock:node/egress@0.1.0";
import { log } from "airlock:node/log@0.1.0";

/** Throw it (or any Error) to fail the node run with this message. */
export class NodeError extends Error {}

/** The gate did not deliver a response: denied, invalid, timed out, connection, too large. */
export class EgressError extends NodeError {
  constructor(error) {
    super(describe(error));
    this.error = error;
  }
}

function describe(error) {
  switch (error && error.tag) {
    case "denied": return `request denied by the egress policy: ${error.val}`;
    case "invalid-request": return `invalid request: ${error.val}`;
    case "timeout": return "request timed out";
    case "connection": return `connection failed: ${error.val}`;
    case "too-large": return `response larger than the ${error.val}-byte limit`;
    default: return `egress failed: ${JSON.stringify(error)}`;
  }
}

/** An answer from the gate. Redirects are not followed: a 3xx arrives as it is. */
export class Response {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this.body = body;
  }
  get ok() {
    return this.status >= 200 && this.status < 300;
  }
  /** The first header with this name (case-insensitive). */
  header(name) {
    const found = this.headers.find(([n]) => n.toLowerCase() === name.toLowerCase());
    return found ? found[1] : undefined;
  }
  text() {
    return new TextDecoder().decode(this.body);
  }
  json() {
    return JSON.parse(this.text());
  }
  /** The body as JSON when it is JSON, else as text. */
  jsonOrText() {
    try {
      return this.json();
    } catch {
      return this.text();
    }
  }
}

/**
 * Sends a request through the egress gate: `{method, url, headers, body, json, timeoutMs}`.
 * Headers, URL and body may hold secret handles; the gate puts the values in.
 */
export function send({ method = "GET", url, headers = {}, body, json, timeoutMs }) {
  const list = Object.entries(headers);
  if (json !== undefined) {
    body = JSON.stringify(json);
    if (!list.some(([n]) => n.toLowerCase() === "content-type")) {
      list.push(["Content-Type", "application/json"]);
    }
  }
  if (typeof body === "string") body = new TextEncoder().encode(body);
  try {
    const r = egressSend({ method, url, headers: list, body, timeoutMs });
    return new Response(r.status, r.headers, r.body);
  } catch (e) {
    throw new EgressError(e.payload !== undefined ? e.payload : e);
  }
}

export const get = (url, headers = {}) => send({ method: "GET", url, headers });
export const post = (url, json, headers = {}) => send({ method: "POST", url, headers, json });

export const debug = (message) => log("debug", String(message));
export const info = (message) => log("info", String(message));
export const warn = (message) => log("warn", String(message));
export const error = (message) => log("error", String(message));

/**
 * Wraps `handler(ctx, config)` as the component's `run` export: JSON in, JSON out. The handler
 * may be async (e.g. to await fetch()); the runtime runs the event loop until it settles.
 */
export function node(handler) {
  // The export's error is a string: the message of whatever was thrown.
  const fail = (e) => {
    throw e instanceof Error ? e.message : String(e);
  };
  const output = (value) => JSON.stringify(value ?? null);
  return (ctx, config) => {
    let result;
    try {
      result = handler(ctx, JSON.parse(config));
    } catch (e) {
      fail(e);
    }
    return result instanceof Promise ? result.then(output, fail) : output(result);
  };
}
