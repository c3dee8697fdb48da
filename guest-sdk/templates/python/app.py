"""The {{TYPE}} action node: GETs config["url"] and returns its status and body."""
import airlock_node as airlock
from airlock_node import WitWorld  # noqa: F401  (the component's export)


@airlock.node
def run(ctx, config):
    url = config["url"]
    response = airlock.get(url)
    airlock.info(f"GET {url} -> HTTP {response.status}")
    if not response.ok:
        raise airlock.NodeError(f"GET {url} answered HTTP {response.status}")
    return {"status": response.status, "data": response.json_or_text()}
