/* The {{TYPE}} action node: GETs config.url and returns its status and body. */
#include "airlock.h"

char *node_run(const airlock_context *ctx, airlock_json config, airlock_error *error) {
  (void)ctx;
  char *url = airlock_json_get_string(config, "url");
  if (!url) return airlock_fail(error, "config.url is required (a string)");
  airlock_response response;
  if (!airlock_get(url, &response, error)) return NULL;
  airlock_info("GET %s -> HTTP %u", url, response.status);
  if (response.status < 200 || response.status > 299)
    return airlock_fail(error, "GET %s answered HTTP %u", url, response.status);
  airlock_buf out = {0};
  airlock_buf_printf(&out, "{\"status\":%u,\"data\":", response.status);
  airlock_buf_json_or_text(&out, response.body, response.body_len);
  airlock_buf_append(&out, "}", 1);
  return out.data;
}
