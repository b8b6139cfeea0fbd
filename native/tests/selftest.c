/* Self-checks of libsame_edge's C API, run by tests/test_native.py in the normal and the
 * ASan+UBSan builds:
 *   se_selftest check MODEL_DIR   error paths, streams (random push sizes, 1 sample, odd tails,
 *                                 planar and interleaved) against offline, parallel threads
 *   se_selftest open MODEL_DIR [WEIGHT_CACHE_DIR]
 *                                 open and print "STATUS: message" (exit 0 when it opened, 3 when not)
 *   se_selftest replace MODEL_COPY   graph files truncated and rewritten in place while the model runs
 *   se_selftest two-threads MODEL_DIR   one stream pushed from two threads at once
 *   se_selftest close-with-stream MODEL_DIR   streams outlive se_model_close and free the model
 *   se_selftest sizes MODEL_DIR   output sizes that overflow size_t
 *   se_selftest abi MODEL_DIR   options structs smaller, larger and {0}
 *   se_selftest sources MODEL_DIR SCRATCH   opening from memory and from file ranges; their damage
 *   se_selftest reset MODEL_DIR   se_stream_reset against new streams
 *   se_selftest callbacks MODEL_DIR   log, abort and progress callbacks
 *   se_selftest errors-per-thread   each thread reads its own failure
 * Each prints "ok" and exits 0 when every check holds.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
  CHECK(st == SE_OK, "create: %s", se_last_error());
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
    CHECK(st == SE_OK && w == want, "push %zu: %s (%zu vs %zu)", len, se_last_error(), w, want);
    memset(piece, 0x7f, rows * len * sizeof(float)); /* the stream copied its input: reuse is safe */
    for (size_t r = 0; r < orows; r++)
      for (size_t j = 0; j < w && got + j < cap; j++)
        out[r * cap + got + j] = layout == SE_PLANAR ? piece_out[r * cap + j] : piece_out[j * orows + r];
    got += w;
    done += len;
  }
  size_t want = se_stream_flush_output_size(s), w = 0;
  st = se_stream_flush(s, layout, piece_out, cap, &w);
  CHECK(st == SE_OK && w == want, "flush: %s", se_last_error());
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
  se_model *m = NULL;
  CHECK(strlen(se_version()) >= 5 && se_version_number() == SE_VERSION_MAJOR * 10000 + SE_VERSION_MINOR * 100 + SE_VERSION_PATCH,
        "version");
  /* Null pointers and bad arguments: a status, never a crash. */
  CHECK(se_model_open(NULL, NULL, &m) == SE_ERR_ARGUMENT && m == NULL, "open(NULL)");
  CHECK(se_model_open(dir, NULL, NULL) == SE_ERR_ARGUMENT, "open(out NULL)");
  CHECK(se_model_open(dir, NULL, &m) == SE_OK, "open");
  se_model_close(m);
  m = NULL;
  se_model_options o;
  se_model_options_init(&o);
  o.threads = -1;
  CHECK(se_model_open(dir, &o, &m) == SE_ERR_ARGUMENT && strstr(se_last_error(), "threads"), "threads -1: %s", se_last_error());
  o.threads = 100000;
  CHECK(se_model_open(dir, &o, &m) == SE_ERR_ARGUMENT, "threads huge");
  CHECK(se_model_open("/nonexistent/model", NULL, &m) == SE_ERR_MODEL && strstr(se_last_error(), "not found"),
        "missing dir: %s", se_last_error());
  se_model_close(NULL);
  se_stream_free(NULL);
  CHECK(se_model_hop(NULL) == 0 && strcmp(se_model_id(NULL), "") == 0, "NULL getters");
  size_t n_out = 7;
  CHECK(se_stream_push(NULL, NULL, 0, SE_PLANAR, NULL, 0, &n_out) == SE_ERR_ARGUMENT && n_out == 0, "push(NULL)");
  CHECK(se_stream_flush(NULL, SE_PLANAR, NULL, 0, &n_out) == SE_ERR_ARGUMENT, "flush(NULL)");
  CHECK(se_encode(NULL, NULL, 0, SE_PLANAR, NULL, 0, &n_out, NULL) == SE_ERR_ARGUMENT, "encode(NULL)");
  CHECK(se_encoder_create(NULL, 1, NULL) == SE_ERR_ARGUMENT, "create(NULL)");

  se_model_options_init(&o);
  o.threads = 2;
  if (se_model_open(dir, &o, &m) != SE_OK) {
    fprintf(stderr, "FAIL: cannot open %s: %s\n", dir, se_last_error());
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
  CHECK(se_stream_push(s, buf, 4, SE_PLANAR, buf, 64, &n_out) == SE_ERR_ARGUMENT && strstr(se_last_error(), "NaN"),
        "NaN input: %s", se_last_error());
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
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz - 1, &got, NULL) == SE_ERR_BUFFER_TOO_SMALL, "encode capacity");
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got, NULL) == SE_OK && got == nz, "encode: %s", se_last_error());
  float *xi = transpose(x, (size_t)channels, n), *zi = malloc((size_t)dim * nz * sizeof(float));
  CHECK(se_encode(m, xi, n, SE_INTERLEAVED, zi, nz, &got, NULL) == SE_OK && got == nz, "encode interleaved");
  float *zt = transpose(zi, nz, (size_t)dim);
  CHECK(memcmp(z, zt, (size_t)dim * nz * 4) == 0, "interleaved encode differs from planar");
  size_t ny = se_decode_output_size(m, nz);
  float *y = malloc((size_t)channels * ny * sizeof(float));
  CHECK(se_decode(m, z, nz, SE_PLANAR, y, ny, &got, NULL) == SE_OK && got == ny, "decode: %s", se_last_error());
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
  CHECK(se_model_open(dir, &o, &m) == SE_OK, "decoder only: %s", se_last_error());
  CHECK(se_encoder_create(m, 1, &s) == SE_ERR_STATE && strstr(se_last_error(), "without its encoder"), "no encoder");
  se_model_close(m);
  if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
  else printf("ok\n");
  return failures ? 1 : 0;
}

static se_model *open_or_die(const char *dir, int threads) {
  se_model_options o;
  se_model_options_init(&o);
  o.threads = threads;
  se_model *m = NULL;
  if (se_model_open(dir, &o, &m) != SE_OK) {
    fprintf(stderr, "FAIL: cannot open %s: %s\n", dir, se_last_error());
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
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got, NULL) == SE_OK && got == nz, "%s: encode: %s", when, se_last_error());
  CHECK(memcmp(z, z_ref, nz * (size_t)se_model_latent_dim(m) * sizeof(float)) == 0, "%s: the latents changed", when);
  CHECK(se_decode(m, z_ref, nz, SE_PLANAR, y, ny, &got, NULL) == SE_OK && got == ny, "%s: decode: %s", when, se_last_error());
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
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got, NULL) == SE_OK && se_decode(m, z, nz, SE_PLANAR, y, ny, &got, NULL) == SE_OK,
        "reference: %s", se_last_error());
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
    else if (st == SE_ERR_STATE && strstr(se_last_error(), "another thread")) p->refused++, *p->seen_refusal = 1;
    else {
      p->other++;
      fprintf(stderr, "round %d: %s: %s\n", round, se_status_name(st), se_last_error());
    }
  }
  return NULL;
}

/* One stream pushed from two threads at once (the header forbids it): while one call runs, the
 * other is refused with SE_ERR_STATE, and nothing is corrupted. */
static int two_threads(const char *dir) {
  se_model *m = open_or_die(dir, 1);
  se_stream *s = NULL;
  CHECK(se_encoder_create(m, 0, &s) == SE_OK, "create: %s", se_last_error());
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
  CHECK(se_stream_flush(s, SE_PLANAR, p[0].out, cap, &got) == SE_OK, "flush after: %s", se_last_error());
  se_stream_free(s);
  pthread_barrier_destroy(&start);
  free(x), free(p[0].out), free(p[1].out);
  se_model_close(m);
  return done();
}

/* A stream keeps its model alive: after se_model_close the stream runs on, exactly as before,
 * and freeing it frees the model (ASan reports a leak or a use after free otherwise). */
static int close_with_stream(const char *dir) {
  se_model *m = open_or_die(dir, 1);
  int channels = se_model_channels(m), dim = se_model_latent_dim(m);
  size_t n = (size_t)se_model_hop(m) * 5 + 3, nz = se_encode_output_size(m, n), a = 0, b = 0;
  float *x = malloc((size_t)channels * n * sizeof(float)), *z = malloc((size_t)dim * nz * sizeof(float));
  float *zs = malloc((size_t)dim * nz * sizeof(float));
  for (size_t i = 0; i < (size_t)channels * n; i++) x[i] = next_audio(&rng_state);
  CHECK(se_encode(m, x, n, SE_INTERLEAVED, z, nz, &a, NULL) == SE_OK, "reference: %s", se_last_error());
  se_stream *s = NULL, *s2 = NULL;
  CHECK(se_encoder_create(m, 0, &s) == SE_OK && se_encoder_create(m, 1, &s2) == SE_OK, "create: %s", se_last_error());
  se_model_close(m);
  CHECK(se_stream_push(s, x, n, SE_INTERLEAVED, zs, nz, &a) == SE_OK, "push after the close: %s", se_last_error());
  CHECK(se_stream_flush(s, SE_INTERLEAVED, zs + a * (size_t)dim, nz - a, &b) == SE_OK && a + b == nz, "flush");
  CHECK(memcmp(z, zs, nz * (size_t)dim * sizeof(float)) == 0, "a stream of a closed model differs");
  se_stream_free(s);
  memset(zs, 0, nz * (size_t)dim * sizeof(float));
  CHECK(se_stream_push(s2, x, n, SE_INTERLEAVED, zs, nz, &a) == SE_OK, "the last stream: %s", se_last_error());
  CHECK(se_stream_flush(s2, SE_INTERLEAVED, zs + a * (size_t)dim, nz - a, &b) == SE_OK && a + b == nz, "flush");
  CHECK(memcmp(z, zs, nz * (size_t)dim * sizeof(float)) == 0, "the last stream of a closed model differs");
  se_stream_free(s2); /* frees the model */
  se_model_close(NULL);
  free(x), free(z), free(zs);
  return done();
}

/* Encode `x` (planar, n frames) offline; the latents, or NULL after a failed check. */
static float *encode_all(se_model *m, const float *x, size_t n, size_t *nz) {
  *nz = se_encode_output_size(m, n);
  float *z = malloc(*nz * (size_t)se_model_latent_dim(m) * sizeof(float) + 1);
  size_t got = 0;
  se_status st = se_encode(m, x, n, SE_PLANAR, z, *nz, &got, NULL);
  CHECK(st == SE_OK && got == *nz, "encode: %s", se_last_error());
  if (st != SE_OK) free(z), z = NULL;
  return z;
}

static float *noise(size_t count) {
  float *x = malloc(count * sizeof(float));
  for (size_t i = 0; i < count; i++) x[i] = next_audio(&rng_state);
  return x;
}

/* Options structs across versions: an app compiled against an older 1.x header passes a smaller
 * se_model_options (the library must not read past it: it is allocated to its exact size, for
 * ASan), {0} is every default, a newer header's larger struct is taken while its unknown fields
 * are zero and refused once one is set. */
typedef struct { /* the 1.0 struct's first members, as an older header would have them */
  size_t struct_size;
  int threads;
  int sides;
} older_options;

static int abi(const char *dir) {
  se_model *m = NULL;
  older_options *old = malloc(sizeof *old);
  *old = (older_options){sizeof *old, 1, SE_SIDE_DECODER};
  CHECK(se_model_open(dir, (const se_model_options *)old, &m) == SE_OK, "an older, smaller struct: %s", se_last_error());
  CHECK(se_model_threads(m) == 1 && se_model_sides(m) == SE_SIDE_DECODER, "the older struct's fields were read");
  se_model_close(m);
  free(old);
  se_model_options zero = {0};
  zero.threads = 1;
  CHECK(se_model_open(dir, &zero, &m) == SE_OK && se_model_sides(m) == SE_SIDE_BOTH, "{0}: %s", se_last_error());
  se_model_close(m);
  /* A newer header's struct: this one's fields, then one this library does not know. */
  struct {
    se_model_options known;
    int64_t newer_field;
  } newer;
  memset(&newer, 0, sizeof newer);
  newer.known.struct_size = sizeof newer;
  newer.known.threads = 1;
  CHECK(se_model_open(dir, &newer.known, &m) == SE_OK, "a larger struct with zero new fields: %s", se_last_error());
  se_model_close(m);
  newer.newer_field = 1;
  m = (se_model *)&newer; /* must be reset to NULL */
  CHECK(se_model_open(dir, &newer.known, &m) == SE_ERR_ARGUMENT && m == NULL && strstr(se_last_error(), "does not know"),
        "a larger struct with a field set: %s", se_last_error());
  se_model_options bad = {0};
  bad.reserved = 1; /* where a later field would go */
  CHECK(se_model_open(dir, &bad, &m) == SE_ERR_ARGUMENT && strstr(se_last_error(), "does not know"), "reserved set");
  bad.reserved = 0, bad.struct_size = 3;
  CHECK(se_model_open(dir, &bad, &m) == SE_ERR_ARGUMENT && strstr(se_last_error(), "struct_size"), "struct_size 3");
  bad.struct_size = 0, bad.log_level = (se_log_level)9;
  CHECK(se_model_open(dir, &bad, &m) == SE_ERR_ARGUMENT && strstr(se_last_error(), "log level"), "log level 9");
  /* Run options: smaller (struct_size of its first two members) and NULL give the same latents. */
  CHECK(se_model_open(dir, &zero, &m) == SE_OK, "open");
  size_t n = (size_t)se_model_hop(m) * 6 + 5, nz = 0, got = 0;
  float *x = noise(n * (size_t)se_model_channels(m)), *z = encode_all(m, x, n, &nz);
  float *z2 = malloc(nz * (size_t)se_model_latent_dim(m) * sizeof(float) + 1);
  struct {
    size_t struct_size;
    int largest_window;
  } *run = malloc(sizeof *run);
  run->struct_size = sizeof *run, run->largest_window = 1;
  CHECK(se_encode(m, x, n, SE_PLANAR, z2, nz, &got, (const se_run_options *)run) == SE_OK, "older run options: %s",
        se_last_error());
  CHECK(z && memcmp(z, z2, nz * (size_t)se_model_latent_dim(m) * sizeof(float)) == 0, "window 1 != every window");
  free(run), free(x), free(z), free(z2);
  se_model_close(m);
  return done();
}

static unsigned char *read_model_file(const char *dir, const char *name, size_t *size) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  unsigned char *b = read_all(path, size);
  CHECK(b != NULL, "cannot read %s", path);
  return b;
}

static void write_at(int fd, const unsigned char *b, size_t size, off_t at) {
  CHECK(pwrite(fd, b, size, at) == (ssize_t)size, "pwrite");
}

/* A model opened from memory and from file ranges (the three files inside one larger file at
 * odd offsets, as an APK holds its assets) equals the directory's bit for bit, and the same
 * damage is refused each way. PACKED is a scratch file path. */
static int sources(const char *dir, const char *packed) {
  static const char *names[3] = {"manifest.json", "encoder.tflite", "decoder.tflite"};
  unsigned char *bytes[3];
  size_t size[3];
  for (int k = 0; k < 3; k++) bytes[k] = read_model_file(dir, names[k], &size[k]);
  if (!bytes[0] || !bytes[1] || !bytes[2]) return done();
  se_model_options o = {0};
  o.threads = 1;
  se_model *m = open_or_die(dir, 1), *mm = NULL, *mf = NULL;
  size_t n = (size_t)se_model_hop(m) * 9 + 111, nz, nz2;
  float *x = noise(n * (size_t)se_model_channels(m)), *z = encode_all(m, x, n, &nz);
  CHECK(se_model_open_memory(bytes[0], size[0], bytes[1], size[1], bytes[2], size[2], &o, &mm) == SE_OK,
        "memory: %s", se_last_error());
  for (int k = 0; k < 3; k++) memset(bytes[k], 0, size[k]); /* copied: the caller may reuse them */
  for (int k = 0; k < 3; k++) free(bytes[k]), bytes[k] = read_model_file(dir, names[k], &size[k]);
  int fd = open(packed, O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK(fd >= 0, "cannot create %s", packed);
  se_file_range r[3];
  off_t at = 4099; /* odd offsets, garbage between */
  unsigned char junk[777];
  memset(junk, 0xA5, sizeof junk);
  for (int k = 0; k < 3; k++) {
    write_at(fd, junk, sizeof junk, at - (off_t)sizeof junk);
    r[k] = (se_file_range){fd, (int64_t)at, (int64_t)size[k]};
    write_at(fd, bytes[k], size[k], at);
    at += (off_t)size[k] + 1001;
  }
  write_at(fd, junk, sizeof junk, at);
  off_t position = lseek(fd, 17, SEEK_SET);
  CHECK(se_model_open_fd(r[0], r[1], r[2], &o, &mf) == SE_OK, "fd: %s", se_last_error());
  CHECK(lseek(fd, 0, SEEK_CUR) == position, "the fd's position moved");
  se_model *opened[2] = {mm, mf};
  for (int k = 0; k < 2; k++) {
    if (!opened[k]) continue;
    float *z2 = encode_all(opened[k], x, n, &nz2);
    CHECK(z && z2 && nz2 == nz && memcmp(z, z2, nz * (size_t)se_model_latent_dim(m) * sizeof(float)) == 0,
          "%s: latents differ from the directory's", k ? "fd" : "memory");
    CHECK(strcmp(se_model_id(opened[k]), se_model_id(m)) == 0, "model id");
    free(z2);
    se_model_close(opened[k]);
  }
  /* The same refusals as a directory. */
  se_model *bad = NULL;
  CHECK(se_model_open_memory(bytes[0], size[0], bytes[1], size[1] - 1, bytes[2], size[2], &o, &bad) == SE_ERR_MODEL &&
        strstr(se_last_error(), "the manifest says"), "memory, truncated: %s", se_last_error());
  CHECK(se_model_open_memory(bytes[0], size[0], bytes[2], size[2], bytes[1], size[1], &o, &bad) == SE_ERR_MODEL,
        "memory, swapped graphs");
  bytes[1][size[1] / 2] ^= 0x40;
  CHECK(se_model_open_memory(bytes[0], size[0], bytes[1], size[1], bytes[2], size[2], &o, &bad) == SE_ERR_MODEL &&
        strstr(se_last_error(), "sha256"), "memory, flipped byte: %s", se_last_error());
  bytes[1][size[1] / 2] ^= 0x40;
  CHECK(se_model_open_memory("{", 1, bytes[1], size[1], bytes[2], size[2], &o, &bad) == SE_ERR_MODEL &&
        strstr(se_last_error(), "manifest.json (in memory) is not valid JSON"), "memory, bad manifest: %s", se_last_error());
  CHECK(se_model_open_memory(bytes[0], size[0], NULL, 0, bytes[2], size[2], &o, &bad) == SE_ERR_ARGUMENT,
        "memory, no encoder for both sides");
  o.sides = SE_SIDE_DECODER;
  CHECK(se_model_open_memory(bytes[0], size[0], NULL, 0, bytes[2], size[2], &o, &bad) == SE_OK, "memory, decoder only");
  se_model_close(bad), bad = NULL;
  o.sides = 0;
  se_file_range longer = r[1], no_file = {-1, 0, 0}, negative = {fd, -1, 10};
  longer.length += 1;
  CHECK(se_model_open_fd(r[0], longer, r[2], &o, &bad) == SE_ERR_MODEL && strstr(se_last_error(), "the manifest says"),
        "fd, a longer range: %s", se_last_error());
  se_file_range past_end = r[2];
  past_end.offset = at;
  CHECK(se_model_open_fd(r[0], r[1], past_end, &o, &bad) == SE_ERR_MODEL && strstr(se_last_error(), "ends before"),
        "fd, a range past the end: %s", se_last_error());
  CHECK(se_model_open_fd(r[0], r[2], r[1], &o, &bad) == SE_ERR_MODEL, "fd, swapped graphs");
  CHECK(se_model_open_fd(r[0], no_file, r[2], &o, &bad) == SE_ERR_ARGUMENT, "fd, no encoder");
  CHECK(se_model_open_fd(negative, r[1], r[2], &o, &bad) == SE_ERR_ARGUMENT, "fd, negative offset");
  se_file_range closed = r[0];
  closed.fd = 1000; /* not open */
  CHECK(se_model_open_fd(closed, r[1], r[2], &o, &bad) == SE_ERR_MODEL && strstr(se_last_error(), "cannot read"),
        "fd, a closed fd: %s", se_last_error());
  unsigned char flip = 0;
  CHECK(pread(fd, &flip, 1, (off_t)r[2].offset + (off_t)size[2] / 3) == 1, "pread");
  flip ^= 1;
  write_at(fd, &flip, 1, (off_t)r[2].offset + (off_t)size[2] / 3);
  CHECK(se_model_open_fd(r[0], r[1], r[2], &o, &bad) == SE_ERR_MODEL && strstr(se_last_error(), "sha256"),
        "fd, flipped byte: %s", se_last_error());
  CHECK(bad == NULL, "a refused open left a model");
  close(fd);
  unlink(packed);
  se_model_close(m);
  for (int k = 0; k < 3; k++) free(bytes[k]);
  free(x), free(z);
  return done();
}

/* Push `x` (planar, n frames) into an encoder stream in pieces of `piece`, then flush: the
 * latents (nz columns, planar), into out. */
static void stream_into(se_stream *s, const float *x, size_t n, size_t piece, float *out, size_t nz) {
  size_t got = 0, w = 0;
  int channels = se_stream_input_rows(s);
  float *buf = malloc((size_t)channels * piece * sizeof(float));
  float *o = malloc(nz * (size_t)se_stream_output_rows(s) * sizeof(float) + 1);
  for (size_t done = 0; done < n; done += piece) {
    size_t len = n - done < piece ? n - done : piece;
    for (int c = 0; c < channels; c++) memcpy(buf + (size_t)c * len, x + (size_t)c * n + done, len * sizeof(float));
    CHECK(se_stream_push(s, buf, len, SE_PLANAR, o, nz - got, &w) == SE_OK, "push: %s", se_last_error());
    for (int r = 0; r < se_stream_output_rows(s); r++) memcpy(out + (size_t)r * nz + got, o + (size_t)r * (nz - got), w * sizeof(float));
    got += w;
  }
  CHECK(se_stream_flush(s, SE_PLANAR, o, nz - got, &w) == SE_OK, "flush: %s", se_last_error());
  for (int r = 0; r < se_stream_output_rows(s); r++) memcpy(out + (size_t)r * nz + got, o + (size_t)r * (nz - got), w * sizeof(float));
  CHECK(got + w == nz, "stream total %zu, expected %zu", got + w, nz);
  free(buf), free(o);
}

/* se_stream_reset returns a stream to its start: mid-stream, after a flush, after a refused call;
 * its next output equals a new stream's bit for bit, for encoders and decoders. */
static int reset(const char *dir) {
  se_model *m = open_or_die(dir, 1);
  size_t n = (size_t)se_model_hop(m) * 11 + 4321, nz;
  size_t dim = (size_t)se_model_latent_dim(m), channels = (size_t)se_model_channels(m);
  float *x = noise(n * channels), *z = encode_all(m, x, n, &nz), *zs = malloc(nz * dim * sizeof(float));
  float *junk = noise(n * channels);
  for (int window = 0; window <= 1; window++) {
    se_stream *s = NULL;
    CHECK(se_encoder_create(m, window, &s) == SE_OK, "create");
    size_t w = 0;
    float *o = malloc(nz * dim * sizeof(float));
    /* mid-stream: half a song of other audio pushed, then reset */
    CHECK(se_stream_push(s, junk, n / 2, SE_PLANAR, o, nz, &w) == SE_OK, "push");
    CHECK(se_stream_reset(s) == SE_OK, "reset mid-stream");
    stream_into(s, x, n, 5000, zs, nz);
    CHECK(memcmp(z, zs, nz * dim * sizeof(float)) == 0, "window %d: after a reset mid-stream", window);
    /* after the flush (stream_into flushed) */
    CHECK(se_stream_push(s, x, 1, SE_PLANAR, o, nz, &w) == SE_ERR_STATE, "push after flush");
    CHECK(se_stream_reset(s) == SE_OK, "reset after flush");
    memset(zs, 0, nz * dim * sizeof(float));
    stream_into(s, x, n, 7777, zs, nz);
    CHECK(memcmp(z, zs, nz * dim * sizeof(float)) == 0, "window %d: after a reset after a flush", window);
    free(o);
    se_stream_free(s);
  }
  CHECK(se_stream_reset(NULL) == SE_ERR_ARGUMENT, "reset(NULL)");
  /* A decoder too: its state and context start again from zero. */
  size_t ny = se_decode_output_size(m, nz), got = 0, w = 0;
  float *y = malloc(ny * channels * sizeof(float)), *ys = malloc(ny * channels * sizeof(float));
  CHECK(se_decode(m, z, nz, SE_PLANAR, y, ny, &got, NULL) == SE_OK, "decode");
  se_stream *d = NULL;
  CHECK(se_decoder_create(m, 0, &d) == SE_OK, "create decoder");
  float *zt = transpose(z, dim, nz);
  CHECK(se_stream_push(d, zt, nz / 2, SE_INTERLEAVED, ys, ny, &w) == SE_OK, "decoder push");
  CHECK(se_stream_reset(d) == SE_OK, "decoder reset");
  CHECK(se_stream_push(d, zt, nz, SE_INTERLEAVED, ys, ny, &got) == SE_OK, "decoder push");
  CHECK(se_stream_flush(d, SE_INTERLEAVED, ys + got * channels, ny - got, &w) == SE_OK && got + w == ny, "decoder flush");
  float *yt = transpose(y, channels, ny);
  CHECK(memcmp(yt, ys, ny * channels * sizeof(float)) == 0, "decoder: after a reset");
  se_stream_free(d);
  free(x), free(z), free(zs), free(junk), free(y), free(ys), free(zt), free(yt);
  se_model_close(m);
  return done();
}

typedef struct {
  int infos, errors;
  char last[512];
} log_seen;

static void on_log(se_log_level level, const char *message, void *user) {
  log_seen *seen = user;
  if (level == SE_LOG_INFO) seen->infos++;
  if (level == SE_LOG_ERROR) seen->errors++;
  snprintf(seen->last, sizeof seen->last, "%s", message);
}

typedef struct {
  int calls, stop_after;
  size_t last_done, total;
  int monotonic;
  atomic_int *flag;
} run_seen;

static int on_abort(void *user) {
  run_seen *r = user;
  r->calls++;
  return (r->stop_after >= 0 && r->calls > r->stop_after) || (r->flag && atomic_load(r->flag));
}

static void on_progress(size_t done_, size_t total, void *user) {
  run_seen *r = user;
  r->monotonic &= done_ >= r->last_done && done_ <= total;
  r->last_done = done_, r->total = total;
}

static void *raise_flag(void *arg) {
  struct timespec pause = {0, 20 * 1000 * 1000};
  nanosleep(&pause, NULL);
  atomic_store((atomic_int *)arg, 1);
  return NULL;
}

/* The log callback gets the library's messages (INFO at open, the failure at ERROR); the abort
 * callback stops a long se_encode (after k windows, or from another thread's flag) with
 * SE_ERR_CANCELLED; progress counts up to the total. */
static int callbacks(const char *dir) {
  log_seen seen = {0};
  se_model_options o = {0};
  o.threads = 1, o.log_level = SE_LOG_INFO, o.log_callback = on_log, o.log_user_data = &seen;
  se_model *m = NULL;
  CHECK(se_model_open(dir, &o, &m) == SE_OK, "open: %s", se_last_error());
  CHECK(seen.infos >= 2 && seen.errors == 0, "%d info messages at open, %d errors", seen.infos, seen.errors);
  size_t n = (size_t)se_model_hop(m) * 40 + 9, nz = se_encode_output_size(m, n), got = 0;
  float *x = noise(n * (size_t)se_model_channels(m)), *z = malloc(nz * (size_t)se_model_latent_dim(m) * sizeof(float));
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz - 1, &got, NULL) == SE_ERR_BUFFER_TOO_SMALL, "too small");
  CHECK(seen.errors == 1 && strcmp(seen.last, se_last_error()) == 0, "the failure logged: %s", seen.last);
  run_seen r = {0, -1, 0, 0, 1, NULL};
  se_run_options run = {sizeof run, 1, on_abort, on_progress, &r};
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got, &run) == SE_OK && got == nz, "with callbacks: %s", se_last_error());
  CHECK(r.calls >= 2 && r.monotonic && r.last_done == n && r.total == n, "progress %zu of %zu after %d calls",
        r.last_done, r.total, r.calls);
  r = (run_seen){0, 2, 0, 0, 1, NULL};
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got, &run) == SE_ERR_CANCELLED && got == 0 && r.calls == 3 &&
        strstr(se_last_error(), "cancelled"), "cancelled after 2 windows: %d calls: %s", r.calls, se_last_error());
  CHECK(se_decode(m, z, nz, SE_PLANAR, NULL, 0, &got, &run) == SE_ERR_BUFFER_TOO_SMALL, "decode too small");
  /* From another thread, as an app's cancel button would. */
  atomic_int flag = 0;
  r = (run_seen){0, -1, 0, 0, 1, &flag};
  size_t long_n = n * 10;
  float *long_x = calloc(long_n * (size_t)se_model_channels(m), sizeof(float));
  size_t long_nz = se_encode_output_size(m, long_n);
  float *long_z = malloc(long_nz * (size_t)se_model_latent_dim(m) * sizeof(float));
  pthread_t t;
  pthread_create(&t, NULL, raise_flag, &flag);
  se_status st = se_encode(m, long_x, long_n, SE_PLANAR, long_z, long_nz, &got, &run);
  pthread_join(t, NULL);
  CHECK(st == SE_ERR_CANCELLED && r.last_done < long_n, "cancelled from another thread: %s, %zu of %zu",
        se_status_name(st), r.last_done, long_n);
  /* Still usable after a cancel. */
  CHECK(se_encode(m, x, n, SE_PLANAR, z, nz, &got, NULL) == SE_OK, "after a cancel");
  free(x), free(z), free(long_x), free(long_z);
  se_model_close(m);
  return done();
}

typedef struct {
  const char *dir;
  int mismatches;
} error_thread;

static void *fail_repeatedly(void *arg) {
  error_thread *t = arg;
  se_model *m = NULL;
  for (int i = 0; i < 2000; i++) {
    se_model_open(t->dir, NULL, &m);
    if (!strstr(se_last_error(), t->dir)) t->mismatches++;
  }
  return NULL;
}

/* Two threads failing at once each read their own message: never the other's. */
static int errors_per_thread(void) {
  error_thread t[2] = {{"/nonexistent/first-thread", 0}, {"/nonexistent/second-thread", 0}};
  pthread_t tid[2];
  for (int k = 0; k < 2; k++) pthread_create(&tid[k], NULL, fail_repeatedly, &t[k]);
  for (int k = 0; k < 2; k++) pthread_join(tid[k], NULL);
  CHECK(t[0].mismatches == 0 && t[1].mismatches == 0, "%d and %d messages from the other thread", t[0].mismatches,
        t[1].mismatches);
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
          "decoder push of %zu frames: %s", n, se_last_error());
  }
  CHECK(se_stream_push_output_size(enc, SIZE_MAX / 4 + 1) == SIZE_MAX, "encoder push size past size_t");
  CHECK(se_stream_push_output_size(enc, SIZE_MAX) == SIZE_MAX, "encoder push size of SIZE_MAX");
  size_t real = (size_t)se_model_encoder_latency_samples(m) + hop; /* more than the encoder holds back */
  CHECK(se_stream_push_output_size(enc, real) > 0 && se_stream_push_output_size(enc, real) < SIZE_MAX, "real size");
  float none[2] = {0};
  CHECK(se_encode(m, none, SIZE_MAX, SE_PLANAR, none, SIZE_MAX, &got, NULL) == SE_ERR_ARGUMENT, "encode of SIZE_MAX frames");
  CHECK(se_decode(m, none, SIZE_MAX / hop + 1, SE_PLANAR, none, SIZE_MAX, &got, NULL) == SE_ERR_ARGUMENT, "decode past size_t");
  se_stream_free(enc), se_stream_free(dec);
  se_model_close(m);
  return done();
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "check") == 0) return check(argv[2]);
  if ((argc == 3 || argc == 4) && strcmp(argv[1], "open") == 0) {
      se_model *m = NULL;
    se_model_options o;
    se_model_options_init(&o);
    if (argc == 4) o.weight_cache_dir = argv[3];
    se_status st = se_model_open(argv[2], &o, &m);
    printf("%s: %s\n", se_status_name(st), st == SE_OK ? "" : se_last_error());
    se_model_close(m);
    return st == SE_OK ? 0 : 3;
  }
  if (argc == 3 && strcmp(argv[1], "replace") == 0) return replace(argv[2]);
  if (argc == 3 && strcmp(argv[1], "two-threads") == 0) return two_threads(argv[2]);
  if (argc == 3 && strcmp(argv[1], "close-with-stream") == 0) return close_with_stream(argv[2]);
  if (argc == 3 && strcmp(argv[1], "sizes") == 0) return sizes(argv[2]);
  if (argc == 3 && strcmp(argv[1], "abi") == 0) return abi(argv[2]);
  if (argc == 4 && strcmp(argv[1], "sources") == 0) return sources(argv[2], argv[3]);
  if (argc == 3 && strcmp(argv[1], "reset") == 0) return reset(argv[2]);
  if (argc == 3 && strcmp(argv[1], "callbacks") == 0) return callbacks(argv[2]);
  if (argc == 2 && strcmp(argv[1], "errors-per-thread") == 0) return errors_per_thread();
  fprintf(stderr, "usage: se_selftest check|open|replace|two-threads|close-with-stream|sizes|abi|reset|callbacks MODEL_DIR\n"
                  "       se_selftest sources MODEL_DIR SCRATCH_FILE | errors-per-thread\n");
  return 2;
}
