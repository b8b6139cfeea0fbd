/* Self-checks of libsame_edge's C API, run by tests/test_native.py in the normal and the
 * ASan+UBSan builds:
 *   se_selftest check MODEL_DIR   error paths, streams (random push sizes, 1 sample, odd tails,
 *                                 planar and interleaved) against offline, parallel threads
 *   se_selftest open MODEL_DIR    open and print "STATUS: message" (exit 0 when it opened, 3 when not)
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "check") == 0) return check(argv[2]);
  if (argc == 3 && strcmp(argv[1], "open") == 0) {
    char err[512];
    se_model *m = NULL;
    se_status st = se_model_open(argv[2], NULL, &m, err, sizeof err);
    printf("%s: %s\n", se_status_name(st), err);
    se_model_close(m);
    return st == SE_OK ? 0 : 3;
  }
  fprintf(stderr, "usage: se_selftest check|open MODEL_DIR\n");
  return 2;
}
