/* libsame_edge: the SAME streaming host loop of same_edge/codec.py, in C, on LiteRT's C API.
 *
 * A stream is a sequence of window calls (whole chunks plus a carried state) and a flush, exactly
 * as the Python runtime drives them: the same window plan (largest first), the same `first` flag
 * (SAME-S) or key bias (SAME-L, same_edge/sliding.py), start skips, zero padding of an odd tail
 * and trimming of the flush, so the outputs are bit-identical. same_edge/codec.py is the
 * reference; tests/test_native.py holds the two bit-identical (offline, odd lengths, random push
 * sizes, 1 and 2 threads, SAME-S and SAME-L, under ASan). */
#define _GNU_SOURCE
#include "same_edge.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "litert_api.h"
#include "sha256.h"

#define SE_MAX_WINDOWS 16
#define SE_MAX_IO 8
#define SE_MAX_THREADS 256
#define SE_MSG 512
#define MANIFEST_MAX_BYTES (1u << 20) /* a real manifest is a few kB */

enum role { R_AUDIO, R_LATENTS, R_KEEP, R_STATE, R_CONTEXT, R_FIRST, R_KEY_BIAS, R_NROLES };
static const char *const ROLE_NAMES[R_NROLES] = {"audio", "latents", "keep", "state", "context", "first", "key_bias"};

typedef struct tensor_spec {
  int role;
  int rank;
  int dims[LITERT_TENSOR_MAX_RANK];
  size_t count; /* elements */
  LiteRtRankedTensorType type;
} tensor_spec;

typedef struct sig_info {
  LiteRtParamIndex index; /* signature index in the graph */
  int window;             /* chunks; 0 for the flush signature (SAME-S only) */
  size_t n_in, n_out;
  tensor_spec in[SE_MAX_IO], out[SE_MAX_IO];
} sig_info;

/* Where this library's messages go: the model's log callback, from its options. */
typedef struct logger {
  se_log_callback callback;
  void *user_data;
  se_log_level level;
} logger;

typedef struct graph {
  int side;       /* SE_SIDE_ENCODER or SE_SIDE_DECODER */
  uint8_t *bytes; /* the graph file, read once: what was hashed is what LiteRT runs */
  size_t size;
  LiteRtModel model;
  LiteRtOptions options;
  LiteRtCompiledModel compiled;
  sig_info sigs[SE_MAX_WINDOWS]; /* one per model window, same order */
  sig_info flush;
  pthread_mutex_t run_lock; /* one compiled model runs one signature at a time */
  int lock_ready;
} graph;

struct se_model {
  LiteRtEnvironment env;
  int sample_rate, channels, latent_dim, hop, fpc, chunk_samples;
  int sliding, window_frames; /* SAME-L's sliding-window attention: no flush signature, a key bias per window */
  int n_windows, windows[SE_MAX_WINDOWS];
  int state_rank, state_dims[LITERT_TENSOR_MAX_RANK];
  int context_rank, context_dims[LITERT_TENSOR_MAX_RANK];
  int start_skip_frames, flush_frames, start_skip_samples, flush_samples;
  int threads, sides;
  char model_id[40];
  char precision[32];
  graph *enc, *dec;
  logger log;
  atomic_int refs; /* the caller's (until se_model_close) and one per stream: the last frees the model */
};

struct se_stream {
  se_model *model;
  graph *g;
  int side;
  int rows_in, rows_out;
  size_t unit_in, unit_out; /* input and output columns per chunk */
  int n_windows, windows[SE_MAX_WINDOWS], sig_of[SE_MAX_WINDOWS];
  size_t skip;              /* output columns still to drop from the first window */
  size_t flush_cols;        /* columns of the flush signature's output (SAME-L: of its padding windows') */
  size_t start_skip;        /* skip at the start, for a reset */
  int first, flushed, failed;
  size_t depth;             /* SAME-L: the side's blocks (state_shape[0]), the key bias's rows */
  uint64_t frames_run;      /* SAME-L: frames given to the window graphs, the key bias's position */
  uint64_t total_frames;    /* SAME-L: the stream's length in frames, UINT64_MAX until the flush */
  atomic_flag busy;         /* held by the one call running: a second thread's is refused */
  const se_run_options *run;/* an offline call's callbacks, NULL for an app's stream */
  size_t pending_len;       /* input columns waiting for a whole chunk (< unit_in) */
  uint64_t in_total, out_total;
  float *pending;           /* [rows_in][unit_in] */
  /* Host memory shared by every signature's tensor buffers of the same role. */
  float *host[R_NROLES], *host_out[R_NROLES];
  size_t host_count[R_NROLES], host_out_count[R_NROLES];
  LiteRtTensorBuffer bufs_in[SE_MAX_WINDOWS + 1][SE_MAX_IO], bufs_out[SE_MAX_WINDOWS + 1][SE_MAX_IO];
};

/* ---------- messages ---------- */

/* Each thread's latest failure: a model shared by threads never hands one thread another's message. */
static _Thread_local char last_error[SE_MSG];

static void log_message(const logger *lg, se_log_level level, const char *message) {
  if (lg && lg->callback && level >= lg->level) lg->callback(level, message, lg->user_data);
}

static void say(const logger *lg, se_log_level level, const char *fmt, ...) {
  if (!lg || !lg->callback || level < lg->level) return;
  char msg[SE_MSG];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lg->callback(level, msg, lg->user_data);
}

/* Record a failure as this thread's message, tell the log, and return its status. */
static se_status vfail(const logger *lg, se_status st, const char *fmt, va_list ap) {
  vsnprintf(last_error, sizeof last_error, fmt, ap);
  log_message(lg, SE_LOG_ERROR, last_error);
  return st;
}

static se_status model_fail(const se_model *m, se_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(m ? &m->log : NULL, st, fmt, ap);
  va_end(ap);
  return st;
}

static se_status stream_fail(const se_stream *s, se_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(&s->model->log, st, fmt, ap);
  va_end(ap);
  return st;
}

static se_status open_fail(const logger *lg, se_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfail(lg, st, fmt, ap);
  va_end(ap);
  return st;
}

const char *se_last_error(void) { return last_error; }
const char *se_model_error(const se_model *m) { return last_error; }

const char *se_version(void) {
#define SE_STR2(x) #x
#define SE_STR(x) SE_STR2(x)
  return SE_STR(SE_VERSION_MAJOR) "." SE_STR(SE_VERSION_MINOR) "." SE_STR(SE_VERSION_PATCH);
}

/* LiteRT exports no version call: a runtime is known by the newest entry points it has. */
static int litert_at_least_2_3(void) { return LiteRtCompiledModelIsNonCpuFullyAccelerated != NULL; }

const char *se_litert_version(void) {
  if (litert_at_least_2_3()) return "2.3";
  if (LiteRtGetCompiledModelEnvironment) return "2.2";
  return "<2.2";
}

int se_version_number(void) { return SE_VERSION_MAJOR * 10000 + SE_VERSION_MINOR * 100 + SE_VERSION_PATCH; }

const char *se_status_name(se_status status) {
  switch (status) {
    case SE_OK: return "SE_OK";
    case SE_ERR_ARGUMENT: return "SE_ERR_ARGUMENT";
    case SE_ERR_MODEL: return "SE_ERR_MODEL";
    case SE_ERR_RUNTIME: return "SE_ERR_RUNTIME";
    case SE_ERR_STATE: return "SE_ERR_STATE";
    case SE_ERR_NO_MEMORY: return "SE_ERR_NO_MEMORY";
    case SE_ERR_BUFFER_TOO_SMALL: return "SE_ERR_BUFFER_TOO_SMALL";
    case SE_ERR_NONFINITE: return "SE_ERR_NONFINITE";
    case SE_ERR_CANCELLED: return "SE_ERR_CANCELLED";
  }
  return "SE_ERR_UNKNOWN";
}

void se_model_options_init(se_model_options *o) {
  if (!o) return;
  memset(o, 0, sizeof *o);
  o->struct_size = sizeof *o;
}

/* The 1.0 sizes, which a struct_size of 0 stands for, and where the fields this library knows
 * end (se_model_options' reserved word is not one of them: it must be zero). */
#define MODEL_OPTIONS_V1_SIZE sizeof(se_model_options)
#define MODEL_OPTIONS_KNOWN offsetof(se_model_options, reserved)
#define RUN_OPTIONS_V1_SIZE sizeof(se_run_options)
#define RUN_OPTIONS_KNOWN sizeof(se_run_options)
_Static_assert(sizeof(se_model_options) == offsetof(se_model_options, reserved) + sizeof(int), "no tail padding");
_Static_assert(sizeof(se_run_options) == offsetof(se_run_options, user_data) + sizeof(void *), "no tail padding");

/* Copy an app's options struct, compiled against any 1.x header, over zeroed defaults: only the
 * bytes it has (struct_size, its first member), and from a newer header's larger struct only if
 * every byte past the fields this library knows is zero (a field it would ignore is an error). */
static int read_struct(void *dst, size_t dst_size, size_t v1_size, size_t known, const void *src, const char *name,
                       const logger *lg) {
  memset(dst, 0, dst_size);
  if (!src) return 1;
  size_t n;
  memcpy(&n, src, sizeof n);
  if (n == 0) n = v1_size;
  if (n < sizeof(size_t)) {
    open_fail(lg, SE_ERR_ARGUMENT, "%s.struct_size is %zu: set it with sizeof, or to 0", name, n);
    return 0;
  }
  for (size_t i = known; i < n; i++)
    if (((const unsigned char *)src)[i]) {
      open_fail(lg, SE_ERR_ARGUMENT, "%s of %zu bytes sets a field this library (%s, %zu bytes) does not know: "
                "link a newer libsame_edge", name, n, se_version(), known);
      return 0;
    }
  memcpy(dst, src, n < known ? n : known);
  return 1;
}

/* ---------- manifest ---------- */

static int get_int(const json_node *obj, const char *key, long long lo, long long hi, long long *out) {
  const json_node *n = json_get(obj, key);
  if (!n || n->type != JSON_NUMBER || !n->is_integer || !(n->number >= (double)lo) || !(n->number <= (double)hi))
    return 0;
  *out = (long long)n->number;
  return 1;
}

static int get_shape(const json_node *obj, const char *key, int *rank, int dims[LITERT_TENSOR_MAX_RANK]) {
  const json_node *n = json_get(obj, key);
  if (!n || n->type != JSON_ARRAY || n->count < 1 || n->count > LITERT_TENSOR_MAX_RANK) return 0;
  long long total = 1;
  int r = 0;
  for (const json_node *c = n->child; c; c = c->next) {
    if (c->type != JSON_NUMBER || !c->is_integer || c->number < 1 || c->number > (1 << 24)) return 0;
    dims[r++] = (int)c->number;
    total *= (long long)c->number;
    if (total > (1LL << 26)) return 0;
  }
  *rank = r;
  return 1;
}

static int is_hex64(const json_node *n) {
  if (!n || n->type != JSON_STRING || strlen(n->string) != 64) return 0;
  for (const char *p = n->string; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
  return 1;
}

static const char *const GRAPH_FILE[3] = {NULL, "encoder.tflite", "decoder.tflite"};

static int role_of(const char *name);
static int expected_shape(const se_model *m, int side, int window, int is_input, int role, int state_rank,
                          const int *state_dims, int *rank, int *dims);
static int roles_required(const se_model *m, int side, int window, int is_input);

static int is_string(const json_node *n) { return n && n->type == JSON_STRING; }

/* What Python's fullmatch(".+") takes: a non-empty string without a newline. */
static int is_line(const json_node *n) { return is_string(n) && n->string[0] && !strchr(n->string, '\n'); }

/* The manifest's own description of one signature must be the shapes the model's facts give. */
static int manifest_signature_ok(const se_model *m, int side, int window, const json_node *sig, int state_rank,
                                 const int *state_dims) {
  if (!sig || sig->type != JSON_OBJECT) return 0;
  for (int is_input = 1; is_input >= 0; is_input--) {
    const json_node *io = json_get(sig, is_input ? "inputs" : "outputs");
    if (!io || io->type != JSON_OBJECT) return 0;
    int seen = 0;
    for (const json_node *t = io->child; t; t = t->next) {
      int role = role_of(t->key), rank, dims[LITERT_TENSOR_MAX_RANK], got_rank, got[LITERT_TENSOR_MAX_RANK];
      if (role < 0 || (seen & (1 << role)) ||
          !expected_shape(m, side, window, is_input, role, state_rank, state_dims, &rank, dims) ||
          !get_shape(io, t->key, &got_rank, got) || got_rank != rank || memcmp(got, dims, sizeof(int) * (size_t)rank) != 0)
        return 0;
      seen |= 1 << role;
    }
    if (seen != roles_required(m, side, window, is_input)) return 0;
  }
  return 1;
}

static se_status parse_manifest(se_model *m, const json_node *root, const char *path, const logger *e) {
#define BAD(...) return open_fail(e, SE_ERR_MODEL, __VA_ARGS__)
  if (!root || root->type != JSON_OBJECT) BAD("%s: not a same-edge model manifest (not a JSON object)", path);
  const json_node *fmt = json_get(root, "format");
  long long version = 0;
  if (!is_string(fmt) || strcmp(fmt->string, "same-edge-model") != 0)
    BAD("%s: manifest field format must be 'same-edge-model': not a same-edge model manifest", path);
  if (!get_int(root, "format_version", 0, 1 << 30, &version) || version != 2)
    BAD("%s: manifest field format_version must be 2 (re-export the model with this version's `same-edge export`)", path);
  const json_node *model = json_get(root, "model");
  if (!model || model->type != JSON_OBJECT) BAD("%s: manifest field model must be an object", path);
  long long sr, ch, ld, hop, fpc, cs, window = 0;
  if (!get_int(model, "sample_rate", 1000, 1000000, &sr)) BAD("%s: manifest field model.sample_rate must be an integer in [1000, 1000000]", path);
  if (!get_int(model, "channels", 1, 64, &ch)) BAD("%s: manifest field model.channels must be an integer in [1, 64]", path);
  if (!get_int(model, "latent_dim", 1, 1 << 24, &ld)) BAD("%s: manifest field model.latent_dim must be a positive integer", path);
  if (!get_int(model, "hop", 1, 1 << 24, &hop)) BAD("%s: manifest field model.hop must be a positive integer", path);
  /* A chunked (SAME-S) manifest leaves both attention fields out. */
  const json_node *attention = json_get(model, "attention");
  if (attention && (!is_string(attention) || (strcmp(attention->string, "chunked") && strcmp(attention->string, "sliding"))))
    BAD("%s: manifest field model.attention must be 'chunked' or 'sliding'", path);
  int sliding = attention && strcmp(attention->string, "sliding") == 0;
  if (sliding && !get_int(model, "window_frames", 1, 4096, &window))
    BAD("%s: manifest field model.window_frames must be an integer in [1, 4096]", path);
  if (!sliding && json_get(model, "window_frames")) BAD("%s: manifest field model.window_frames is for sliding attention only", path);
  if (!get_int(model, "frames_per_chunk", 1, 4096, &fpc)) BAD("%s: manifest field model.frames_per_chunk must be an integer in [1, 4096]", path);
  if (sliding && fpc != 1)
    BAD("%s: manifest field model.frames_per_chunk must be 1 for sliding attention (its windows are whole frames)", path);
  if (!sliding && fpc % 2) BAD("%s: manifest field model.frames_per_chunk must be even (the midpoint shift moves half a chunk)", path);
  if (!get_int(model, "chunk_samples", 1, 1 << 24, &cs) || cs != fpc * hop)
    BAD("%s: manifest field model.chunk_samples must equal frames_per_chunk * hop", path);
  const json_node *config = json_get(model, "config");
  if (!config || config->type != JSON_OBJECT) BAD("%s: manifest field model.config must be an object", path);
  m->sample_rate = (int)sr, m->channels = (int)ch, m->latent_dim = (int)ld, m->hop = (int)hop, m->fpc = (int)fpc;
  m->chunk_samples = (int)cs, m->sliding = sliding, m->window_frames = (int)window;

  static const char *const precisions[] = {"fp32", "w16a32", "w8a32", "w8a8", "w4a8"};
  const json_node *precision = json_get(root, "precision");
  int known = 0;
  for (size_t i = 0; is_string(precision) && i < sizeof precisions / sizeof *precisions; i++)
    known |= strcmp(precision->string, precisions[i]) == 0;
  if (!known) BAD("%s: manifest field precision must be one of fp32, w16a32, w8a32, w8a8, w4a8", path);
  snprintf(m->precision, sizeof m->precision, "%s", precision->string);

  const json_node *windows = json_get(root, "windows");
  if (!windows || windows->type != JSON_ARRAY || windows->count < 1)
    BAD("%s: manifest field windows must be unique ascending chunk counts in [1, 4096] starting at 1", path);
  if (windows->count > SE_MAX_WINDOWS) BAD("%s: manifest field windows: this library takes at most %d windows", path, SE_MAX_WINDOWS);
  m->n_windows = 0;
  for (const json_node *c = windows->child; c; c = c->next) {
    if (c->type != JSON_NUMBER || !c->is_integer || c->number < 1 || c->number > 4096 ||
        (m->n_windows && c->number <= m->windows[m->n_windows - 1]))
      BAD("%s: manifest field windows must be unique ascending chunk counts in [1, 4096] starting at 1", path);
    m->windows[m->n_windows++] = (int)c->number;
  }
  if (m->windows[0] != 1) BAD("%s: manifest field windows must be unique ascending chunk counts in [1, 4096] starting at 1", path);
  if ((long long)m->windows[m->n_windows - 1] * cs * (ch > ld ? ch : ld) > (1LL << 28))
    BAD("%s: manifest field windows: the largest window's tensors are too large", path);

  const json_node *source = json_get(root, "source");
  const json_node *cfg = json_get(source, "config_sha256"), *ckpt = json_get(source, "checkpoint_sha256");
  if (!source || source->type != JSON_OBJECT || !is_line(json_get(source, "config_file")) ||
      !is_line(json_get(source, "checkpoint_file")) || !is_hex64(cfg) || !is_hex64(ckpt))
    BAD("%s: manifest field source must name the config and checkpoint files and their sha256", path);
  snprintf(m->model_id, sizeof m->model_id, "%.16s-%.16s", cfg->string, ckpt->string);
  const json_node *tools = json_get(root, "tools");
  if (!tools || tools->type != JSON_OBJECT) BAD("%s: manifest field tools must map tool names to version strings", path);
  for (const json_node *t = tools->child; t; t = t->next)
    if (t->type != JSON_STRING) BAD("%s: manifest field tools must map tool names to version strings", path);

  for (int side = SE_SIDE_ENCODER; side <= SE_SIDE_DECODER; side++) {
    const char *name = side == SE_SIDE_ENCODER ? "encoder" : "decoder";
    const json_node *g = json_get(root, name);
    long long bytes, v;
    int rank, dims[LITERT_TENSOR_MAX_RANK];
    if (!g || g->type != JSON_OBJECT) BAD("%s: manifest field %s must be an object", path, name);
    const json_node *file = json_get(g, "file");
    if (!is_string(file) || strcmp(file->string, GRAPH_FILE[side]) != 0)
      BAD("%s: manifest field %s.file must be '%s'", path, name, GRAPH_FILE[side]);
    for (int k = 0; k < 2; k++) { /* export's reports, for `info`: free-form, but objects */
      const json_node *report = json_get(g, k ? "delegation" : "ops");
      if (report && report->type != JSON_OBJECT)
        BAD("%s: manifest field %s.%s must be an object", path, name, k ? "delegation" : "ops");
    }
    if (!get_int(g, "bytes", 1, 1LL << 40, &bytes)) BAD("%s: manifest field %s.bytes must be a positive integer", path, name);
    if (!is_hex64(json_get(g, "sha256"))) BAD("%s: manifest field %s.sha256 must be 64 lowercase hex digits", path, name);
    if (sliding) {
      /* [depth, 2w, S, width]: the stream lags depth * w frames, which the host skips at the start
       * and flushes with as many frames of padding; the manifest must say so. */
      if (!get_shape(g, "state_shape", &rank, dims) || rank != 4 || dims[1] != 2 * window)
        BAD("%s: manifest field %s.state_shape must be 4 positive sizes, the second 2 * window_frames = %lld", path, name,
            2 * window);
      if (json_get(g, "context_shape"))
        BAD("%s: manifest field %s.context_shape is for chunked attention only (a sliding-window decoder carries no "
            "conv context)", path, name);
      long long lag = dims[0] * window, unit = side == SE_SIDE_ENCODER ? 1 : hop;
      const char *fields[2] = {side == SE_SIDE_ENCODER ? "start_skip_frames" : "start_skip_samples",
                               side == SE_SIDE_ENCODER ? "flush_frames" : "flush_samples"};
      for (int k = 0; k < 2; k++)
        if (!get_int(g, fields[k], 0, 1 << 24, &v) || v != lag * unit)
          BAD("%s: manifest field %s.%s must be depth * window_frames = %lld frames (%lld)", path, name, fields[k], lag,
              lag * unit);
      if (side == SE_SIDE_ENCODER) m->start_skip_frames = m->flush_frames = (int)v;
      else m->start_skip_samples = m->flush_samples = (int)v;
    } else if (!get_shape(g, "state_shape", &rank, dims) || rank != 3 || dims[0] != fpc / 2) {
      BAD("%s: manifest field %s.state_shape must be 3 positive sizes, the first frames_per_chunk / 2", path, name);
    } else if (side == SE_SIDE_ENCODER) {
      if (!get_int(g, "start_skip_frames", 0, fpc, &v))
        BAD("%s: manifest field encoder.start_skip_frames must be an integer in [0, %lld]", path, fpc);
      m->start_skip_frames = (int)v;
      if (!get_int(g, "flush_frames", 1, fpc, &v)) BAD("%s: manifest field encoder.flush_frames must be an integer in [1, %lld]", path, fpc);
      m->flush_frames = (int)v;
    } else {
      if (!get_shape(g, "context_shape", &m->context_rank, m->context_dims) || m->context_rank != 2)
        BAD("%s: manifest field decoder.context_shape must be 2 positive sizes", path);
      if (!get_int(g, "start_skip_samples", 0, cs - 1, &v))
        BAD("%s: manifest field decoder.start_skip_samples must be an integer in [0, %lld]", path, cs - 1);
      m->start_skip_samples = (int)v;
      if (!get_int(g, "flush_samples", 1, cs, &v)) BAD("%s: manifest field decoder.flush_samples must be an integer in [1, %lld]", path, cs);
      m->flush_samples = (int)v;
    }
    if (side == SE_SIDE_ENCODER) {
      m->state_rank = rank;
      memcpy(m->state_dims, dims, sizeof dims);
    }
  }
  /* Every signature the manifest lists, and only those, with the shapes the facts above give. */
  for (int side = SE_SIDE_ENCODER; side <= SE_SIDE_DECODER; side++) {
    const char *name = side == SE_SIDE_ENCODER ? "encoder" : "decoder", *prefix = side == SE_SIDE_ENCODER ? "encode_" : "decode_";
    const json_node *sigs = json_get(json_get(root, name), "signatures");
    int rank, dims[LITERT_TENSOR_MAX_RANK];
    get_shape(json_get(root, name), "state_shape", &rank, dims);
    if (!sigs || sigs->type != JSON_OBJECT || sigs->count != (size_t)m->n_windows + !sliding)
      BAD("%s: manifest field %s.signatures must be one per window%s", path, name, sliding ? "" : " and a flush");
    for (int w = sliding ? 0 : -1; w < m->n_windows; w++) {
      char key[32];
      if (w < 0) snprintf(key, sizeof key, "%sflush", prefix);
      else snprintf(key, sizeof key, "%s%d", prefix, m->windows[w]);
      if (!manifest_signature_ok(m, side, w < 0 ? 0 : m->windows[w], json_get(sigs, key), rank, dims))
        BAD("%s: manifest field %s.signatures.%s is missing or has the wrong tensors", path, name, key);
    }
  }
  return SE_OK;
#undef BAD
}

/* ---------- the manifest each graph embeds ---------- */

/* A bounds-checked flatbuffer reader, the C counterpart of same_edge/flatbuffer.py's: every offset
 * is checked against the file's size before it is followed (positions are 64-bit: no sum wraps),
 * so a damaged graph is refused, never read past. A table starts with an int32 offset back to its
 * vtable {uint16 vtable_bytes, uint16 table_bytes, uint16 field_offset[]}; a reference field holds
 * a uint32 offset forward; a vector or string is a uint32 count, then its items. */
typedef struct {
  const uint8_t *p;
  uint64_t size;
} fb_file;

typedef struct {
  uint64_t pos, vtable;
  unsigned vtable_bytes, table_bytes;
} fb_table;

static int fb_uint(const fb_file *f, uint64_t at, int bytes, uint64_t *out) {
  if (at > f->size || f->size - at < (uint64_t)bytes) return 0;
  *out = 0;
  for (int i = bytes - 1; i >= 0; i--) *out = *out << 8 | f->p[at + (uint64_t)i];
  return 1;
}

static int fb_table_at(const fb_file *f, uint64_t at, fb_table *t) {
  uint64_t back, vbytes, tbytes;
  if (!fb_uint(f, at, 4, &back)) return 0;
  int64_t vtable = (int64_t)at - (int32_t)(uint32_t)back;
  if (vtable < 0 || !fb_uint(f, (uint64_t)vtable, 2, &vbytes) || !fb_uint(f, (uint64_t)vtable + 2, 2, &tbytes) ||
      vbytes < 4 || vbytes % 2 || (uint64_t)vtable + vbytes > f->size || at + (tbytes > 4 ? tbytes : 4) > f->size)
    return 0;
  *t = (fb_table){at, (uint64_t)vtable, (unsigned)vbytes, (unsigned)tbytes};
  return 1;
}

/* The position of field i (0: absent). */
static int fb_field(const fb_file *f, const fb_table *t, int i, uint64_t *at) {
  uint64_t offset = 0;
  if (4 + 2 * (unsigned)i + 2 <= t->vtable_bytes && !fb_uint(f, t->vtable + 4 + 2 * (uint64_t)i, 2, &offset)) return 0;
  *at = offset ? t->pos + offset : 0;
  return offset < t->table_bytes || !offset;
}

static int fb_scalar(const fb_file *f, const fb_table *t, int i, int bytes, uint64_t *out) {
  uint64_t at;
  *out = 0;
  return fb_field(f, t, i, &at) && (!at || fb_uint(f, at, bytes, out));
}

/* A vector field's items and count, all inside the file (count 0: absent). */
static int fb_vector(const fb_file *f, const fb_table *t, int i, uint64_t item_bytes, uint64_t *items, uint64_t *count) {
  uint64_t at, rel;
  *items = *count = 0;
  if (!fb_field(f, t, i, &at)) return 0;
  if (!at) return 1;
  if (!fb_uint(f, at, 4, &rel) || !fb_uint(f, at + rel, 4, count)) return 0;
  *items = at + rel + 4;
  return *items <= f->size && (f->size - *items) / item_bytes >= *count;
}

static int fb_vector_table(const fb_file *f, uint64_t items, uint64_t k, fb_table *t) {
  uint64_t rel;
  return fb_uint(f, items + 4 * k, 4, &rel) && fb_table_at(f, items + 4 * k + rel, t);
}

/* The bytes of a .tflite file's metadata entry `key` (Model.metadata, field 6: {name, buffer};
 * Model.buffers, field 4: {data, offset, size}, offset > 1 for bytes kept past the flatbuffer, as
 * the quantiser stores them): 1 found, 0 absent, -1 the file is malformed. */
static int tflite_metadata(const uint8_t *file, size_t file_size, const char *key, const uint8_t **out, size_t *out_size) {
  fb_file f = {file, file_size};
  fb_table model, entry, buffer;
  uint64_t root, entries, n_entries, buffers, n_buffers, name, name_len, index, offset, size, data, data_len;
  if (!fb_uint(&f, 0, 4, &root) || !fb_table_at(&f, root, &model) || !fb_vector(&f, &model, 6, 4, &entries, &n_entries) ||
      !fb_vector(&f, &model, 4, 4, &buffers, &n_buffers))
    return -1;
  for (uint64_t k = 0; k < n_entries; k++) {
    if (!fb_vector_table(&f, entries, k, &entry) || !fb_vector(&f, &entry, 0, 1, &name, &name_len)) return -1;
    if (name_len != strlen(key) || memcmp(file + name, key, name_len) != 0) continue;
    if (!fb_scalar(&f, &entry, 1, 4, &index) || index >= n_buffers || !fb_vector_table(&f, buffers, index, &buffer) ||
        !fb_scalar(&f, &buffer, 1, 8, &offset) || !fb_scalar(&f, &buffer, 2, 8, &size))
      return -1;
    if (offset > 1) {
      if (offset > f.size || f.size - offset < size) return -1;
      *out = file + offset, *out_size = (size_t)size;
      return 1;
    }
    if (!fb_vector(&f, &buffer, 0, 1, &data, &data_len)) return -1;
    *out = file + data, *out_size = (size_t)data_len;
    return 1;
  }
  return 0;
}

/* A graph's manifest entries written once its file exists: not in the manifest the graph embeds. */
static const char *const FILE_FIELDS[] = {"bytes", "sha256", "ops", "delegation"};

/* The first member (ours in document order, then those only theirs holds) whose values differ, as
 * a dotted path appended to `path`, with both values (NULL: absent). Objects are compared member by
 * member, other values whole. same_edge/manifest.py's _first_difference walks alike. */
static int first_difference(const json_node *ours, const json_node *theirs, char *path, size_t size,
                            const json_node **a, const json_node **b) {
  size_t len = strlen(path);
  int graph = strcmp(path, "encoder") == 0 || strcmp(path, "decoder") == 0;
  for (int only_theirs = 0; only_theirs < 2; only_theirs++)
    for (const json_node *m = (only_theirs ? theirs : ours)->child; m; m = m->next) {
      int skip = only_theirs && json_get(ours, m->key);
      for (size_t i = 0; graph && i < sizeof FILE_FIELDS / sizeof *FILE_FIELDS; i++) skip |= strcmp(m->key, FILE_FIELDS[i]) == 0;
      if (skip) continue;
      const json_node *x = only_theirs ? NULL : m, *y = only_theirs ? m : json_get(theirs, m->key);
      snprintf(path + len, size - len, len ? ".%s" : "%s", m->key);
      if (x && y && x->type == JSON_OBJECT && y->type == JSON_OBJECT) {
        if (first_difference(x, y, path, size, a, b)) return 1;
      } else if (!x || !y || !json_equal(x, y)) {
        *a = x, *b = y;
        return 1;
      }
      path[len] = '\0';
    }
  return 0;
}

/* Refuse a graph whose embedded manifest is not manifest.json (but for FILE_FIELDS): an edited
 * start skip or sample rate would shift or mislabel the output silently. Every export embeds one:
 * a graph without is refused. */
static se_status check_embedded_manifest(const json_node *root, const uint8_t *map, size_t map_size, const char *place,
                                         const char *label, const char *file, const logger *e) {
  const uint8_t *payload = NULL;
  size_t len = 0;
  int found = tflite_metadata(map, map_size, "same_edge.manifest", &payload, &len);
  if (found < 0) return open_fail(e, SE_ERR_MODEL, "%s is not a .tflite flatbuffer (its metadata lies outside the file)", label);
  if (!found)
    return open_fail(e, SE_ERR_MODEL, "%s embeds no manifest (metadata 'same_edge.manifest'): %s is not a graph written "
                     "by `same-edge export`", file, label);
  if (len > MANIFEST_MAX_BYTES) return open_fail(e, SE_ERR_MODEL, "%s embeds a manifest of %zu bytes: too large to be one", label, len);
  char jerr[160], field[256] = "", ours[64] = "(absent)", theirs[64] = "(absent)";
  json_doc *doc = json_parse((const char *)payload, len, jerr, sizeof jerr);
  if (!doc) return open_fail(e, SE_ERR_MODEL, "%s embeds a manifest that is not valid JSON (%s)", label, jerr);
  const json_node *embedded = json_root(doc), *a = NULL, *b = NULL;
  se_status st = SE_OK;
  if (embedded->type != JSON_OBJECT)
    st = open_fail(e, SE_ERR_MODEL, "%s embeds a manifest that is not a JSON object", label);
  else if (first_difference(root, embedded, field, sizeof field, &a, &b)) {
    /* One short line, whatever the member names: control characters as '?', at most 120 bytes. */
    for (char *c = field; *c; c++)
      if ((unsigned char)*c < 0x20) *c = '?';
    if (strlen(field) > 120) {
      size_t n = 117;
      while (n && ((unsigned char)field[n] & 0xC0) == 0x80) n--; /* on a character boundary */
      memcpy(field + n, "...", 4);
    }
    if (a) json_brief(a, ours, sizeof ours);
    if (b) json_brief(b, theirs, sizeof theirs);
    st = open_fail(e, SE_ERR_MODEL, "%s: manifest.json says %s %s, %s embeds %s (the manifest was edited, or the graphs "
                   "are from another export)", place, field, ours, file, theirs);
  }
  json_free(doc);
  return st;
}

static int graph_state_shape(const json_node *root, int side, int *rank, int dims[LITERT_TENSOR_MAX_RANK]) {
  return get_shape(json_get(root, side == SE_SIDE_ENCODER ? "encoder" : "decoder"), "state_shape", rank, dims);
}

/* ---------- graphs ---------- */

static void graph_free(graph *g) {
  if (!g) return;
  if (g->compiled) LiteRtDestroyCompiledModel(g->compiled);
  if (g->options) LiteRtDestroyOptions(g->options);
  if (g->model) LiteRtDestroyModel(g->model);
  free(g->bytes);
  if (g->lock_ready) pthread_mutex_destroy(&g->run_lock);
  free(g);
}

static int role_of(const char *name) {
  for (int r = 0; r < R_NROLES; r++)
    if (strcmp(name, ROLE_NAMES[r]) == 0) return r;
  return -1;
}

static void shape_str(char *buf, size_t size, int rank, const int *dims) {
  size_t n = 0;
  n += (size_t)snprintf(buf + n, size - n, "[");
  for (int i = 0; i < rank && n < size; i++) n += (size_t)snprintf(buf + n, size - n, i ? ", %d" : "%d", dims[i]);
  if (n < size) snprintf(buf + n, size - n, "]");
}

/* The shape each tensor of a signature must have, from the model's facts. */
static int expected_shape(const se_model *m, int side, int window, int is_input, int role, int state_rank,
                          const int *state_dims, int *rank, int *dims) {
  int w = window;
  switch (role) {
    case R_AUDIO:
      if (side == SE_SIDE_ENCODER ? !is_input || !w : is_input) return 0;
      *rank = 2, dims[0] = m->channels, dims[1] = w ? w * m->chunk_samples : m->flush_samples;
      return 1;
    case R_LATENTS:
      if (side == SE_SIDE_ENCODER ? is_input : !is_input || !w) return 0;
      *rank = 2, dims[0] = m->latent_dim, dims[1] = w ? w * m->fpc : m->flush_frames;
      return 1;
    case R_KEEP:
      if (m->sliding || side != SE_SIDE_DECODER || !is_input || !w) return 0;
      *rank = 1, dims[0] = w * m->fpc;
      return 1;
    case R_FIRST:
      if (m->sliding || !is_input || !w) return 0;
      *rank = 1, dims[0] = 1;
      return 1;
    case R_KEY_BIAS: /* [depth, the window's frames + the 2w each block carries] */
      if (!m->sliding || !is_input || !w) return 0;
      *rank = 2, dims[0] = state_dims[0], dims[1] = w * m->fpc + state_dims[1];
      return 1;
    case R_STATE:
      if (!w && !is_input) return 0;
      *rank = state_rank;
      memcpy(dims, state_dims, sizeof(int) * (size_t)state_rank);
      return 1;
    case R_CONTEXT:
      if (m->sliding || side != SE_SIDE_DECODER || (!w && !is_input)) return 0;
      *rank = m->context_rank;
      memcpy(dims, m->context_dims, sizeof(int) * (size_t)m->context_rank);
      return 1;
  }
  return 0;
}

static int roles_required(const se_model *m, int side, int window, int is_input) {
  if (m->sliding) /* window signatures only */
    return is_input ? (1 << (side == SE_SIDE_ENCODER ? R_AUDIO : R_LATENTS) | 1 << R_STATE | 1 << R_KEY_BIAS)
                    : (1 << (side == SE_SIDE_ENCODER ? R_LATENTS : R_AUDIO) | 1 << R_STATE);
  if (side == SE_SIDE_ENCODER) {
    if (window) return is_input ? (1 << R_AUDIO | 1 << R_STATE | 1 << R_FIRST) : (1 << R_LATENTS | 1 << R_STATE);
    return is_input ? 1 << R_STATE : 1 << R_LATENTS;
  }
  if (window)
    return is_input ? (1 << R_LATENTS | 1 << R_KEEP | 1 << R_STATE | 1 << R_CONTEXT | 1 << R_FIRST)
                    : (1 << R_AUDIO | 1 << R_STATE | 1 << R_CONTEXT);
  return is_input ? (1 << R_STATE | 1 << R_CONTEXT) : 1 << R_AUDIO;
}

static se_status load_signature(const se_model *m, graph *g, LiteRtSignature sig, LiteRtParamIndex index, int window,
                                int state_rank, const int *state_dims, const char *file, const char *key, const logger *e) {
  sig_info *info = window ? NULL : &g->flush;
  for (int i = 0; i < m->n_windows && !info; i++)
    if (m->windows[i] == window) info = &g->sigs[i];
  info->index = index;
  info->window = window;
  for (int is_input = 1; is_input >= 0; is_input--) {
    LiteRtParamIndex n = 0;
    if ((is_input ? LiteRtGetNumSignatureInputs(sig, &n) : LiteRtGetNumSignatureOutputs(sig, &n)) != 0 || n > SE_MAX_IO)
      return open_fail(e, SE_ERR_MODEL, "%s does not match the manifest: %s has %zu %s", file, key, (size_t)n,
                       is_input ? "inputs" : "outputs");
    int seen = 0;
    for (LiteRtParamIndex i = 0; i < n; i++) {
      const char *name = NULL;
      LiteRtTensor tensor = NULL;
      tensor_spec *t = is_input ? &info->in[i] : &info->out[i];
      if ((is_input ? LiteRtGetSignatureInputName(sig, i, &name) : LiteRtGetSignatureOutputName(sig, i, &name)) != 0 ||
          !name ||
          (is_input ? LiteRtGetSignatureInputTensorByIndex(sig, i, &tensor)
                    : LiteRtGetSignatureOutputTensorByIndex(sig, i, &tensor)) != 0 ||
          LiteRtGetRankedTensorType(tensor, &t->type) != 0)
        return open_fail(e, SE_ERR_MODEL, "%s: cannot read the tensors of signature %s", file, key);
      int role = role_of(name), rank, dims[LITERT_TENSOR_MAX_RANK];
      if (role < 0 || !expected_shape(m, g->side, window, is_input, role, state_rank, state_dims, &rank, dims) ||
          (seen & (1 << role)))
        return open_fail(e, SE_ERR_MODEL, "%s does not match the manifest: %s has an unexpected %s %s", file, key,
                         is_input ? "input" : "output", name);
      seen |= 1 << role;
      int ok = t->type.element_type == kLiteRtElementTypeFloat32 && (int)t->type.layout.rank == rank;
      for (int d = 0; ok && d < rank; d++) ok = t->type.layout.dimensions[d] == dims[d];
      if (!ok) {
        char want[96], got[96];
        int got_dims[LITERT_TENSOR_MAX_RANK];
        int got_rank = (int)t->type.layout.rank <= LITERT_TENSOR_MAX_RANK ? (int)t->type.layout.rank : 0;
        for (int d = 0; d < got_rank; d++) got_dims[d] = t->type.layout.dimensions[d];
        shape_str(want, sizeof want, rank, dims);
        shape_str(got, sizeof got, got_rank, got_dims);
        return open_fail(e, SE_ERR_MODEL, "%s does not match the manifest: %s.%s is %s %s, expected float32 %s", file, key,
                         name, t->type.element_type == kLiteRtElementTypeFloat32 ? "float32" : "not float32", got, want);
      }
      t->role = role;
      t->rank = rank;
      memcpy(t->dims, dims, sizeof dims);
      t->count = 1;
      for (int d = 0; d < rank; d++) t->count *= (size_t)dims[d];
      t->type.layout.has_strides = 0;
    }
    int need = roles_required(m, g->side, window, is_input);
    if (seen != need)
      return open_fail(e, SE_ERR_MODEL, "%s does not match the manifest: %s lacks an %s", file, key,
                       is_input ? "input" : "output");
    if (is_input) info->n_in = n;
    else info->n_out = n;
  }
  return SE_OK;
}

static int hex_equal(const uint8_t digest[32], const char *hex) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++)
    if (hex[2 * i] != digits[digest[i] >> 4] || hex[2 * i + 1] != digits[digest[i] & 15]) return 0;
  return 1;
}

/* Open a file for reading only if it is a regular file: opening a FIFO waits for a writer (for
 * ever, in a model directory), so it is opened without waiting and refused by fstat. -1: not
 * there, or not a regular file (errno says which: ENOENT... or EINVAL). */
static int open_regular(const char *path, struct stat *sb) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return -1;
  if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
    close(fd);
    errno = EINVAL;
    return -1;
  }
  return fd;
}

/* Where a model's three files come from: a directory, memory, or ranges of open files. Index 0
 * is the manifest, SE_SIDE_ENCODER and SE_SIDE_DECODER the graphs. */
enum { SRC_DIR, SRC_MEMORY, SRC_FD };
typedef struct model_source {
  int kind;
  const char *dir;
  const void *bytes[3];
  size_t size[3];
  se_file_range range[3];
} model_source;

static const char *const SOURCE_FILE[3] = {"manifest.json", "encoder.tflite", "decoder.tflite"};

/* How messages name file k ("DIR/encoder.tflite", "encoder.tflite (in memory)", ...). */
static void source_label(const model_source *src, int k, char *buf, size_t size) {
  if (src->kind == SRC_DIR) snprintf(buf, size, "%s/%s", src->dir, SOURCE_FILE[k]);
  else if (src->kind == SRC_MEMORY) snprintf(buf, size, "%s (in memory)", SOURCE_FILE[k]);
  else snprintf(buf, size, "%s (fd %d, offset %lld)", SOURCE_FILE[k], src->range[k].fd, (long long)src->range[k].offset);
}

/* How messages name the model as a whole. */
static const char *source_place(const model_source *src) {
  return src->kind == SRC_DIR ? src->dir : src->kind == SRC_MEMORY ? "the model in memory" : "the model's file ranges";
}

/* pread exactly `size` bytes at `offset`: 0, or an errno (EIO for a file that ends too soon). */
static int pread_all(int fd, int64_t offset, uint8_t *buf, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = pread(fd, buf + got, size - got, (off_t)(offset + (int64_t)got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    got += (size_t)n;
  }
  return 0;
}

/* File k's bytes from memory or a file range, `size` of them, into a page-aligned buffer with a
 * NUL after them (the manifest is parsed as text). */
static se_status read_source(const model_source *src, int k, size_t size, const char *label, uint8_t **out,
                             const logger *e) {
  void *buf = NULL;
  if (size > SIZE_MAX - 4096 || posix_memalign(&buf, 4096, size + 1) != 0)
    return open_fail(e, SE_ERR_NO_MEMORY, "out of memory reading %s (%zu bytes)", label, size);
  uint8_t *p = buf;
  p[size] = 0;
  if (src->kind == SRC_MEMORY) {
    memcpy(p, src->bytes[k], size);
  } else {
    int err = pread_all(src->range[k].fd, src->range[k].offset, p, size);
    if (err) {
      free(buf);
      if (err == EIO) return open_fail(e, SE_ERR_MODEL, "%s: the file ends before the range's %zu bytes", label, size);
      return open_fail(e, SE_ERR_MODEL, "cannot read %s: %s", label, strerror(err));
    }
  }
  *out = p;
  return SE_OK;
}

/* The size file k has in memory or in its file range, or -1 if none was given. */
static int64_t source_size(const model_source *src, int k) {
  if (src->kind == SRC_MEMORY) return src->bytes[k] ? (int64_t)src->size[k] : -1;
  return src->range[k].fd >= 0 ? src->range[k].length : -1;
}

/* The graph's bytes, read into memory the library owns rather than mapped: a mapped file that is
 * replaced in place (`cp` truncates, then writes) kills the process with SIGBUS on the next run,
 * and an app may update its model files while it runs. Page-aligned, as a mapping was. */
static se_status read_graph_file(graph *g, const char *path, const char *dir, const char *file, long long expected,
                                 const logger *e) {
  struct stat sb;
  int fd = open_regular(path, &sb);
  if (fd < 0) {
    if (errno == EINVAL) return open_fail(e, SE_ERR_MODEL, "%s is missing %s (not a regular file)", dir, file);
    return open_fail(e, SE_ERR_MODEL, "%s is missing %s", dir, file);
  }
  if ((long long)sb.st_size != expected) {
    close(fd);
    return open_fail(e, SE_ERR_MODEL, "%s is %lld bytes, the manifest says %lld: damaged or from another export", path,
                     (long long)sb.st_size, expected);
  }
  void *buf = NULL;
  if ((uint64_t)sb.st_size > SIZE_MAX || posix_memalign(&buf, 4096, (size_t)sb.st_size) != 0) {
    close(fd);
    return open_fail(e, SE_ERR_NO_MEMORY, "out of memory reading %s (%lld bytes)", path, (long long)sb.st_size);
  }
  g->bytes = buf, g->size = (size_t)sb.st_size;
  size_t got = 0;
  while (got < g->size) {
    ssize_t n = read(fd, g->bytes + got, g->size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : 0;
      close(fd);
      if (err) return open_fail(e, SE_ERR_MODEL, "cannot read %s: %s", path, strerror(err));
      return open_fail(e, SE_ERR_MODEL, "%s shrank while it was read: replaced during the open?", path);
    }
    got += (size_t)n;
  }
  close(fd);
  return SE_OK;
}

/* A graph's bytes from its source, `expected` of them. */
static se_status read_graph(graph *g, const model_source *src, int side, const char *path, long long expected,
                            const logger *e) {
  if (src->kind == SRC_DIR) return read_graph_file(g, path, src->dir, GRAPH_FILE[side], expected, e);
  int64_t have = source_size(src, side);
  if (have < 0)
    return open_fail(e, SE_ERR_ARGUMENT, "%s: none given, but the options load the %s", path,
                     side == SE_SIDE_ENCODER ? "encoder" : "decoder");
  if (have != expected)
    return open_fail(e, SE_ERR_MODEL, "%s is %lld bytes, the manifest says %lld: damaged or from another export", path,
                     (long long)have, expected);
  se_status st = read_source(src, side, (size_t)expected, path, &g->bytes, e);
  if (st == SE_OK) g->size = (size_t)expected;
  return st;
}

static se_status load_graph(se_model *m, const json_node *root, const model_source *src, int side,
                            const se_model_options *o, graph **out, const logger *e) {
  const char *name = side == SE_SIDE_ENCODER ? "encoder" : "decoder";
  const char *file = GRAPH_FILE[side];
  const json_node *desc = json_get(root, name);
  long long bytes = (long long)json_get(desc, "bytes")->number;
  const char *sha = json_get(desc, "sha256")->string;
  char path[4096];
  source_label(src, side, path, sizeof path);
  if (strlen(path) + 1 >= sizeof path) return open_fail(e, SE_ERR_ARGUMENT, "model directory path too long");
  graph *g = calloc(1, sizeof *g);
  if (!g) return open_fail(e, SE_ERR_NO_MEMORY, "out of memory");
  g->side = side;
  if (pthread_mutex_init(&g->run_lock, NULL) != 0) {
    free(g);
    return open_fail(e, SE_ERR_NO_MEMORY, "cannot create a mutex");
  }
  g->lock_ready = 1;
  se_status st = read_graph(g, src, side, path, bytes, e);
  if (st != SE_OK) goto fail;
  say(e, SE_LOG_DEBUG, "read %s: %zu bytes", path, g->size);
  if (!o->skip_sha256) {
    sha256_ctx ctx;
    uint8_t digest[32];
    sha256_init(&ctx);
    sha256_update(&ctx, g->bytes, g->size);
    sha256_final(&ctx, digest);
    if (!hex_equal(digest, sha)) {
      st = open_fail(e, SE_ERR_MODEL, "%s does not match the sha256 in the manifest: damaged or from another export", path);
      goto fail;
    }
  }
  {
    /* A flatbuffer's root offset and the TFLite identifier, before LiteRT parses anything. */
    const uint8_t *p = g->bytes;
    uint32_t root_off = g->size >= 8 ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
    if (g->size < 16 || memcmp(p + 4, "TFL3", 4) != 0 || root_off < 8 || root_off >= g->size) {
      st = open_fail(e, SE_ERR_MODEL, "%s is not a .tflite flatbuffer", path);
      goto fail;
    }
  }
  if ((st = check_embedded_manifest(root, g->bytes, g->size, source_place(src), path, file, e)) != SE_OK) goto fail;
  if (LiteRtCreateModelFromBuffer(m->env, g->bytes, g->size, &g->model) != 0 || !g->model) {
    g->model = NULL;
    st = open_fail(e, SE_ERR_MODEL, "%s could not be loaded by LiteRT", path);
    goto fail;
  }
  LiteRtParamIndex nsig = 0;
  if (LiteRtGetNumModelSignatures(g->model, &nsig) != 0) nsig = 0;
  if (nsig != (LiteRtParamIndex)(m->n_windows + !m->sliding)) {
    st = open_fail(e, SE_ERR_MODEL, "%s does not match the manifest: %zu signatures, expected %d", path, (size_t)nsig,
                   m->n_windows + !m->sliding);
    goto fail;
  }
  int state_rank, state_dims[LITERT_TENSOR_MAX_RANK];
  graph_state_shape(root, side, &state_rank, state_dims);
  const json_node *msigs = json_get(desc, "signatures");
  int found = 0;
  for (LiteRtParamIndex i = 0; i < nsig; i++) {
    LiteRtSignature sig;
    const char *key = NULL;
    if (LiteRtGetModelSignature(g->model, i, &sig) != 0 || LiteRtGetSignatureKey(sig, &key) != 0 || !key) {
      st = open_fail(e, SE_ERR_MODEL, "%s: cannot read its signatures", path);
      goto fail;
    }
    const char *prefix = side == SE_SIDE_ENCODER ? "encode_" : "decode_";
    size_t plen = strlen(prefix);
    int window = -1;
    if (strncmp(key, prefix, plen) == 0) {
      if (!m->sliding && strcmp(key + plen, "flush") == 0) window = 0;
      else
        for (int w = 0; w < m->n_windows; w++) {
          char want[32];
          snprintf(want, sizeof want, "%s%d", prefix, m->windows[w]);
          if (strcmp(key, want) == 0) window = m->windows[w];
        }
    }
    int bit = 0;
    if (window == 0) bit = 1;
    for (int w = 0; w < m->n_windows; w++)
      if (m->windows[w] == window) bit = 2 << w;
    if (window < 0 || (found & bit) || !json_get(msigs, key)) {
      st = open_fail(e, SE_ERR_MODEL, "%s does not match the manifest: unexpected signature %s", path, key);
      goto fail;
    }
    found |= bit;
    if ((st = load_signature(m, g, sig, i, window, state_rank, state_dims, path, key, e)) != SE_OK) goto fail;
  }
  if (msigs->count != nsig) {
    st = open_fail(e, SE_ERR_MODEL, "%s does not match the manifest: the manifest lists %zu signatures, the graph %zu",
                   path, msigs->count, (size_t)nsig);
    goto fail;
  }
  /* XNNPACK's options are passed as LiteRT's opaque "xnnpack" TOML payload (the Lrt* CPU-option
   * helpers are not exported by libLiteRt.so). */
  const char *cache_dir = o->weight_cache_dir;
#if defined(__linux__) || defined(__ANDROID__)
  if (!cache_dir) cache_dir = ":memory"; /* an anonymous memfd_create file per graph */
#else
  if (!cache_dir) cache_dir = "";
#endif
  /* Under a file-size limit (ulimit -f) XNNPACK's cache file, a memfd too, can be written past it:
   * SIGXFSZ, or EFBIG inside XNNPACK, which cannot be recovered from. Each signature packs its
   * own copy of the weights instead: more memory, the same outputs. */
  struct rlimit fsize;
  if (getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY && *cache_dir) {
    say(e, SE_LOG_WARNING, "%s: no XNNPACK weight cache under the file-size limit (ulimit -f): each signature packs "
        "its own copy of the weights", path);
    cache_dir = "";
  }
  char *payload = malloc(128 + strlen(cache_dir));
  if (!payload) {
    st = open_fail(e, SE_ERR_NO_MEMORY, "out of memory");
    goto fail;
  }
  int n = sprintf(payload, "num_threads = %d\n", m->threads);
  /* XNNPACK finds packed weights by the graph's buffer identifiers, not their contents: one file
   * per graph, named after its sha256, or a decoder would run on the encoder's packed weights. */
  if (!strcmp(cache_dir, ":memory"))
    sprintf(payload + n, "weight_cache_file_path = \":memory\"\n");
  else if (*cache_dir)
    sprintf(payload + n, "weight_cache_file_path = \"%s/%s-%.16s.xnn\"\n", cache_dir, name, sha);
  LiteRtOpaqueOptions xnn = NULL;
  if (LiteRtCreateOptions(&g->options) != 0 ||
      LiteRtSetOptionsHardwareAccelerators(g->options, kLiteRtHwAcceleratorCpu) != 0) {
    free(payload);
    st = open_fail(e, SE_ERR_RUNTIME, "LiteRT could not create compilation options");
    goto fail;
  }
  if (LiteRtCreateOpaqueOptions("xnnpack", payload, free, &xnn) != 0) {
    free(payload);
    st = open_fail(e, SE_ERR_RUNTIME, "LiteRT refused the XNNPACK options");
    goto fail;
  }
  if (LiteRtAddOpaqueOptions(g->options, xnn) != 0) {
    LiteRtDestroyOpaqueOptions(xnn);
    st = open_fail(e, SE_ERR_RUNTIME, "LiteRT refused the XNNPACK options");
    goto fail;
  }
  if (LiteRtCreateCompiledModel(m->env, g->model, g->options, &g->compiled) != 0 || !g->compiled) {
    g->compiled = NULL;
    st = open_fail(e, SE_ERR_MODEL, "%s could not be compiled by LiteRT for the CPU", path);
    goto fail;
  }
  say(e, SE_LOG_INFO, "%s: compiled for the CPU, %d thread%s, weight cache %s", path, m->threads,
      m->threads == 1 ? "" : "s", !*cache_dir ? "none" : !strcmp(cache_dir, ":memory") ? "in memory" : cache_dir);
  *out = g;
  return SE_OK;
fail:
  graph_free(g);
  return st;
}

static int available_cores(void) {
#if defined(__linux__) || defined(__ANDROID__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

static char *read_small_file(const char *path, size_t max, size_t *len, int *too_big) {
  struct stat sb;
  int fd = open_regular(path, &sb);
  FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    return NULL;
  }
  char *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
  int err = ferror(f);
  fclose(f);
  if (!buf || err) {
    free(buf);
    return NULL;
  }
  if (n > max) {
    *too_big = 1;
    free(buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* manifest.json's text from its source, NUL-terminated. */
static se_status read_manifest_text(const model_source *src, const char *label, char **text, size_t *len,
                                    const logger *e) {
  if (src->kind == SRC_DIR) {
    int too_big = 0;
    *text = read_small_file(label, MANIFEST_MAX_BYTES, len, &too_big);
    if (*text) return SE_OK;
    if (too_big) return open_fail(e, SE_ERR_MODEL, "%s is larger than %u bytes", label, MANIFEST_MAX_BYTES);
    return open_fail(e, SE_ERR_MODEL, "%s has no manifest.json: not a directory written by `same-edge export`", src->dir);
  }
  int64_t size = source_size(src, 0);
  if (size < 0) return open_fail(e, SE_ERR_ARGUMENT, "%s: none given", label);
  if (size > MANIFEST_MAX_BYTES) return open_fail(e, SE_ERR_MODEL, "%s is larger than %u bytes", label, MANIFEST_MAX_BYTES);
  se_status st = read_source(src, 0, (size_t)size, label, (uint8_t **)text, e);
  *len = (size_t)size;
  return st;
}

static int level_ok(se_log_level level) { return level >= SE_LOG_DEFAULT && level <= SE_LOG_SILENT; }

/* LiteRT's minimum severity (0 verbose, 1 info, 2 warning, 3 error, 4 silent) for ours. */
static int litert_severity(se_log_level level) { return level == SE_LOG_DEFAULT ? 4 : (int)level - 1; }

static void model_destroy(se_model *m) {
  graph_free(m->enc);
  graph_free(m->dec);
  if (m->env) LiteRtDestroyEnvironment(m->env);
  free(m);
}

static void model_release(se_model *m) {
  if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) model_destroy(m);
}

/* Every way of opening a model ends here: the same checks whatever the source. */
static se_status open_model(const model_source *src, const se_model_options *options, se_model **out) {
  if (out) *out = NULL;
  se_model_options o;
  if (!read_struct(&o, sizeof o, MODEL_OPTIONS_V1_SIZE, MODEL_OPTIONS_KNOWN, options, "se_model_options", NULL)) return SE_ERR_ARGUMENT;
  if (!level_ok(o.log_level) || !level_ok(o.litert_log_level))
    return open_fail(NULL, SE_ERR_ARGUMENT, "log levels must be SE_LOG_DEFAULT..SE_LOG_SILENT (0..5)");
  logger log = {o.log_callback, o.log_user_data, o.log_level ? o.log_level : SE_LOG_WARNING};
  const logger *e = &log;
  if (!out) return open_fail(e, SE_ERR_ARGUMENT, "se_model_open: model must not be NULL");
  if (o.sides == 0) o.sides = SE_SIDE_BOTH;
  if (o.sides < 0 || o.sides > SE_SIDE_BOTH) return open_fail(e, SE_ERR_ARGUMENT, "sides must be SE_SIDE_ENCODER, SE_SIDE_DECODER or both");
  if (o.threads < 0 || o.threads > SE_MAX_THREADS)
    return open_fail(e, SE_ERR_ARGUMENT, "threads must be 0 (every core) or 1..%d, got %d", SE_MAX_THREADS, o.threads);
  if (o.weight_cache_dir && (strpbrk(o.weight_cache_dir, "\"\\\n\r") || strlen(o.weight_cache_dir) > 3000))
    return open_fail(e, SE_ERR_ARGUMENT, "weight_cache_dir must not contain quotes, backslashes or newlines");
  if (src->kind == SRC_FD)
    for (int k = 0; k < 3; k++)
      if (src->range[k].fd >= 0 && (src->range[k].offset < 0 || src->range[k].length < 0))
        return open_fail(e, SE_ERR_ARGUMENT, "the file range of %s has a negative offset or length", SOURCE_FILE[k]);
  if (!litert_at_least_2_3())
    return open_fail(e, SE_ERR_RUNTIME,
                     "the LiteRT runtime (libLiteRt.so) is older than " SE_LITERT_MIN_VERSION ": install ai-edge-litert >= "
                     SE_LITERT_MIN_VERSION " or link LiteRT " SE_LITERT_MIN_VERSION " or later");
  struct stat sb;
  if (o.weight_cache_dir && *o.weight_cache_dir && (stat(o.weight_cache_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
    return open_fail(e, SE_ERR_ARGUMENT, "weight_cache_dir is not a directory: %s", o.weight_cache_dir);
  if (src->kind == SRC_DIR && (stat(src->dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
    return open_fail(e, SE_ERR_MODEL, "model directory not found: %s", src->dir);
  char path[4096];
  source_label(src, 0, path, sizeof path);
  if (strlen(path) + 1 >= sizeof path) return open_fail(e, SE_ERR_ARGUMENT, "model directory path too long");
  size_t len = 0;
  char *text = NULL;
  se_status read = read_manifest_text(src, path, &text, &len, e);
  if (read != SE_OK) return read;
  char jerr[160];
  json_doc *doc = json_parse(text, len, jerr, sizeof jerr);
  free(text);
  if (!doc) return open_fail(e, SE_ERR_MODEL, "%s is not valid JSON (%s)", path, jerr);
  se_model *m = calloc(1, sizeof *m);
  if (!m) {
    json_free(doc);
    return open_fail(e, SE_ERR_NO_MEMORY, "out of memory");
  }
  atomic_init(&m->refs, 1);
  m->log = log;
  e = &m->log;
  se_status st = parse_manifest(m, json_root(doc), path, e);
  if (st == SE_OK) {
    m->threads = o.threads ? o.threads : available_cores();
    if (m->threads > SE_MAX_THREADS) m->threads = SE_MAX_THREADS;
    m->sides = o.sides;
    /* LiteRT logs at INFO on stderr unless told otherwise; an app's stderr is not ours. */
    LiteRtEnvOption env_opt;
    memset(&env_opt, 0, sizeof env_opt);
    env_opt.tag = kLiteRtEnvOptionTagMinLoggerSeverity;
    env_opt.value.type = kLiteRtAnyTypeInt;
    env_opt.value.int_value = litert_severity(o.litert_log_level);
    if (LiteRtCreateEnvironment(1, &env_opt, &m->env) != 0 || !m->env) {
      m->env = NULL;
      st = open_fail(e, SE_ERR_RUNTIME, "LiteRT could not create its environment");
    }
  }
  for (int side = SE_SIDE_ENCODER; st == SE_OK && side <= SE_SIDE_DECODER; side++)
    if (m->sides & side)
      st = load_graph(m, json_root(doc), src, side, &o, side == SE_SIDE_ENCODER ? &m->enc : &m->dec, e);
  json_free(doc);
  if (st != SE_OK) {
    model_destroy(m);
    return st;
  }
  say(e, SE_LOG_INFO, "opened %s: model %s, %s", source_place(src), m->model_id, m->precision);
  *out = m;
  return SE_OK;
}

se_status se_model_open(const char *dir, const se_model_options *options, se_model **out) {
  if (!dir) {
    if (out) *out = NULL;
    return open_fail(NULL, SE_ERR_ARGUMENT, "se_model_open: dir must not be NULL");
  }
  model_source src = {.kind = SRC_DIR, .dir = dir};
  return open_model(&src, options, out);
}

se_status se_model_open_memory(const void *manifest, size_t manifest_size, const void *encoder, size_t encoder_size,
                               const void *decoder, size_t decoder_size, const se_model_options *options,
                               se_model **out) {
  model_source src = {.kind = SRC_MEMORY,
                      .bytes = {manifest, encoder, decoder},
                      .size = {manifest_size, encoder_size, decoder_size}};
  return open_model(&src, options, out);
}

se_status se_model_open_fd(se_file_range manifest, se_file_range encoder, se_file_range decoder,
                           const se_model_options *options, se_model **out) {
  model_source src = {.kind = SRC_FD, .range = {manifest, encoder, decoder}};
  return open_model(&src, options, out);
}

void se_model_close(se_model *m) {
  if (m) model_release(m);
}

int se_model_sample_rate(const se_model *m) { return m ? m->sample_rate : 0; }
int se_model_channels(const se_model *m) { return m ? m->channels : 0; }
int se_model_latent_dim(const se_model *m) { return m ? m->latent_dim : 0; }
int se_model_hop(const se_model *m) { return m ? m->hop : 0; }
int se_model_frames_per_chunk(const se_model *m) { return m ? m->fpc : 0; }
int se_model_encoder_latency_samples(const se_model *m) {
  return m ? m->chunk_samples + m->start_skip_frames * m->hop : 0;
}
int se_model_decoder_latency_samples(const se_model *m) {
  return m ? (m->fpc - 1) * m->hop + m->start_skip_samples : 0;
}
int se_model_threads(const se_model *m) { return m ? m->threads : 0; }
int se_model_sides(const se_model *m) { return m ? m->sides : 0; }
const char *se_model_id(const se_model *m) { return m ? m->model_id : ""; }
const char *se_model_precision(const se_model *m) { return m ? m->precision : ""; }

/* ---------- streams ---------- */

static float *host_alloc(size_t count) {
  void *p = NULL;
  size_t bytes = (count * sizeof(float) + LITERT_HOST_MEMORY_BUFFER_ALIGNMENT - 1) & ~(size_t)(LITERT_HOST_MEMORY_BUFFER_ALIGNMENT - 1);
  if (bytes == 0) bytes = LITERT_HOST_MEMORY_BUFFER_ALIGNMENT;
  if (posix_memalign(&p, LITERT_HOST_MEMORY_BUFFER_ALIGNMENT, bytes) != 0) return NULL;
  memset(p, 0, bytes);
  return p;
}

void se_stream_free(se_stream *s) {
  if (!s) return;
  for (int i = 0; i <= SE_MAX_WINDOWS; i++)
    for (int j = 0; j < SE_MAX_IO; j++) {
      if (s->bufs_in[i][j]) LiteRtDestroyTensorBuffer(s->bufs_in[i][j]);
      if (s->bufs_out[i][j]) LiteRtDestroyTensorBuffer(s->bufs_out[i][j]);
    }
  for (int r = 0; r < R_NROLES; r++) {
    free(s->host[r]);
    free(s->host_out[r]);
  }
  free(s->pending);
  se_model *m = s->model;
  free(s);
  model_release(m);
}

static sig_info *stream_sig(se_stream *s, int slot) { return slot == SE_MAX_WINDOWS ? &s->g->flush : &s->g->sigs[slot]; }

static se_status stream_create(se_model *m, int side, int largest_window, se_stream **out) {
  if (out) *out = NULL;
  if (!m) return model_fail(NULL, SE_ERR_ARGUMENT, "model must not be NULL");
  if (!out) return model_fail(m, SE_ERR_ARGUMENT, "stream must not be NULL");
  graph *g = side == SE_SIDE_ENCODER ? m->enc : m->dec;
  const char *name = side == SE_SIDE_ENCODER ? "encoder" : "decoder";
  if (!g) return model_fail(m, SE_ERR_STATE, "this model was opened without its %s (se_model_options.sides)", name);
  if (largest_window < 0) return model_fail(m, SE_ERR_ARGUMENT, "largest_window must be >= 0, got %d", largest_window);
  se_stream *s = calloc(1, sizeof *s);
  if (!s) return model_fail(m, SE_ERR_NO_MEMORY, "out of memory");
  s->model = m, s->g = g, s->side = side, s->first = 1;
  atomic_flag_clear(&s->busy);
  atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed); /* se_stream_free takes it back, on any path */
  if (side == SE_SIDE_ENCODER) {
    s->rows_in = m->channels, s->rows_out = m->latent_dim;
    s->unit_in = (size_t)m->chunk_samples, s->unit_out = (size_t)m->fpc;
    s->skip = (size_t)m->start_skip_frames, s->flush_cols = (size_t)m->flush_frames;
  } else {
    s->rows_in = m->latent_dim, s->rows_out = m->channels;
    s->unit_in = (size_t)m->fpc, s->unit_out = (size_t)m->chunk_samples;
    s->skip = (size_t)m->start_skip_samples, s->flush_cols = (size_t)m->flush_samples;
  }
  s->start_skip = s->skip;
  s->total_frames = UINT64_MAX;
  /* As Python: the windows up to largest_window, or the smallest if none is that small. */
  for (int i = 0; i < m->n_windows; i++)
    if (largest_window == 0 || m->windows[i] <= largest_window) {
      s->windows[s->n_windows] = m->windows[i];
      s->sig_of[s->n_windows++] = i;
    }
  if (!s->n_windows) s->windows[0] = m->windows[0], s->sig_of[0] = 0, s->n_windows = 1;
  /* Host blocks: each role's largest tensor over the signatures this stream runs (the key bias's
   * too: it is written in place before each window, never allocated in a push). */
  for (int k = 0; k <= s->n_windows; k++) {
    sig_info *sig = k == s->n_windows ? &g->flush : &g->sigs[s->sig_of[k]];
    for (size_t i = 0; i < sig->n_in; i++) {
      if (sig->in[i].count > s->host_count[sig->in[i].role]) s->host_count[sig->in[i].role] = sig->in[i].count;
      if (sig->in[i].role == R_KEY_BIAS) s->depth = (size_t)sig->in[i].dims[0];
    }
    for (size_t i = 0; i < sig->n_out; i++)
      if (sig->out[i].count > s->host_out_count[sig->out[i].role]) s->host_out_count[sig->out[i].role] = sig->out[i].count;
  }
  se_status st = SE_OK;
  s->pending = host_alloc((size_t)s->rows_in * s->unit_in);
  if (!s->pending) st = SE_ERR_NO_MEMORY;
  for (int r = 0; r < R_NROLES && st == SE_OK; r++) {
    if (s->host_count[r] && !(s->host[r] = host_alloc(s->host_count[r]))) st = SE_ERR_NO_MEMORY;
    if (s->host_out_count[r] && !(s->host_out[r] = host_alloc(s->host_out_count[r]))) st = SE_ERR_NO_MEMORY;
  }
  if (st != SE_OK) {
    se_stream_free(s);
    return model_fail(m, st, "out of memory creating a stream");
  }
  for (int k = 0; k <= s->n_windows && st == SE_OK; k++) {
    int slot = k == s->n_windows ? SE_MAX_WINDOWS : s->sig_of[k];
    sig_info *sig = stream_sig(s, slot);
    for (int is_input = 1; is_input >= 0 && st == SE_OK; is_input--) {
      size_t n = is_input ? sig->n_in : sig->n_out;
      for (size_t i = 0; i < n; i++) {
        tensor_spec *t = is_input ? &sig->in[i] : &sig->out[i];
        float *host = is_input ? s->host[t->role] : s->host_out[t->role];
        LiteRtTensorBuffer *b = is_input ? &s->bufs_in[slot][i] : &s->bufs_out[slot][i];
        size_t bytes = (t->count * sizeof(float) + 63) & ~(size_t)63;
        if (LiteRtCreateTensorBufferFromHostMemory(&t->type, host, bytes, NULL, b) != 0) {
          *b = NULL;
          st = SE_ERR_RUNTIME;
          break;
        }
      }
    }
  }
  if (st != SE_OK) {
    se_stream_free(s);
    return model_fail(m, st, "LiteRT could not create the %s stream's tensor buffers", name);
  }
  *out = s;
  return SE_OK;
}

se_status se_encoder_create(se_model *m, int largest_window, se_stream **out) {
  return stream_create(m, SE_SIDE_ENCODER, largest_window, out);
}

se_status se_decoder_create(se_model *m, int largest_window, se_stream **out) {
  return stream_create(m, SE_SIDE_DECODER, largest_window, out);
}

/* One call at a time per stream: a second thread's call is refused, not run over the first one's
 * buffers (its message is its own thread's). */
static se_status stream_enter(se_stream *s) {
  if (!s) return model_fail(NULL, SE_ERR_ARGUMENT, "stream must not be NULL");
  if (atomic_flag_test_and_set_explicit(&s->busy, memory_order_acquire))
    return stream_fail(s, SE_ERR_STATE, "this stream is in use by another thread: a stream takes one call at a time");
  return SE_OK;
}

static void stream_leave(se_stream *s) { atomic_flag_clear_explicit(&s->busy, memory_order_release); }

se_status se_stream_reset(se_stream *s) {
  se_status st = stream_enter(s);
  if (st != SE_OK) return st;
  /* Zeros, as at creation: the graphs ignore the carried state on a first window, but the buffers
   * then hold exactly what a new stream's hold. */
  for (int r = 0; r < R_NROLES; r++) {
    if (s->host[r]) memset(s->host[r], 0, s->host_count[r] * sizeof(float));
    if (s->host_out[r]) memset(s->host_out[r], 0, s->host_out_count[r] * sizeof(float));
  }
  memset(s->pending, 0, (size_t)s->rows_in * s->unit_in * sizeof(float));
  s->pending_len = 0;
  s->in_total = s->out_total = 0;
  s->frames_run = 0, s->total_frames = UINT64_MAX;
  s->skip = s->start_skip;
  s->first = 1;
  s->flushed = s->failed = 0;
  stream_leave(s);
  return SE_OK;
}
int se_stream_input_rows(const se_stream *s) { return s ? s->rows_in : 0; }
int se_stream_output_rows(const se_stream *s) { return s ? s->rows_out : 0; }

/* Whether `cols` columns of `rows` floats fit in size_t bytes; a count past that is SIZE_MAX, the
 * size queries' overflow answer: no buffer holds it, and push and the offline calls refuse it. */
static int cols_fit(size_t cols, int rows) { return cols <= SIZE_MAX / sizeof(float) / (size_t)rows; }

size_t se_stream_push_output_size(const se_stream *s, size_t n) {
  if (!s || s->flushed || s->failed) return 0;
  if (!cols_fit(n, s->rows_in)) return SIZE_MAX;
  size_t chunks = (s->pending_len + n) / s->unit_in; /* pending_len < unit_in: no wrap after cols_fit */
  if (!chunks) return 0;
  if (chunks > SIZE_MAX / s->unit_out) return SIZE_MAX;
  size_t cols = chunks * s->unit_out;
  cols -= s->skip < cols ? s->skip : cols;
  return cols_fit(cols, s->rows_out) ? cols : SIZE_MAX;
}

/* Latent frames of the whole stream: those that cover the audio pushed, or the latents pushed. */
static uint64_t stream_frames(const se_stream *s) {
  if (s->side == SE_SIDE_ENCODER) return (s->in_total + (uint64_t)s->model->hop - 1) / (uint64_t)s->model->hop;
  return s->in_total;
}

static uint64_t stream_total_out(const se_stream *s) {
  return s->side == SE_SIDE_ENCODER ? stream_frames(s) : s->in_total * (uint64_t)s->model->hop;
}

size_t se_stream_flush_output_size(const se_stream *s) {
  if (!s || s->flushed || s->failed || s->in_total == 0) return 0;
  uint64_t need = stream_total_out(s) - s->out_total;
  /* The tail's chunk, then the flush signature's output (SAME-S) or the padding windows' (SAME-L:
   * flush_cols is depth * w frames of them), less what is left of the start skip. */
  uint64_t produced = s->flush_cols + (s->pending_len ? s->unit_out : 0);
  produced -= s->skip < produced ? s->skip : produced;
  return (size_t)(need < produced ? need : produced);
}

typedef struct {
  const float *data; /* caller's input */
  size_t n;          /* its columns */
  size_t off;        /* columns consumed */
  se_layout layout;
} input_view;

typedef struct {
  float *data;
  size_t cap;
  size_t written;
  size_t limit; /* write at most this many columns in total */
  se_layout layout;
} output_view;

static int all_finite(const float *x, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) return 0;
  return 1;
}

/* Fill the window's input tensor [rows_in][cols]: pending columns first, then the caller's, then
 * zeros (an odd tail at flush). */
static void fill_input(se_stream *s, float *dst, size_t cols, input_view *in) {
  size_t rows = (size_t)s->rows_in, p = s->pending_len;
  for (size_t r = 0; r < rows; r++) memcpy(dst + r * cols, s->pending + r * s->unit_in, p * sizeof(float));
  size_t take = in ? cols - p : 0;
  if (in && take > in->n - in->off) take = in->n - in->off;
  if (take) {
    if (in->layout == SE_PLANAR) {
      for (size_t r = 0; r < rows; r++) memcpy(dst + r * cols + p, in->data + r * in->n + in->off, take * sizeof(float));
    } else {
      const float *src = in->data + in->off * rows;
      for (size_t j = 0; j < take; j++)
        for (size_t r = 0; r < rows; r++) dst[r * cols + p + j] = src[j * rows + r];
    }
    in->off += take;
  }
  size_t filled = p + take;
  if (filled < cols)
    for (size_t r = 0; r < rows; r++) memset(dst + r * cols + filled, 0, (cols - filled) * sizeof(float));
  s->pending_len = 0;
}

/* Copy a run's output [rows_out][cols] to the caller, dropping the start skip and stopping at the limit. */
static se_status emit(se_stream *s, const float *src, size_t cols, output_view *out) {
  size_t start = s->skip < cols ? s->skip : cols;
  s->skip -= start;
  size_t count = cols - start;
  if (count > out->limit - out->written) count = out->limit - out->written;
  size_t rows = (size_t)s->rows_out;
  for (size_t r = 0; r < rows; r++)
    if (!all_finite(src + r * cols + start, count))
      return stream_fail(s, SE_ERR_NONFINITE, "the %s produced NaN or Inf: input far outside the model's range",
                         s->side == SE_SIDE_ENCODER ? "encoder" : "decoder");
  if (out->layout == SE_PLANAR) {
    for (size_t r = 0; r < rows; r++)
      memcpy(out->data + r * out->cap + out->written, src + r * cols + start, count * sizeof(float));
  } else {
    float *dst = out->data + out->written * rows;
    for (size_t j = 0; j < count; j++)
      for (size_t r = 0; r < rows; r++) dst[j * rows + r] = src[r * cols + start + j];
  }
  out->written += count;
  s->out_total += count;
  return SE_OK;
}

static se_status run_signature(se_stream *s, int slot) {
  sig_info *sig = stream_sig(s, slot);
  pthread_mutex_lock(&s->g->run_lock);
  LiteRtStatus rc = LiteRtRunCompiledModel(s->g->compiled, sig->index, sig->n_in, s->bufs_in[slot], sig->n_out,
                                           s->bufs_out[slot]);
  pthread_mutex_unlock(&s->g->run_lock);
  if (rc != 0) return stream_fail(s, SE_ERR_RUNTIME, "LiteRT failed to run a signature (status %d)", rc);
  return SE_OK;
}

/* SAME-L: the key bias of the next window, of `frames` frames (same_edge/sliding.py's
 * stream_key_bias): block i's column j stands for stream frame frames_run - 2w - i*w + j, which its
 * keys may see (0) only if it is in the stream: from frame 0, up to its end once the flush knows it. */
static void fill_key_bias(se_stream *s, size_t frames) {
  int64_t w = s->model->window_frames;
  size_t cols = frames + 2 * (size_t)w;
  float *bias = s->host[R_KEY_BIAS];
  for (size_t i = 0; i < s->depth; i++)
    for (size_t j = 0; j < cols; j++) {
      int64_t frame = (int64_t)s->frames_run - 2 * w - (int64_t)i * w + (int64_t)j;
      bias[i * cols + j] = frame >= 0 && (uint64_t)frame < s->total_frames ? 0.0f : -1e9f;
    }
  s->frames_run += frames;
}

/* One window call: `chunks` chunks (a model window size) of input, keep_last = -1 or the number of
 * real latent frames of a padded decoder tail. */
static se_status run_window(se_stream *s, int k, input_view *in, output_view *out, int keep_last) {
  int slot = s->sig_of[k];
  size_t w = (size_t)s->windows[k];
  size_t cols_in = w * s->unit_in, cols_out = w * s->unit_out;
  float *big_in = s->host[s->side == SE_SIDE_ENCODER ? R_AUDIO : R_LATENTS];
  fill_input(s, big_in, cols_in, in);
  if (s->model->sliding) {
    fill_key_bias(s, w * (size_t)s->model->fpc);
  } else {
    s->host[R_FIRST][0] = s->first ? 1.0f : 0.0f;
    s->first = 0;
    if (s->side == SE_SIDE_DECODER) {
      size_t frames = w * s->unit_in;
      for (size_t i = 0; i < frames; i++) s->host[R_KEEP][i] = (keep_last < 0 || i < (size_t)keep_last) ? 1.0f : 0.0f;
    }
  }
  se_status st = run_signature(s, slot);
  if (st != SE_OK) return st;
  /* The state (and SAME-S's decoder's context) carried to the next call. */
  memcpy(s->host[R_STATE], s->host_out[R_STATE], s->host_count[R_STATE] * sizeof(float));
  if (s->host[R_CONTEXT]) memcpy(s->host[R_CONTEXT], s->host_out[R_CONTEXT], s->host_count[R_CONTEXT] * sizeof(float));
  return emit(s, s->host_out[s->side == SE_SIDE_ENCODER ? R_LATENTS : R_AUDIO], cols_out, out);
}

static se_status check_open(se_stream *s) {
  if (s->failed) return stream_fail(s, SE_ERR_STATE, "this stream failed earlier; start a new one");
  if (s->flushed) return stream_fail(s, SE_ERR_STATE, "this stream was flushed; start a new one");
  return SE_OK;
}

/* An offline call's abort callback, asked before each graph call. */
static int run_aborted(const se_stream *s) { return s->run && s->run->abort_callback && s->run->abort_callback(s->run->user_data); }

/* `chunks` chunks of input (`in`, after the pending columns; NULL: zeros) through the stream's
 * windows, largest first, as Python's _plan. */
static se_status run_windows(se_stream *s, size_t chunks, input_view *in, output_view *out) {
  for (int k = s->n_windows - 1; k >= 0; k--)
    while (chunks >= (size_t)s->windows[k]) {
      if (run_aborted(s)) return stream_fail(s, SE_ERR_CANCELLED, "cancelled by the abort callback");
      se_status st = run_window(s, k, in, out, -1);
      if (st != SE_OK) return st;
      chunks -= (size_t)s->windows[k];
      if (in && s->run && s->run->progress_callback) s->run->progress_callback(in->off, in->n, s->run->user_data);
    }
  return SE_OK;
}

static se_status push_at(se_stream *s, const float *input, size_t n, se_layout layout, float *out, size_t cap,
                         size_t base, size_t *out_n) {
  const char *what = s->side == SE_SIDE_ENCODER ? "audio" : "latents";
  if (layout != SE_PLANAR && layout != SE_INTERLEAVED) return stream_fail(s, SE_ERR_ARGUMENT, "unknown layout %d", (int)layout);
  if (n && !input) return stream_fail(s, SE_ERR_ARGUMENT, "%s input is NULL", what);
  size_t need = se_stream_push_output_size(s, n);
  if (need == SIZE_MAX)
    return stream_fail(s, SE_ERR_ARGUMENT, "%zu input columns: the input or its output would not fit in memory", n);
  if (need && !out) return stream_fail(s, SE_ERR_ARGUMENT, "output is NULL");
  if (base + need > cap)
    return stream_fail(s, SE_ERR_BUFFER_TOO_SMALL, "the output needs %zu columns, the buffer holds %zu", base + need, cap);
  if (!all_finite(input, n * (size_t)s->rows_in)) return stream_fail(s, SE_ERR_ARGUMENT, "%s contains NaN or Inf", what);
  s->in_total += n;
  input_view in = {input, n, 0, layout};
  output_view ov = {out, cap, base, cap, layout};
  se_status st = run_windows(s, (s->pending_len + n) / s->unit_in, &in, &ov);
  if (st != SE_OK) {
    s->failed = 1;
    return st;
  }
  /* What is left is less than a chunk: keep it. */
  size_t rest = n - in.off, rows = (size_t)s->rows_in;
  if (rest) {
    if (layout == SE_PLANAR) {
      for (size_t r = 0; r < rows; r++)
        memcpy(s->pending + r * s->unit_in + s->pending_len, input + r * n + in.off, rest * sizeof(float));
    } else {
      for (size_t j = 0; j < rest; j++)
        for (size_t r = 0; r < rows; r++) s->pending[r * s->unit_in + s->pending_len + j] = input[(in.off + j) * rows + r];
    }
    s->pending_len += rest;
  }
  if (out_n) *out_n = ov.written - base;
  return SE_OK;
}

se_status se_stream_push(se_stream *s, const float *input, size_t n, se_layout layout, float *out, size_t cap,
                         size_t *out_n) {
  if (out_n) *out_n = 0;
  se_status st = stream_enter(s);
  if (st != SE_OK) return st;
  st = out_n ? check_open(s) : stream_fail(s, SE_ERR_ARGUMENT, "out_n must not be NULL");
  if (st == SE_OK) st = push_at(s, input, n, layout, out, cap, 0, out_n);
  stream_leave(s);
  return st;
}

static se_status flush_at(se_stream *s, se_layout layout, float *out, size_t cap, size_t base, size_t *out_n) {
  if (layout != SE_PLANAR && layout != SE_INTERLEAVED) return stream_fail(s, SE_ERR_ARGUMENT, "unknown layout %d", (int)layout);
  size_t need = se_stream_flush_output_size(s);
  if (need && !out) return stream_fail(s, SE_ERR_ARGUMENT, "output is NULL");
  if (base + need > cap)
    return stream_fail(s, SE_ERR_BUFFER_TOO_SMALL, "the output needs %zu columns, the buffer holds %zu", base + need, cap);
  s->flushed = 1;
  if (s->in_total == 0) return SE_OK;
  s->total_frames = stream_frames(s); /* SAME-L's key bias hides every frame past it from here on */
  output_view ov = {out, cap, base, base + need, layout};
  se_status st = SE_OK;
  if (s->pending_len) {
    /* The last, partial chunk: the encoder's audio padded with zeros, the decoder's latents padded
     * with zero frames whose output is masked (keep = 0), as the whole-sequence model pads. */
    int real = (int)s->pending_len;
    st = run_window(s, 0, NULL, &ov, s->side == SE_SIDE_DECODER ? real : -1);
  }
  if (st == SE_OK && s->model->sliding) {
    /* SAME-L lags depth * w frames: as many frames of padding, which the key bias hides from every
     * real frame, bring out the rest (what goes past the stream's end is cut by the limit). */
    st = run_windows(s, s->depth * (size_t)s->model->window_frames, NULL, &ov);
  } else if (st == SE_OK) {
    st = run_signature(s, SE_MAX_WINDOWS);
    if (st == SE_OK) st = emit(s, s->host_out[s->side == SE_SIDE_ENCODER ? R_LATENTS : R_AUDIO], s->flush_cols, &ov);
  }
  if (st != SE_OK) {
    s->failed = 1;
    return st;
  }
  if (out_n) *out_n = ov.written - base;
  return SE_OK;
}

se_status se_stream_flush(se_stream *s, se_layout layout, float *out, size_t cap, size_t *out_n) {
  if (out_n) *out_n = 0;
  se_status st = stream_enter(s);
  if (st != SE_OK) return st;
  st = out_n ? check_open(s) : stream_fail(s, SE_ERR_ARGUMENT, "out_n must not be NULL");
  if (st == SE_OK) st = flush_at(s, layout, out, cap, 0, out_n);
  stream_leave(s);
  return st;
}

/* ---------- offline ---------- */

size_t se_encode_output_size(const se_model *m, size_t frames) {
  if (!m) return 0;
  if (!cols_fit(frames, m->channels)) return SIZE_MAX;
  size_t cols = frames / (size_t)m->hop + (frames % (size_t)m->hop != 0);
  return cols_fit(cols, m->latent_dim) ? cols : SIZE_MAX;
}

size_t se_decode_output_size(const se_model *m, size_t n) {
  if (!m) return 0;
  if (!cols_fit(n, m->latent_dim) || n > SIZE_MAX / (size_t)m->hop) return SIZE_MAX;
  size_t cols = n * (size_t)m->hop;
  return cols_fit(cols, m->channels) ? cols : SIZE_MAX;
}

static se_status offline(se_model *m, int side, const float *input, size_t n, se_layout layout, float *out, size_t cap,
                         size_t *out_n, const se_run_options *options) {
  if (out_n) *out_n = 0;
  if (!m) return model_fail(NULL, SE_ERR_ARGUMENT, "model must not be NULL");
  se_run_options run;
  if (!read_struct(&run, sizeof run, RUN_OPTIONS_V1_SIZE, RUN_OPTIONS_KNOWN, options, "se_run_options", &m->log)) return SE_ERR_ARGUMENT;
  if (!out_n) return model_fail(m, SE_ERR_ARGUMENT, "the output count pointer must not be NULL");
  size_t total = side == SE_SIDE_ENCODER ? se_encode_output_size(m, n) : se_decode_output_size(m, n);
  if (total == SIZE_MAX)
    return model_fail(m, SE_ERR_ARGUMENT, "%zu input columns: the input or its output would not fit in memory", n);
  if (total > cap) return model_fail(m, SE_ERR_BUFFER_TOO_SMALL, "the output needs %zu columns, the buffer holds %zu", total, cap);
  se_stream *s = NULL;
  se_status st = stream_create(m, side, run.largest_window, &s);
  if (st != SE_OK) return st;
  s->run = &run;
  size_t head = 0, tail = 0;
  st = push_at(s, input, n, layout, out, cap, 0, &head);
  if (st == SE_OK && run_aborted(s)) st = stream_fail(s, SE_ERR_CANCELLED, "cancelled by the abort callback");
  if (st == SE_OK) st = flush_at(s, layout, out, cap, head, &tail);
  if (st == SE_OK) {
    *out_n = head + tail;
    if (run.progress_callback) run.progress_callback(n, n, run.user_data);
  }
  se_stream_free(s);
  return st;
}

se_status se_encode(se_model *m, const float *audio, size_t frames, se_layout layout, float *latents, size_t capacity,
                    size_t *n_latents, const se_run_options *options) {
  return offline(m, SE_SIDE_ENCODER, audio, frames, layout, latents, capacity, n_latents, options);
}

se_status se_decode(se_model *m, const float *latents, size_t n, se_layout layout, float *audio, size_t capacity,
                    size_t *n_frames, const se_run_options *options) {
  return offline(m, SE_SIDE_DECODER, latents, n, layout, audio, capacity, n_frames, options);
}
