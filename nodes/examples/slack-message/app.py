"""SLACK_MESSAGE: formats a status notice as a Slack Block Kit message and posts it to an
incoming-webhook URL. The webhook's secret (its last path segment) is a secret handle: the gate puts it in."""
import airlock_node as airlock
from airlock_node import WitWorld  # noqa: F401  (the component's export)

ICONS = {"success": ":white_check_mark:", "failure": ":x:", "info": ":information_source:"}


@airlock.node
def run(ctx, config):
    title = f"{ICONS.get(config.get('status'), ICONS['info'])} {config['title']}"
    fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"}
              for name, value in config.get("fields", {}).items()]
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": title}}]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})  # Slack's limit
    if config.get("link"):
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": f"<{config['link']}|Details>"}]})
    response = airlock.post(config["webhook"], {"text": title, "blocks": blocks})
    airlock.info(f"posted \"{title}\" to Slack: HTTP {response.status}")
    if not response.ok:
        raise airlock.NodeError(f"Slack answered HTTP {response.status}: {response.text()}")
    return {"sent": True, "status": response.status, "text": title}
