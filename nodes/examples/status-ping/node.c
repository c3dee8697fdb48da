/* STATUS_PING: checks one endpoint of a status page. GETs config.url (with config.token, when
 * given, as a bearer token) and reports whether it answered config.expect (default 200). A down
 * endpoint is a result, not a failure; only an unreachable or denied one fails the node. */
#include <stdlib.h>
#include <string.h>

#include "airlock.h"

char *node_run(const airlock_context *ctx, airlock_json config, airlock_error *error) {
  (void)ctx;
  char *name = airlock_json_get_string(config, "name");
  char *url = airlock_json_get_string(config, "url");
  if (!name || !url) return airlock_fail(error, "config.name and config.url are required");
  airlock_json expect_json;
  long expect = airlock_json_get(config, "expect", &expect_json) ? atol(expect_json.text) : 200;
  char *token = airlock_json_get_string(config, "token");
  airlock_buf auth = {0};
  airlock_header headers[1];
  size_t header_count = 0;
  if (token) {
    airlock_buf_printf(&auth, "Bearer %s", token);
    headers[header_count++] = (airlock_header){"Authorization", auth.data};
  }
  airlock_request request = {"GET", url, headers, header_count, NULL, 0};
  airlock_response response;
  if (!airlock_send(&request, &response, error)) return NULL;
  int up = response.status == expect;
  airlock_info("%s: %s (HTTP %u)", name, up ? "up" : "DOWN", response.status);
  airlock_buf out = {0};
  airlock_buf_append(&out, "{\"name\":", 8);
  airlock_buf_json_string(&out, name, strlen(name));
  airlock_buf_printf(&out, ",\"up\":%s,\"status\":%u}", up ? "true" : "false", response.status);
  return out.data;
}
