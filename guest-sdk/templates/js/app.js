// The {{TYPE}} action node: GETs config.url and returns its status and body.
import { node, get, info, NodeError } from "./airlock.js";

export const run = node((ctx, config) => {
  const response = get(config.url);
  info(`GET ${config.url} -> HTTP ${response.status}`);
  if (!response.ok) {
    throw new NodeError(`GET ${config.url} answered HTTP ${response.status}`);
  }
  return { status: response.status, data: response.jsonOrText() };
});
