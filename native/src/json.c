/* A strict JSON parser (RFC 8259) for manifests: recursive descent, depth <= 64, well-formed UTF-8
 * only, \u escapes decoded (surrogate pairs included; lone surrogates and NUL refused), numbers
 * within a double's range, member names unique. same_edge/manifest.py's loads_json reads alike.
 * Nodes live in a linked list of blocks freed together. */
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

/* The length of the well-formed UTF-8 sequence at p (Unicode's table 3-7: no overlong forms, no
 * surrogates, nothing past U+10FFFF), 0 if there is none: what Python's UTF-8 decoder refuses. */
static size_t utf8_length(const unsigned char *p, const unsigned char *end) {
  unsigned char c = p[0], lo = 0x80, hi = 0xBF;
  size_t n;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
  else return 0;
  if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) return 0;
  for (size_t i = 2; i < n; i++)
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
  return n;
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
    if (c >= 0x80) { /* a UTF-8 sequence: its bytes are never '"' or '\\', so it lies before the quote */
      size_t len = utf8_length((const unsigned char *)ps->p - 1, (const unsigned char *)ps->end);
      if (!len) { ps->p--; fail(ps, "invalid UTF-8 in string"); return NULL; }
      memcpy(out + n, ps->p - 1, len);
      n += len, ps->p += len - 1;
      continue;
    }
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
  size_t len = (size_t)(ps->p - s);
  json_node *node = new_node(ps, JSON_NUMBER);
  char *text = node ? doc_alloc(ps->doc, len + 1) : NULL;
  if (!text) { fail(ps, "out of memory"); return NULL; }
  memcpy(text, s, len);
  text[len] = '\0';
  node->text = text;
  node->number = strtod(text, NULL);
  node->is_integer = integer;
  /* 1e400, or an integer of 310 digits: no number a manifest holds, and Python refuses it too. */
  if (!isfinite(node->number)) { fail(ps, "number beyond a double's range"); return NULL; }
  return node;
}

static int by_key(const void *a, const void *b) {
  return strcmp((*(json_node *const *)a)->key, (*(json_node *const *)b)->key);
}

/* Sort an object's members by name for json_get, refusing a name given twice: which of two values
 * a reader takes is its own choice. O(n log n): a 1 MB manifest may hold 100k members. */
static int index_members(parser *ps, json_node *object) {
  if (!object->count) return 1;
  json_node **members = doc_alloc(ps->doc, object->count * sizeof *members);
  if (!members) { fail(ps, "out of memory"); return 0; }
  size_t i = 0;
  for (json_node *c = object->child; c; c = c->next) members[i++] = c;
  qsort(members, object->count, sizeof *members, by_key);
  for (i = 1; i < object->count; i++)
    if (strcmp(members[i - 1]->key, members[i]->key) == 0) { fail(ps, "duplicate member name"); return 0; }
  object->members = members;
  return 1;
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
    if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
      ps->p++;
      return !object || index_members(ps, node) ? node : NULL;
    }
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
  size_t lo = 0, hi = object->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int order = strcmp(key, object->members[mid]->key);
    if (!order) return object->members[mid];
    if (order < 0) hi = mid;
    else lo = mid + 1;
  }
  return NULL;
}

int json_equal(const json_node *a, const json_node *b) {
  if (a->type != b->type || a->count != b->count) return 0;
  switch (a->type) {
    case JSON_NULL: return 1;
    case JSON_BOOL: return a->number == b->number;
    case JSON_NUMBER: /* doubles lose integers' digits past 2**53; Python compares ints exactly */
      if (a->is_integer != b->is_integer) return 0;
      return a->is_integer ? strcmp(a->text, b->text) == 0 || (a->number == 0 && b->number == 0) : a->number == b->number;
    case JSON_STRING: return strcmp(a->string, b->string) == 0;
    case JSON_ARRAY:
      for (const json_node *x = a->child, *y = b->child; x; x = x->next, y = y->next)
        if (!json_equal(x, y)) return 0;
      return 1;
    case JSON_OBJECT:
      for (const json_node *x = a->child; x; x = x->next) {
        const json_node *y = json_get(b, x->key);
        if (!y || !json_equal(x, y)) return 0;
      }
      return 1;
  }
  return 0;
}

typedef struct {
  char *buf;
  size_t size, len; /* len counts what did not fit too */
} writer;

static void put(writer *w, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++, w->len++)
    if (w->len + 1 < w->size) w->buf[w->len] = s[i];
}

static void brief(writer *w, const json_node *n) {
  static const char *const escapes[0x20] = {[8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r"};
  char tmp[8];
  switch (n->type) {
    case JSON_NULL: put(w, "null", 4); return;
    case JSON_BOOL: put(w, n->number ? "true" : "false", n->number ? 4 : 5); return;
    case JSON_NUMBER: put(w, n->text, strlen(n->text)); return;
    case JSON_OBJECT: put(w, "{...}", 5); return;
    case JSON_STRING: /* escaped as Python's json.dumps(ensure_ascii=False) escapes */
      put(w, "\"", 1);
      for (const unsigned char *c = (const unsigned char *)n->string; *c && w->len < w->size; c++) {
        if (*c == '"' || *c == '\\') put(w, "\\", 1), put(w, (const char *)c, 1);
        else if (*c < 0x20 && escapes[*c]) put(w, escapes[*c], 2);
        else if (*c < 0x20) put(w, tmp, (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *c));
        else put(w, (const char *)c, 1);
      }
      put(w, "\"", 1);
      return;
    case JSON_ARRAY: {
      int k = 0;
      put(w, "[", 1);
      for (const json_node *c = n->child; c && w->len < w->size; c = c->next, k++) {
        if (k) put(w, ", ", 2);
        if (k == 16) { put(w, "...", 3); break; }
        brief(w, c);
      }
      put(w, "]", 1);
      return;
    }
  }
}

void json_brief(const json_node *node, char *buf, size_t size) {
  if (!buf || !size) return;
  char line[64]; /* 60 bytes and the cut */
  writer w = {line, sizeof line, 0};
  brief(&w, node);
  size_t n = w.len < sizeof line ? w.len : sizeof line - 1;
  if (w.len > 60) { /* cut on a character boundary, as Python cuts at 57 characters */
    n = 57;
    while (n && ((unsigned char)line[n] & 0xC0) == 0x80) n--;
    memcpy(line + n, "...", 3);
    n += 3;
  }
  line[n] = '\0';
  snprintf(buf, size, "%s", line);
}
