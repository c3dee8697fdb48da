/* Write an Airlock action node in a few lines of C.
 *
 * A node defines `node_run`: it gets the node's config (every template already rendered by the
 * host) as a JSON value and returns its output as JSON text (malloc'd), or NULL after
 * `airlock_fail` to fail the node run with a message. The only way out of the sandbox is
 * `airlock_send`/`airlock_get`, which go through the host's egress gate: the gate checks the
 * destination against the operator's policy and the node's manifest, puts secret values where
 * the node holds secret handles (the node never sees a secret), and audits the attempt.
 *
 * Memory: each node run is a fresh instance that is thrown away afterwards, so nodes need not
 * free what they allocate. */
#ifndef AIRLOCK_H
#define AIRLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A JSON value: a slice of the config text (valid JSON, checked before node_run is called). */
typedef struct {
  const char *text;
  size_t len;
} airlock_json;

/* Where this node run sits (all NUL-terminated). */
typedef struct {
  const char *workflow, *run, *node_run, *node;
} airlock_context;

/* Why a node run failed; set it with airlock_fail. */
typedef struct {
  char *message;
} airlock_error;

typedef struct {
  const char *name, *value;
} airlock_header;

typedef struct {
  const char *method; /* GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS */
  const char *url;    /* may hold secret handles in its path and query */
  const airlock_header *headers;
  size_t header_count;
  const uint8_t *body; /* NULL: no body */
  size_t body_len;
} airlock_request;

/* Redirects are not followed: a 3xx arrives as it is. */
typedef struct {
  uint16_t status;
  airlock_header *headers;
  size_t header_count;
  uint8_t *body;
  size_t body_len;
} airlock_response;

/* A growing, NUL-terminated text buffer for building output. Start with {0}. */
typedef struct {
  char *data;
  size_t len, cap;
} airlock_buf;

/* The node: implement it. Return JSON text (malloc'd, e.g. an airlock_buf's data), or NULL
 * after airlock_fail. */
char *node_run(const airlock_context *ctx, airlock_json config, airlock_error *error);

/* Sets the failure message (printf-style) and returns NULL, so `return airlock_fail(...)`. */
char *airlock_fail(airlock_error *error, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/* Sends a request through the egress gate. false: no response (denied, invalid, timeout,
 * connection, too large) and *error says why. */
bool airlock_send(const airlock_request *request, airlock_response *response,
                  airlock_error *error);
bool airlock_get(const char *url, airlock_response *response, airlock_error *error);

/* Log lines go to the node run's logs (printf-style). */
void airlock_debug(const char *format, ...) __attribute__((format(printf, 1, 2)));
void airlock_info(const char *format, ...) __attribute__((format(printf, 1, 2)));
void airlock_warn(const char *format, ...) __attribute__((format(printf, 1, 2)));
void airlock_error_log(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* JSON reading. `airlock_json_get` finds an object's member; `airlock_json_string` returns a
 * string value unescaped (malloc'd), or NULL when the value is not a string;
 * `airlock_json_get_string` does both. `airlock_json_valid` checks a whole text. */
bool airlock_json_get(airlock_json object, const char *key, airlock_json *value);
char *airlock_json_string(airlock_json value);
char *airlock_json_get_string(airlock_json object, const char *key);
bool airlock_json_valid(const char *text, size_t len);

/* Output building. */
void airlock_buf_printf(airlock_buf *buf, const char *format, ...)
    __attribute__((format(printf, 2, 3)));
void airlock_buf_append(airlock_buf *buf, const char *text, size_t len);
/* Appends `text` as a JSON string literal, quoted and escaped. */
void airlock_buf_json_string(airlock_buf *buf, const char *text, size_t len);
/* Appends a response body as JSON when it is JSON, else as a JSON string. */
void airlock_buf_json_or_text(airlock_buf *buf, const uint8_t *body, size_t len);

#endif
