/* A small strict JSON reader for manifests: a tree of nodes in one arena, depth-limited. */
#ifndef SAME_EDGE_JSON_H
#define SAME_EDGE_JSON_H
#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_node {
  json_type type;
  double number;       /* JSON_NUMBER, JSON_BOOL (0/1) */
  int is_integer;      /* JSON_NUMBER written without fraction or exponent */
  char *string;        /* JSON_STRING: NUL-terminated (a NUL inside is refused) */
  char *text;          /* JSON_NUMBER: as written */
  char *key;           /* member name when inside an object */
  struct json_node *child, *next; /* first element/member (document order); next sibling */
  struct json_node **members;     /* JSON_OBJECT: its members sorted by name (unique) */
  size_t count;        /* elements or members */
} json_node;

typedef struct json_doc json_doc;

/* Parse text[0..len); NULL on error with a reason in err. */
json_doc *json_parse(const char *text, size_t len, char *err, size_t err_size);
const json_node *json_root(const json_doc *doc);
void json_free(json_doc *doc);
const json_node *json_get(const json_node *object, const char *key);
/* Equal values, types and all (1, 1.0 and true differ; integers by their digits, -0 being 0). */
int json_equal(const json_node *a, const json_node *b);
/* `node` as brief JSON for a one-line message (objects as {...}, at most 60 bytes, cut with "..."). */
void json_brief(const json_node *node, char *buf, size_t size);
#endif
