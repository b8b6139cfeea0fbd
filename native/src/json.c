/* A strict JSON parser (RFC 8259) for manifests: recursive descent, depth <= 64, UTF-8 passed
 * through, \u escapes decoded (surrogate pairs included). Nodes live in a linked list of
 * blocks freed together. */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct block { struct block *next; } block;

struct json_doc {
  block *blocks;
  json_node *root;
};

typedef struct {
  const char *p, *end;
  json_doc *doc;
  char *err;
  size_t err_size;
  int failed;
} parser;

static void *doc_alloc(json_doc *doc, size_t size) {
  block *b = malloc(sizeof(block) + size + 16);
  if (!b) return NULL;
  b->next = doc->blocks;
  doc->blocks = b;
  return (char *)b + sizeof(block) + (16 - sizeof(block) % 16) % 16;
}

static void fail(parser *ps, const char *what) {
  if (!ps->failed && ps->err && ps->err_size)
    snprintf(ps->err, ps->err_size, "%s", what);
  ps->failed = 1;
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex4(parser *ps, unsigned *out) {
  if (ps->end - ps->p < 4) return 0;
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = ps->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return 0;
  }
  ps->p += 4;
  *out = v;
  return 1;
}

static char *parse_string(parser *ps) {
  /* ps->p at the opening quote; the decoded string is never longer than the source. */
  const char *start = ++ps->p;
  const char *q = start;
  while (q < ps->end && *q != '"') q += (*q == '\\' && q + 1 < ps->end) ? 2 : 1;
  if (q >= ps->end) { fail(ps, "unterminated string"); return NULL; }
  char *out = doc_alloc(ps->doc, (size_t)(q - start) + 1);
  if (!out) { fail(ps, "out of memory"); return NULL; }
  size_t n = 0;
  while (ps->p < ps->end && *ps->p != '"') {
    unsigned char c = (unsigned char)*ps->p++;
    if (c < 0x20) { fail(ps, "control character in string"); return NULL; }
    if (c != '\\') { out[n++] = (char)c; continue; }
    if (ps->p >= ps->end) break;
    char e = *ps->p++;
    unsigned cp;
    switch (e) {
      case '"': out[n++] = '"'; break;
      case '\\': out[n++] = '\\'; break;
      case '/': out[n++] = '/'; break;
      case 'b': out[n++] = '\b'; break;
      case 'f': out[n++] = '\f'; break;
      case 'n': out[n++] = '\n'; break;
      case 'r': out[n++] = '\r'; break;
      case 't': out[n++] = '\t'; break;
      case 'u':
        if (!hex4(ps, &cp)) { fail(ps, "bad \\u escape"); return NULL; }
        if (cp >= 0xD800 && cp < 0xDC00) {
          unsigned lo;
          if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') { fail(ps, "lone surrogate"); return NULL; }
          ps->p += 2;
          if (!hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) { fail(ps, "bad surrogate pair"); return NULL; }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) { fail(ps, "lone surrogate"); return NULL; }
        if (cp == 0) { fail(ps, "NUL in string"); return NULL; }
        /* \uXXXX is 6 source bytes, at most 4 UTF-8 bytes: the buffer is large enough. */
        if (cp < 0x80) out[n++] = (char)cp;
        else if (cp < 0x800) { out[n++] = (char)(0xC0 | (cp >> 6)); out[n++] = (char)(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
          out[n++] = (char)(0xE0 | (cp >> 12)); out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
          out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
          out[n++] = (char)(0xF0 | (cp >> 18)); out[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
          out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F)); out[n++] = (char)(0x80 | (cp & 0x3F));
        }
        break;
      default: fail(ps, "bad escape in string"); return NULL;
    }
  }
  ps->p++; /* closing quote */
  out[n] = '\0';
  return out;
}

static json_node *parse_value(parser *ps, int depth);

static json_node *new_node(parser *ps, json_type type) {
  json_node *node = doc_alloc(ps->doc, sizeof(json_node));
  if (!node) { fail(ps, "out of memory"); return NULL; }
  memset(node, 0, sizeof *node);
  node->type = type;
  return node;
}

static json_node *parse_number(parser *ps) {
  const char *s = ps->p;
  int integer = 1;
  if (ps->p < ps->end && *ps->p == '-') ps->p++;
  if (ps->p >= ps->end) { fail(ps, "bad number"); return NULL; }
  if (*ps->p == '0') ps->p++;
  else if (*ps->p >= '1' && *ps->p <= '9') while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  else { fail(ps, "bad number"); return NULL; }
  if (ps->p < ps->end && *ps->p == '.') {
    integer = 0;
    ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') { fail(ps, "bad number"); return NULL; }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    integer = 0;
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') { fail(ps, "bad number"); return NULL; }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  char buf[64];
  size_t len = (size_t)(ps->p - s);
  if (len >= sizeof buf) { /* longer than any number a manifest holds: parse as a huge value */
    json_node *node = new_node(ps, JSON_NUMBER);
    if (node) { node->number = HUGE_VAL; node->is_integer = 0; }
    return node;
  }
  memcpy(buf, s, len);
  buf[len] = '\0';
  json_node *node = new_node(ps, JSON_NUMBER);
  if (!node) return NULL;
  node->number = strtod(buf, NULL);
  node->is_integer = integer;
  return node;
}

static json_node *parse_container(parser *ps, int depth, int object) {
  json_node *node = new_node(ps, object ? JSON_OBJECT : JSON_ARRAY);
  if (!node) return NULL;
  ps->p++;
  skip_ws(ps);
  json_node **tail = &node->child;
  if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) { ps->p++; return node; }
  for (;;) {
    char *key = NULL;
    skip_ws(ps);
    if (object) {
      if (ps->p >= ps->end || *ps->p != '"') { fail(ps, "expected a member name"); return NULL; }
      key = parse_string(ps);
      if (!key) return NULL;
      skip_ws(ps);
      if (ps->p >= ps->end || *ps->p != ':') { fail(ps, "expected ':'"); return NULL; }
      ps->p++;
    }
    json_node *child = parse_value(ps, depth + 1);
    if (!child) return NULL;
    child->key = key;
    *tail = child;
    tail = &child->next;
    node->count++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
    if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) { ps->p++; return node; }
    fail(ps, object ? "expected ',' or '}'" : "expected ',' or ']'");
    return NULL;
  }
}

static int literal(parser *ps, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return 0;
  ps->p += n;
  return 1;
}

static json_node *parse_value(parser *ps, int depth) {
  if (depth > JSON_MAX_DEPTH) { fail(ps, "nested too deeply"); return NULL; }
  skip_ws(ps);
  if (ps->p >= ps->end) { fail(ps, "unexpected end"); return NULL; }
  char c = *ps->p;
  if (c == '{' || c == '[') return parse_container(ps, depth, c == '{');
  if (c == '"') {
    json_node *node = new_node(ps, JSON_STRING);
    if (node && !(node->string = parse_string(ps))) return NULL;
    return node;
  }
  if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps);
  json_node *node = NULL;
  if (literal(ps, "true")) { if ((node = new_node(ps, JSON_BOOL))) node->number = 1; }
  else if (literal(ps, "false")) node = new_node(ps, JSON_BOOL);
  else if (literal(ps, "null")) node = new_node(ps, JSON_NULL);
  else fail(ps, "unexpected character");
  return node;
}

json_doc *json_parse(const char *text, size_t len, char *err, size_t err_size) {
  json_doc *doc = calloc(1, sizeof *doc);
  if (!doc) {
    if (err && err_size) snprintf(err, err_size, "out of memory");
    return NULL;
  }
  parser ps = {text, text + len, doc, err, err_size, 0};
  doc->root = parse_value(&ps, 0);
  if (doc->root) {
    skip_ws(&ps);
    if (ps.p != ps.end) fail(&ps, "trailing characters");
  }
  if (ps.failed || !doc->root) {
    if (err && err_size) {
      char what[96];
      snprintf(what, sizeof what, "%s", err);
      snprintf(err, err_size, "%s at byte %ld", what, (long)(ps.p - text));
    }
    json_free(doc);
    return NULL;
  }
  return doc;
}

const json_node *json_root(const json_doc *doc) { return doc ? doc->root : NULL; }

void json_free(json_doc *doc) {
  if (!doc) return;
  for (block *b = doc->blocks, *next; b; b = next) {
    next = b->next;
    free(b);
  }
  free(doc);
}

const json_node *json_get(const json_node *object, const char *key) {
  if (!object || object->type != JSON_OBJECT) return NULL;
  const json_node *found = NULL;
  for (const json_node *c = object->child; c; c = c->next)
    if (strcmp(c->key, key) == 0) found = c; /* the last duplicate wins, as in Python's json */
  return found;
}
