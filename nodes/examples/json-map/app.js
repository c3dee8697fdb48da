// JSON_MAP: fetches a JSON list with the standard fetch() (wasi:http, which passes the same
// egress gate as the egress import), keeps the items matching `where`, and maps each to the
// fields `pick` names (dotted paths).
import { node, info, NodeError } from "./airlock.js";

const at = (value, path) => path.split(".").reduce((v, key) => (v == null ? v : v[key]), value);

export const run = node(async (ctx, config) => {
  const response = await fetch(config.url, { headers: config.headers ?? {} });
  info(`GET ${config.url} -> HTTP ${response.status}`);
  if (!response.ok) throw new NodeError(`GET ${config.url} answered HTTP ${response.status}`);
  const where = Object.entries(config.where ?? {});
  const items = (await response.json())
    .filter((item) => where.every(([path, want]) => at(item, path) === want))
    .map((item) => Object.fromEntries(Object.entries(config.pick).map(([k, p]) => [k, at(item, p)])));
  return { count: items.length, items };
});
