/* Self-checks of libsame_edge's C API, run by tests/test_native.py in the normal and the
 * ASan+UBSan builds:
 *   se_selftest check MODEL_DIR   error paths, streams (random push sizes, 1 sample, odd tails,
 *                                 planar and interleaved) against offline, parallel threads
 *   se_selftest open MODEL_DIR [WEIGHT_CACHE_DIR]
 *                                 open and print "STATUS: message" (exit 0 when it opened, 3 when not)
 *   se_selftest replace MODEL_COPY   graph files truncated and rewritten in place while the model runs
 *   se_selftest two-threads MODEL_DIR   one stream pushed from two threads at once
 *   se_selftest close-with-stream MODEL_DIR   se_model_close while a stream of the model lives
 *   se_selftest sizes MODEL_DIR   output sizes that overflow size_t
 * Each prints "ok" and exits 0 when every check holds.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "same_edge.h"

static int failures = 0;
#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
      failures++;                                          \
    }                                                      \
  } while (0)

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}
static float next_audio(uint64_t *s) { return (float)((double)(next_u64(s) >> 11) / 9007199254740992.0 - 0.5) * 0.4f; }

static float *transpose(const float *x, size_t rows, size_t cols) { /* [rows][cols] -> [cols][rows] */
  float *t = malloc(rows * cols * sizeof(float) + 1);
  for (size_t r = 0; r < rows; r++)
    for (size_t c = 0; c < cols; c++) t[c * rows + r] = x[r * cols + c];
  return t;
}

/* Push `x` ([rows][n] planar) through a stream in random pieces (1 sample among them); the
 * concatenated output, planar [rows_out][total]. */
static float *stream_all(se_model *m, int decoder, const float *x, size_t n, se_layout layout, uint64_t *seed,
                         size_t *total) {
  se_stream *s = NULL;
  se_status st = decoder ? se_decoder_create(m, 1, &s) : se_encoder_create(m, 1, &s);
  CHECK(st == SE_OK, "create: %s", se_model_error(m));
  if (st != SE_OK) return NULL;
  size_t rows = (size_t)se_stream_input_rows(s), orows = (size_t)se_stream_output_rows(s);
  size_t cap = decoder ? se_decode_output_size(m, n) : se_encode_output_size(m, n);
  float *out = calloc(orows * cap + 1, sizeof(float));
  float *piece = malloc(rows * (n + 1) * sizeof(float));
  float *piece_out = malloc(orows * (cap + 1) * sizeof(float));
  size_t done = 0, got = 0;
  int k = 0;
  while (done < n) {
    size_t len = k == 0 ? 1 : 1 + next_u64(seed) % (decoder ? 5 : 20000);
    if (k == 2) len = 1;
    k++;
    if (len > n - done) len = n - done;
    for (size_t r = 0; r < rows; r++)
      for (size_t j = 0; j < len; j++) {
        float v = x[r * n + done + j];
        if (layout == SE_PLANAR) piece[r * len + j] = v;
        else piece[j * rows + r] = v;
      }
    size_t want = se_stream_push_output_size(s, len), w = 0;
    st = se_stream_push(s, piece, len, layout, piece_out, cap, &w);
    CHECK(st == SE_OK && w == want, "push %zu: %s (%zu vs %zu)", len, se_stream_error(s), w, want);
    memset(piece, 0x7f, rows * len * sizeof(float)); /* the stream copied its input: reuse is safe */
    for (size_t r = 0; r < orows; r++)
      for (size_t j = 0; j < w && got + j < cap; j++)
        out[r * cap + got + j] = layout == SE_PLANAR ? piece_out[r * cap + j] : piece_out[j * orows + r];
    got += w;
    done += len;
  }
  size_t want = se_stream_flush_output_size(s), w = 0;
  st = se_stream_flush(s, layout, piece_out, cap, &w);
  CHECK(st == SE_OK && w == want, "flush: %s", se_stream_error(s));
  for (size_t r = 0; r < orows; r++)
    for (size_t j = 0; j < w && got + j < cap; j++)
      out[r * cap + got + j] = layout == SE_PLANAR ? piece_out[r * cap + j] : piece_out[j * orows + r];
  got += w;
  CHECK(got == cap, "stream total %zu, expected %zu", got, cap);
  /* No input after a flush. */
  size_t dummy;
  CHECK(se_stream_push(s, piece, 0, layout, piece_out, cap, &dummy) == SE_ERR_STATE, "push after flush");
  CHECK(se_stream_flush(s, layout, piece_out, cap, &dummy) == SE_ERR_STATE, "flush after flush");
  se_stream_free(s);
  free(piece);
  free(piece_out);
  *total = got;
  return out;
}

typedef struct {
  se_model *m;
  const float *x;
  size_t n;
  const float *z_ref, *y_ref;
  size_t nz, ny;
  int ok;
  uint64_t seed;
} job;

static void *thread_main(void *arg) {
  job *j = arg;
  size_t nz, ny;
  float *z = stream_all(j->m, 0, j->x, j->n, SE_INTERLEAVED, &j->seed, &nz);
  float *y = z ? stream_all(j->m, 1, z, nz, SE_PLANAR, &j->seed, &ny) : NULL;
  int channels = se_model_channels(j->m), dim = se_model_latent_dim(j->m);
  j->ok = z && y && nz == j->nz && ny == j->ny && memcmp(z, j->z_ref, nz * (size_t)dim * 4) == 0 &&
          memcmp(y, j->y_ref, ny * (size_t)channels * 4) == 0;
  free(z);
  free(y);
  return NULL;
}

static int check(const char *dir) {
  char err[512];
  se_model *m = NULL;
  CHECK(strlen(se_version()) >= 5 && se_version_number() == SE_VERSION_MAJOR * 10000 + SE_VERSION_MINOR * 100 + SE_VERSION_PATCH,
        "version");
  /* Null pointers and bad arguments: a status, never a crash. */
  CHECK(se_model_open(NULL, NULL, &m, err, sizeof err) == SE_ERR_ARGUMENT && m == NULL, "open(NULL)");
  CHECK(se_model_open(dir, NULL, NULL, err, sizeof err) == SE_ERR_ARGUMENT, "open(out NULL)");
  CHECK(se_model_open(dir, NULL, &m, NULL, 0) == SE_OK, "open without an error buffer");
  se_model_close(m);
  m = NULL;
  se_model_options o;
  se_model_options_init(&o);
  o.threads = -1;
  CHECK(se_model_open(dir, &o, &m, err, sizeof err) == SE_ERR_ARGUMENT && strstr(err, "threads"), "threads -1: %s", err);
  o.threads = 100000;
  CHECK(se_model_open(dir, &o, &m, err, sizeof err) == SE_ERR_ARGUMENT, "threads huge");
  CHECK(se_model_open("/nonexistent/model", NULL, &m, err, sizeof err) == SE_ERR_MODEL && strstr(err, "not found"),
        "missing dir: %s", err);
  se_model_close(NULL);
  se_stream_free(NULL);
  CHECK(se_model_hop(NULL) == 0 && strcmp(se_model_id(NULL), "") == 0 && strcmp(se_stream_error(NULL), "") == 0, "NULL getters");
  size_t n_out = 7;
  CHECK(se_stream_push(NULL, NULL, 0, SE_PLANAR, NULL, 0, &n_out) == SE_ERR_ARGUMENT && n_out == 0, "push(NULL)");
  CHECK(se_stream_flush(NULL, SE_PLANAR, NULL, 0, &n_out) == SE_ERR_ARGUMENT, "flush(NULL)");
  CHECK(se_encode(NULL, NULL, 0, SE_PLANAR, NULL, 0, &n_out) == SE_ERR_ARGUMENT, "encode(NULL)");
  CHECK(se_encoder_create(NULL, 1, NULL) == SE_ERR_ARGUMENT, "create(NULL)");

  se_model_options_init(&o);
  o.threads = 2;
  if (se_model_open(dir, &o, &m, err, sizeof err) != SE_OK) {
    fprintf(stderr, "FAIL: cannot open %s: %s\n", dir, err);
    return 1;
  }
  int channels = se_model_channels(m), dim = se_model_latent_dim(m), hop = se_model_hop(m);
  CHECK(se_model_threads(m) == 2 && se_model_sides(m) == SE_SIDE_BOTH && strlen(se_model_id(m)) == 33, "facts");
  CHECK(se_model_encoder_latency_samples(m) > 0 && se_model_decoder_latency_samples(m) > 0, "latency");
  se_stream *s = NULL;
  CHECK(se_encoder_create(m, -1, &s) == SE_ERR_ARGUMENT && s == NULL, "largest_window -1");
  CHECK(se_encoder_create(m, 1, NULL) == SE_ERR_ARGUMENT, "create(stream NULL)");
  CHECK(se_encoder_create(m, 1, &s) == SE_OK, "create");
  float buf[64] = {0};
  float big[2 * 8192];
  memset(big, 0, sizeof big);
  CHECK(se_stream_push(s, NULL, 5, SE_PLANAR, buf, 64, &n_out) == SE_ERR_ARGUMENT, "NULL input");
  CHECK(se_stream_push(s, buf, 1, (se_layout)7, buf, 64, &n_out) == SE_ERR_ARGUMENT, "bad layout");
  CHECK(se_stream_push(s, buf, 1, SE_PLANAR, buf, 64, NULL) == SE_ERR_ARGUMENT, "out_n NULL");
  buf[1] = NAN;
  CHECK(se_stream_push(s, buf, 4, SE_PLANAR, buf, 64, &n_out) == SE_ERR_ARGUMENT && strstr(se_stream_error(s), "NaN"),
        "NaN input: %s", se_stream_error(s));
  buf[1] = 0;
  /* Too small an output: nothing consumed, the same push then succeeds with room. */
  size_t frames = (size_t)se_model_frames_per_chunk(m) * (size_t)hop;
  if (frames * (size_t)channels <= sizeof big / sizeof big[0] && se_stream_push_output_size(s, frames) > 0) {
    CHECK(se_stream_push(s, big, frames, SE_PLANAR, buf, 0, &n_out) == SE_ERR_BUFFER_TOO_SMALL, "capacity 0");
    CHECK(se_stream_push(s, big, frames, SE_PLANAR, NULL, 0, &n_out) != SE_OK, "output NULL");
  }
  se_stream_free(s);

  /* Offline and streams agree exactly, planar and interleaved, with odd lengths. */
  size_t n = (size_t)hop * 7 + 123;
  float *x = malloc((size_t)channels * n * sizeof(float));
  for (size_t i = 0; i < (size_t)channels * n; i++) x[i] = next_audio(&rng_state);
  size_t nz = se_encode_output_size(m, n), got = 0;
  float *z = malloc((size_t)dim * nz * sizeof(float));
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz - 1, &got) == SE_ERR_BUFFER_TOO_SMALL, "encode capacity");
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got) == SE_OK && got == nz, "encode: %s", se_model_error(m));
  float *xi = transpose(x, (size_t)channels, n), *zi = malloc((size_t)dim * nz * sizeof(float));
  CHECK(se_encode(m, xi, n, SE_INTERLEAVED, zi, nz, &got) == SE_OK && got == nz, "encode interleaved");
  float *zt = transpose(zi, nz, (size_t)dim);
  CHECK(memcmp(z, zt, (size_t)dim * nz * 4) == 0, "interleaved encode differs from planar");
  size_t ny = se_decode_output_size(m, nz);
  float *y = malloc((size_t)channels * ny * sizeof(float));
  CHECK(se_decode(m, z, nz, SE_PLANAR, y, ny, &got) == SE_OK && got == ny, "decode: %s", se_model_error(m));
  for (int pass = 0; pass < 2; pass++) {
    se_layout layout = pass ? SE_INTERLEAVED : SE_PLANAR;
    uint64_t seed = 1234 + (uint64_t)pass;
    size_t tz = 0, ty = 0;
    float *sz = stream_all(m, 0, x, n, layout, &seed, &tz);
    CHECK(sz && tz == nz && memcmp(sz, z, nz * (size_t)dim * 4) == 0, "encoder stream != offline (layout %d)", pass);
    float *sy = stream_all(m, 1, z, nz, layout, &seed, &ty);
    CHECK(sy && ty == ny && memcmp(sy, y, ny * (size_t)channels * 4) == 0, "decoder stream != offline (layout %d)", pass);
    free(sz);
    free(sy);
  }
  /* A stream of 0 input: no output, and flush is empty. */
  CHECK(se_decoder_create(m, 0, &s) == SE_OK, "create decoder");
  CHECK(se_stream_push(s, NULL, 0, SE_PLANAR, NULL, 0, &n_out) == SE_OK && n_out == 0, "empty push");
  CHECK(se_stream_flush(s, SE_PLANAR, NULL, 0, &n_out) == SE_OK && n_out == 0, "empty flush");
  se_stream_free(s);

  /* Streams on several threads, one model: every result exact. */
  enum { THREADS = 3 };
  pthread_t tid[THREADS];
  job jobs[THREADS];
  for (int t = 0; t < THREADS; t++) {
    jobs[t] = (job){m, x, n, z, y, nz, ny, 0, 99 + (uint64_t)t};
    pthread_create(&tid[t], NULL, thread_main, &jobs[t]);
  }
  for (int t = 0; t < THREADS; t++) {
    pthread_join(tid[t], NULL);
    CHECK(jobs[t].ok, "thread %d: stream results differ from offline", t);
  }
  free(x), free(xi), free(z), free(zi), free(zt), free(y);
  se_model_close(m);

  /* A decoder-only model has no encoder. */
  se_model_options_init(&o);
  o.sides = SE_SIDE_DECODER;
  CHECK(se_model_open(dir, &o, &m, err, sizeof err) == SE_OK, "decoder only: %s", err);
  CHECK(se_encoder_create(m, 1, &s) == SE_ERR_STATE && strstr(se_model_error(m), "without its encoder"), "no encoder");
  se_model_close(m);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("ok\n");
  return failures ? 1 : 0;
}

static se_model *open_or_die(const char *dir, int threads) {
  char err[512];
  se_model_options o;
  se_model_options_init(&o);
  o.threads = threads;
  se_model *m = NULL;
  if (se_model_open(dir, &o, &m, err, sizeof err) != SE_OK) {
    fprintf(stderr, "FAIL: cannot open %s: %s\n", dir, err);
    exit(1);
  }
  return m;
}

static int done(void) {
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("ok\n");
  return failures ? 1 : 0;
}

static unsigned char *read_all(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  if (f && fseek(f, 0, SEEK_END) == 0) {
    long n = ftell(f);
    buf = n > 0 ? malloc((size_t)n) : NULL;
    rewind(f);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) free(buf), buf = NULL;
    *size = buf ? (size_t)n : 0;
  }
  if (f) fclose(f);
  return buf;
}

/* Truncate `path` and write `bytes` into it through the same inode, as `cp new.tflite` does. */
static void rewrite_in_place(const char *path, const unsigned char *bytes, size_t size) {
  int fd = open(path, O_WRONLY | O_TRUNC);
  CHECK(fd >= 0, "cannot open %s for writing", path);
  if (fd < 0) return;
  CHECK(write(fd, bytes, size) == (ssize_t)size, "cannot write %s", path);
  close(fd);
}

/* Encode and decode `x` offline; the results must equal z_ref and y_ref. */
static void check_offline(se_model *m, const float *x, size_t n, const float *z_ref, const float *y_ref, const char *when) {
  size_t nz = se_encode_output_size(m, n), ny = se_decode_output_size(m, nz), got = 0;
  float *z = malloc(nz * (size_t)se_model_latent_dim(m) * sizeof(float));
  float *y = malloc(ny * (size_t)se_model_channels(m) * sizeof(float));
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got) == SE_OK && got == nz, "%s: encode: %s", when, se_model_error(m));
  CHECK(memcmp(z, z_ref, nz * (size_t)se_model_latent_dim(m) * sizeof(float)) == 0, "%s: the latents changed", when);
  CHECK(se_decode(m, z_ref, nz, SE_PLANAR, y, ny, &got) == SE_OK && got == ny, "%s: decode: %s", when, se_model_error(m));
  CHECK(memcmp(y, y_ref, ny * (size_t)se_model_channels(m) * sizeof(float)) == 0, "%s: the audio changed", when);
  free(z), free(y);
}

/* An app that updates its model files while it runs: each graph file is truncated (a mapping of it
 * would fault with SIGBUS), then rewritten with the other graph's bytes; the open model runs on. */
static int replace(const char *dir) {
  se_model *m = open_or_die(dir, 1);
  int channels = se_model_channels(m), dim = se_model_latent_dim(m);
  size_t n = (size_t)se_model_hop(m) * 9 + 77, nz = se_encode_output_size(m, n), ny = se_decode_output_size(m, nz), got;
  float *x = malloc((size_t)channels * n * sizeof(float)), *z = malloc((size_t)dim * nz * sizeof(float));
  float *y = malloc((size_t)channels * ny * sizeof(float));
  for (size_t i = 0; i < (size_t)channels * n; i++) x[i] = next_audio(&rng_state);
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got) == SE_OK && se_decode(m, z, nz, SE_PLANAR, y, ny, &got) == SE_OK,
        "reference: %s", se_model_error(m));
  char enc_path[4096], dec_path[4096];
  snprintf(enc_path, sizeof enc_path, "%s/encoder.tflite", dir);
  snprintf(dec_path, sizeof dec_path, "%s/decoder.tflite", dir);
  size_t enc_size = 0, dec_size = 0;
  unsigned char *enc_bytes = read_all(enc_path, &enc_size), *dec_bytes = read_all(dec_path, &dec_size);
  CHECK(enc_bytes && dec_bytes, "cannot read the graphs of %s", dir);
  rewrite_in_place(enc_path, NULL, 0);
  rewrite_in_place(dec_path, NULL, 0);
  check_offline(m, x, n, z, y, "graphs truncated");
  rewrite_in_place(enc_path, dec_bytes, dec_size);
  rewrite_in_place(dec_path, enc_bytes, enc_size);
  check_offline(m, x, n, z, y, "graphs replaced");
  se_model_close(m);
  free(x), free(z), free(y), free(enc_bytes), free(dec_bytes);
  return done();
}

typedef struct {
  se_stream *s;
  const float *x;
  size_t n, cap;
  float *out;
  pthread_barrier_t *start;
  int *seen_refusal; /* read after each barrier: both threads stop at the same round */
  int ok, refused, other;
} pusher;

enum { PUSH_ROUNDS = 400 }; /* at most: the rounds stop at the first refusal */

static void *push_rounds(void *arg) {
  pusher *p = arg;
  for (int round = 0; round < PUSH_ROUNDS; round++) {
    size_t got = 0;
    pthread_barrier_wait(p->start);
    if (*p->seen_refusal) break;
    se_status st = se_stream_push(p->s, p->x, p->n, SE_PLANAR, p->out, p->cap, &got);
    if (st == SE_OK) p->ok++;
    else if (st == SE_ERR_STATE && strstr(se_stream_error(p->s), "another thread")) p->refused++, *p->seen_refusal = 1;
    else {
      p->other++;
      fprintf(stderr, "round %d: %s: %s\n", round, se_status_name(st), se_stream_error(p->s));
    }
  }
  return NULL;
}

/* One stream pushed from two threads at once (the header forbids it): while one call runs, the
 * other is refused with SE_ERR_STATE, and nothing is corrupted. */
static int two_threads(const char *dir) {
  se_model *m = open_or_die(dir, 1);
  se_stream *s = NULL;
  CHECK(se_encoder_create(m, 0, &s) == SE_OK, "create: %s", se_model_error(m));
  int channels = se_model_channels(m);
  size_t n = (size_t)se_model_frames_per_chunk(m) * (size_t)se_model_hop(m) * 4 + 1000; /* every call runs windows */
  float *x = malloc((size_t)channels * n * sizeof(float));
  for (size_t i = 0; i < (size_t)channels * n; i++) x[i] = next_audio(&rng_state);
  size_t cap = se_encode_output_size(m, 2 * n) + 16;
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, 2);
  pusher p[2];
  pthread_t tid[2];
  int seen_refusal = 0;
  for (int t = 0; t < 2; t++) {
    p[t] = (pusher){s, x, n, cap, malloc(cap * (size_t)se_model_latent_dim(m) * sizeof(float)), &start, &seen_refusal,
                    0, 0, 0};
    pthread_create(&tid[t], NULL, push_rounds, &p[t]);
  }
  for (int t = 0; t < 2; t++) pthread_join(tid[t], NULL);
  int ok = p[0].ok + p[1].ok, refused = p[0].refused + p[1].refused;
  CHECK(p[0].other + p[1].other == 0, "a push failed otherwise than refused");
  CHECK(refused == 1, "%d pushes refused in up to %d rounds of two at once (%d succeeded)", refused, PUSH_ROUNDS, ok);
  size_t got = 0;
  CHECK(se_stream_flush(s, SE_PLANAR, p[0].out, cap, &got) == SE_OK, "flush after: %s", se_stream_error(s));
  se_stream_free(s);
  pthread_barrier_destroy(&start);
  free(x), free(p[0].out), free(p[1].out);
  CHECK(se_model_close(m) == SE_OK, "close");
  return done();
}

/* se_model_close refuses while a stream of the model lives (the header forbids closing it then):
 * the model and the stream stay usable, and the close succeeds once the stream is freed. */
static int close_with_stream(const char *dir) {
  se_model *m = open_or_die(dir, 1);
  se_stream *s = NULL;
  CHECK(se_encoder_create(m, 0, &s) == SE_OK, "create: %s", se_model_error(m));
  CHECK(se_model_close(m) == SE_ERR_STATE && strstr(se_model_error(m), "1 stream"),
        "close with a live stream: %s", se_model_error(m));
  int channels = se_model_channels(m), dim = se_model_latent_dim(m);
  size_t n = (size_t)se_model_hop(m) * 5 + 3, nz = se_encode_output_size(m, n), a = 0, b = 0;
  float *x = malloc((size_t)channels * n * sizeof(float)), *z = malloc((size_t)dim * nz * sizeof(float));
  float *zs = malloc((size_t)dim * nz * sizeof(float));
  for (size_t i = 0; i < (size_t)channels * n; i++) x[i] = next_audio(&rng_state);
  CHECK(se_stream_push(s, x, n, SE_INTERLEAVED, zs, nz, &a) == SE_OK, "push after the refused close: %s", se_stream_error(s));
  CHECK(se_stream_flush(s, SE_INTERLEAVED, zs + a * (size_t)dim, nz - a, &b) == SE_OK && a + b == nz, "flush");
  CHECK(se_encode(m, x, n, SE_INTERLEAVED, z, nz, &a) == SE_OK && memcmp(z, zs, nz * (size_t)dim * sizeof(float)) == 0,
        "the model after the refused close: %s", se_model_error(m));
  se_stream_free(s);
  CHECK(se_model_close(m) == SE_OK, "close once the stream is freed");
  CHECK(se_model_close(NULL) == SE_OK, "close(NULL)");
  free(x), free(z), free(zs);
  return done();
}

/* A size query whose answer does not fit in memory says so (SIZE_MAX), and push refuses that count
 * before it reads any input. */
static int sizes(const char *dir) {
  se_model *m = open_or_die(dir, 1);
  size_t hop = (size_t)se_model_hop(m), channels = (size_t)se_model_channels(m), got = 7;
  se_stream *enc = NULL, *dec = NULL;
  CHECK(se_encoder_create(m, 1, &enc) == SE_OK && se_decoder_create(m, 1, &dec) == SE_OK, "create");
  CHECK(se_encode_output_size(m, SIZE_MAX) == SIZE_MAX, "encode size of SIZE_MAX frames: %zu", se_encode_output_size(m, SIZE_MAX));
  CHECK(se_decode_output_size(m, SIZE_MAX) == SIZE_MAX, "decode size of SIZE_MAX frames");
  CHECK(se_decode_output_size(m, SIZE_MAX / hop + 1) == SIZE_MAX, "decode size just past size_t");
  size_t fits = SIZE_MAX / sizeof(float) / channels / hop; /* latents whose audio is the largest buffer */
  CHECK(se_decode_output_size(m, fits) == fits * hop, "decode size of %zu frames", fits);
  CHECK(se_decode_output_size(m, fits + 1) == SIZE_MAX, "decode size of %zu frames", fits + 1);
  CHECK(se_encode_output_size(m, 10 * hop + 1) == 11 && se_decode_output_size(m, 11) == 11 * hop, "small sizes");
  /* Decoder counts that wrapped: 2^52 latent frames once gave 0 columns, 2^52 + 2 gave 3840. */
  const size_t big = (size_t)1 << (SIZE_MAX > 0xFFFFFFFFu ? 52 : 20), wrapping[3] = {big, big + 2, SIZE_MAX};
  for (int k = 0; k < 3; k++) {
    size_t n = wrapping[k];
    CHECK(se_stream_push_output_size(dec, n) == SIZE_MAX, "decoder push size of %zu frames: %zu", n,
          se_stream_push_output_size(dec, n));
    float one[256] = {0};
    CHECK(se_stream_push(dec, one, n, SE_PLANAR, one, 1, &got) == SE_ERR_ARGUMENT && got == 0,
          "decoder push of %zu frames: %s", n, se_stream_error(dec));
  }
  CHECK(se_stream_push_output_size(enc, SIZE_MAX / 4 + 1) == SIZE_MAX, "encoder push size past size_t");
  CHECK(se_stream_push_output_size(enc, SIZE_MAX) == SIZE_MAX, "encoder push size of SIZE_MAX");
  CHECK(se_stream_push_output_size(enc, hop * 4) > 0 && se_stream_push_output_size(enc, hop * 4) < SIZE_MAX, "real size");
  float none[2] = {0};
  CHECK(se_encode(m, none, SIZE_MAX, SE_PLANAR, none, SIZE_MAX, &got) == SE_ERR_ARGUMENT, "encode of SIZE_MAX frames");
  CHECK(se_decode(m, none, SIZE_MAX / hop + 1, SE_PLANAR, none, SIZE_MAX, &got) == SE_ERR_ARGUMENT, "decode past size_t");
  se_stream_free(enc), se_stream_free(dec);
  se_model_close(m);
  return done();
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "check") == 0) return check(argv[2]);
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "open") == 0) {
    char err[512];
    se_model *m = NULL;
    se_model_options o;
    se_model_options_init(&o);
    if (argc == 4) o.weight_cache_dir = argv[3];
    se_status st = se_model_open(argv[2], &o, &m, err, sizeof err);
    printf("%s: %s\n", se_status_name(st), err);
    se_model_close(m);
    return st == SE_OK ? 0 : 3;
  }
  if (argc == 3 && strcmp(argv[1], "replace") == 0) return replace(argv[2]);
  if (argc == 3 && strcmp(argv[1], "two-threads") == 0) return two_threads(argv[2]);
  if (argc == 3 && strcmp(argv[1], "close-with-stream") == 0) return close_with_stream(argv[2]);
  if (argc == 3 && strcmp(argv[1], "sizes") == 0) return sizes(argv[2]);
  fprintf(stderr, "usage: se_selftest check|open|replace|two-threads|close-with-stream|sizes MODEL_DIR\n");
  return 2;
}
