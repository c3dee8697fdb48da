/* The C helper over the bindings wit-bindgen generates from wit/node.wit (build/bindings):
 * the component's `run` export, the egress and log imports, and a small JSON reader and
 * writer. See airlock.h. */
#include "airlock.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "action_node.h"

static void buf_vprintf(airlock_buf *buf, const char *format, va_list args);

/* ---- The export: config in, node_run, output or error out. ---- */

/* A NUL-terminated copy of a WIT string. */
static char *c_string(const action_node_string_t *s) {
  char *copy = malloc(s->len + 1);
  memcpy(copy, s->ptr, s->len);
  copy[s->len] = 0;
  return copy;
}

bool exports_action_node_run(action_node_context_t *wit_ctx, action_node_string_t *config,
                             action_node_string_t *ret, action_node_string_t *err) {
  airlock_context ctx = {c_string(&wit_ctx->workflow), c_string(&wit_ctx->run),
                         c_string(&wit_ctx->node_run), c_string(&wit_ctx->node)};
  airlock_json json = {(const char *)config->ptr, config->len};
  if (!airlock_json_valid(json.text, json.len)) {
    action_node_string_dup(err, "config is not valid JSON");
    return false;
  }
  airlock_error error = {NULL};
  char *output = node_run(&ctx, json, &error);
  if (!output) {
    action_node_string_dup(err, error.message ? error.message : "the node failed");
    return false;
  }
  if (!airlock_json_valid(output, strlen(output))) {
    action_node_string_dup(err, "the node's output is not valid JSON");
    return false;
  }
  action_node_string_set(ret, output);
  return true;
}

char *airlock_fail(airlock_error *error, const char *format, ...) {
  airlock_buf message = {0};
  va_list args;
  va_start(args, format);
  buf_vprintf(&message, format, args);
  va_end(args);
  error->message = message.data;
  return NULL;
}

/* ---- Egress. ---- */

static action_node_string_t wit_string(const char *text) {
  action_node_string_t s;
  action_node_string_set(&s, text);
  return s;
}

static char *describe_egress_error(const airlock_node_egress_error_t *e) {
  airlock_buf text = {0};
  switch (e->tag) {
  case AIRLOCK_NODE_EGRESS_ERROR_DENIED:
    airlock_buf_printf(&text, "request denied by the egress policy: %.*s", (int)e->val.denied.len,
                       (const char *)e->val.denied.ptr);
    break;
  case AIRLOCK_NODE_EGRESS_ERROR_INVALID_REQUEST:
    airlock_buf_printf(&text, "invalid request: %.*s", (int)e->val.invalid_request.len,
                       (const char *)e->val.invalid_request.ptr);
    break;
  case AIRLOCK_NODE_EGRESS_ERROR_TIMEOUT:
    airlock_buf_printf(&text, "request timed out");
    break;
  case AIRLOCK_NODE_EGRESS_ERROR_CONNECTION:
    airlock_buf_printf(&text, "connection failed: %.*s", (int)e->val.connection.len,
                       (const char *)e->val.connection.ptr);
    break;
  default:
    airlock_buf_printf(&text, "response larger than the %llu-byte limit",
                       (unsigned long long)e->val.too_large);
  }
  return text.data;
}

bool airlock_send(const airlock_request *request, airlock_response *response,
                  airlock_error *error) {
  action_node_tuple2_string_string_t *headers =
      calloc(request->header_count ? request->header_count : 1, sizeof *headers);
  for (size_t i = 0; i < request->header_count; i++) {
    headers[i].f0 = wit_string(request->headers[i].name);
    headers[i].f1 = wit_string(request->headers[i].value);
  }
  airlock_node_egress_request_t wit_request = {
      .method = wit_string(request->method),
      .url = wit_string(request->url),
      .headers = {headers, request->header_count},
      .body = {request->body != NULL, {(uint8_t *)request->body, request->body_len}},
      .timeout_ms = {false, 0},
  };
  airlock_node_egress_response_t wit_response;
  airlock_node_egress_error_t wit_error;
  bool sent = airlock_node_egress_send(&wit_request, &wit_response, &wit_error);
  free(headers);
  if (!sent) {
    error->message = describe_egress_error(&wit_error);
    return false;
  }
  response->status = wit_response.status;
  response->header_count = wit_response.headers.len;
  response->headers = calloc(wit_response.headers.len + 1, sizeof *response->headers);
  for (size_t i = 0; i < wit_response.headers.len; i++) {
    response->headers[i].name = c_string(&wit_response.headers.ptr[i].f0);
    response->headers[i].value = c_string(&wit_response.headers.ptr[i].f1);
  }
  response->body = wit_response.body.ptr;
  response->body_len = wit_response.body.len;
  return true;
}

bool airlock_get(const char *url, airlock_response *response, airlock_error *error) {
  airlock_request request = {"GET", url, NULL, 0, NULL, 0};
  return airlock_send(&request, response, error);
}

/* ---- Logging. ---- */

static void log_at(airlock_node_log_level_t level, const char *format, va_list args) {
  airlock_buf line = {0};
  buf_vprintf(&line, format, args);
  action_node_string_t message = {(uint8_t *)line.data, line.len};
  airlock_node_log_log(level, &message);
  free(line.data);
}

#define LOG_FUNCTION(name, level)                                                            \
  void name(const char *format, ...) {                                                       \
    va_list args;                                                                            \
    va_start(args, format);                                                                  \
    log_at(level, format, args);                                                             \
    va_end(args);                                                                            \
  }
LOG_FUNCTION(airlock_debug, AIRLOCK_NODE_LOG_LEVEL_DEBUG)
LOG_FUNCTION(airlock_info, AIRLOCK_NODE_LOG_LEVEL_INFO)
LOG_FUNCTION(airlock_warn, AIRLOCK_NODE_LOG_LEVEL_WARN)
LOG_FUNCTION(airlock_error_log, AIRLOCK_NODE_LOG_LEVEL_ERROR)

/* ---- JSON reading: a small validating scanner, enough for configs and bodies. ---- */

static const char *skip_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static const char *scan_value(const char *p, const char *end, int depth);

/* Returns the position after a string starting at p (at the quote), or NULL. */
static const char *scan_string(const char *p, const char *end) {
  if (p >= end || *p != '"') return NULL;
  for (p++; p < end; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') return p + 1;
    if (c < 0x20) return NULL;
    if (c == '\\') {
      if (++p >= end) return NULL;
      if (*p == 'u') {
        for (int i = 0; i < 4; i++)
          if (++p >= end || !isxdigit((unsigned char)*p)) return NULL;
      } else if (!strchr("\"\\/bfnrt", *p)) {
        return NULL;
      }
    }
  }
  return NULL;
}

static const char *scan_number(const char *p, const char *end) {
  const char *start = p;
  if (p < end && *p == '-') p++;
  if (p < end && *p == '0') {
    p++;
  } else {
    if (p >= end || !isdigit((unsigned char)*p)) return NULL;
    while (p < end && isdigit((unsigned char)*p)) p++;
  }
  if (p < end && *p == '.') {
    if (++p >= end || !isdigit((unsigned char)*p)) return NULL;
    while (p < end && isdigit((unsigned char)*p)) p++;
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < end && (*p == '+' || *p == '-')) p++;
    if (p >= end || !isdigit((unsigned char)*p)) return NULL;
    while (p < end && isdigit((unsigned char)*p)) p++;
  }
  return p > start ? p : NULL;
}

static const char *scan_literal(const char *p, const char *end, const char *word) {
  size_t n = strlen(word);
  return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* Objects and arrays: `close` is '}' or ']'; members of objects are "key": value. */
static const char *scan_container(const char *p, const char *end, char close, int depth) {
  p = skip_ws(p + 1, end);
  if (p < end && *p == close) return p + 1;
  for (;;) {
    if (close == '}') {
      if (!(p = scan_string(p, end))) return NULL;
      p = skip_ws(p, end);
      if (p >= end || *p != ':') return NULL;
      p = skip_ws(p + 1, end);
    }
    if (!(p = scan_value(p, end, depth + 1))) return NULL;
    p = skip_ws(p, end);
    if (p < end && *p == ',') {
      p = skip_ws(p + 1, end);
    } else if (p < end && *p == close) {
      return p + 1;
    } else {
      return NULL;
    }
  }
}

static const char *scan_value(const char *p, const char *end, int depth) {
  if (p >= end || depth > 512) return NULL;
  switch (*p) {
  case '{': return scan_container(p, end, '}', depth);
  case '[': return scan_container(p, end, ']', depth);
  case '"': return scan_string(p, end);
  case 't': return scan_literal(p, end, "true");
  case 'f': return scan_literal(p, end, "false");
  case 'n': return scan_literal(p, end, "null");
  default: return scan_number(p, end);
  }
}

bool airlock_json_valid(const char *text, size_t len) {
  const char *end = text + len;
  const char *p = scan_value(skip_ws(text, end), end, 0);
  return p && skip_ws(p, end) == end;
}

static void put_utf8(airlock_buf *out, uint32_t cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp, n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
  } else if (cp < 0x10000) {
    b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
  } else {
    b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
  }
  airlock_buf_append(out, b, n);
}

static uint32_t hex4(const char *p) {
  char digits[5] = {p[0], p[1], p[2], p[3], 0};
  return (uint32_t)strtoul(digits, NULL, 16);
}

char *airlock_json_string(airlock_json value) {
  const char *p = value.text, *end = value.text + value.len;
  if (p >= end || *p != '"') return NULL;
  airlock_buf out = {0};
  airlock_buf_append(&out, "", 0);
  for (p++; p < end && *p != '"'; p++) {
    if (*p != '\\') {
      airlock_buf_append(&out, p, 1);
      continue;
    }
    p++;
    switch (*p) {
    case 'b': airlock_buf_append(&out, "\b", 1); break;
    case 'f': airlock_buf_append(&out, "\f", 1); break;
    case 'n': airlock_buf_append(&out, "\n", 1); break;
    case 'r': airlock_buf_append(&out, "\r", 1); break;
    case 't': airlock_buf_append(&out, "\t", 1); break;
    case 'u': {
      uint32_t cp = hex4(p + 1);
      p += 4;
      if (cp >= 0xD800 && cp < 0xDC00 && end - p > 6 && p[1] == '\\' && p[2] == 'u') {
        uint32_t low = hex4(p + 3);
        if (low >= 0xDC00 && low < 0xE000) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          p += 6;
        }
      }
      put_utf8(&out, cp);
      break;
    }
    default: airlock_buf_append(&out, p, 1); /* \" \\ \/ */
    }
  }
  return out.data;
}

bool airlock_json_get(airlock_json object, const char *key, airlock_json *value) {
  const char *end = object.text + object.len;
  const char *p = skip_ws(object.text, end);
  if (p >= end || *p != '{') return false;
  p = skip_ws(p + 1, end);
  while (p < end && *p == '"') {
    const char *key_end = scan_string(p, end);
    if (!key_end) return false;
    char *name = airlock_json_string((airlock_json){p, (size_t)(key_end - p)});
    bool match = name && strcmp(name, key) == 0;
    free(name);
    p = skip_ws(skip_ws(key_end, end) + 1, end); /* past ':' */
    const char *value_end = scan_value(p, end, 1);
    if (!value_end) return false;
    if (match) {
      *value = (airlock_json){p, (size_t)(value_end - p)};
      return true;
    }
    p = skip_ws(value_end, end);
    if (p < end && *p == ',') p = skip_ws(p + 1, end);
  }
  return false;
}

char *airlock_json_get_string(airlock_json object, const char *key) {
  airlock_json value;
  return airlock_json_get(object, key, &value) ? airlock_json_string(value) : NULL;
}

/* ---- Output building. ---- */

void airlock_buf_append(airlock_buf *buf, const char *text, size_t len) {
  if (buf->len + len + 1 > buf->cap) {
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < buf->len + len + 1) cap *= 2;
    buf->data = realloc(buf->data, cap);
    buf->cap = cap;
  }
  memcpy(buf->data + buf->len, text, len);
  buf->len += len;
  buf->data[buf->len] = 0;
}

static void buf_vprintf(airlock_buf *buf, const char *format, va_list args) {
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(NULL, 0, format, copy);
  va_end(copy);
  if (n < 0) return;
  char *text = malloc((size_t)n + 1);
  vsnprintf(text, (size_t)n + 1, format, args);
  airlock_buf_append(buf, text, (size_t)n);
  free(text);
}

void airlock_buf_printf(airlock_buf *buf, const char *format, ...) {
  va_list args;
  va_start(args, format);
  buf_vprintf(buf, format, args);
  va_end(args);
}

void airlock_buf_json_string(airlock_buf *buf, const char *text, size_t len) {
  airlock_buf_append(buf, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '"' || c == '\\') {
      char escaped[2] = {'\\', (char)c};
      airlock_buf_append(buf, escaped, 2);
    } else if (c < 0x20) {
      airlock_buf_printf(buf, "\\u%04x", c);
    } else {
      airlock_buf_append(buf, (const char *)&text[i], 1);
    }
  }
  airlock_buf_append(buf, "\"", 1);
}

void airlock_buf_json_or_text(airlock_buf *buf, const uint8_t *body, size_t len) {
  if (airlock_json_valid((const char *)body, len)) {
    airlock_buf_append(buf, (const char *)body, len);
  } else {
    airlock_buf_json_string(buf, (const char *)body, len);
  }
}
