/* The C side of the Java binding's per-call benchmark (bench/Bench.java does the same through JNI):
 * median and mean time of N pushes into a live encoder stream (largest window 1) of one chunk each
 * (framesPerChunk * hop audio frames: one graph call per push), and of N empty pushes (the cost of a
 * call alone).  Usage: se_push_bench MODEL_DIR [N] [THREADS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "same_edge.h"

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void report(const char *what, double *t, int n) {
  double sum = 0;
  for (int i = 0; i < n; i++) sum += t[i];
  qsort(t, (size_t)n, sizeof *t, by_value);
  printf("C    %-24s median %10.3f us  mean %10.3f us  (n=%d)\n", what, t[n / 2], sum / n, n);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL_DIR [N] [THREADS]\n", argv[0]);
    return 2;
  }
  int n = argc > 2 ? atoi(argv[2]) : 200, warm = 5;
  se_model_options options;
  se_model_options_init(&options);
  options.threads = argc > 3 ? atoi(argv[3]) : 2;
  se_model *model = NULL;
  se_stream *enc = NULL;
  if (n < 1 || se_model_open(argv[1], &options, &model) != SE_OK || se_encoder_create(model, 1, &enc) != SE_OK) {
    fprintf(stderr, "%s\n", se_last_error());
    return 1;
  }
  size_t ch = (size_t)se_model_channels(model), dim = (size_t)se_model_latent_dim(model);
  size_t chunk = (size_t)se_model_frames_per_chunk(model) * (size_t)se_model_hop(model), cap = 64;
  float *audio = malloc(sizeof(float) * ch * chunk), *z = malloc(sizeof(float) * dim * cap);
  double *t = malloc(sizeof(double) * (size_t)n);
  unsigned seed = 1;
  for (size_t i = 0; i < ch * chunk; i++) {
    seed = seed * 1103515245u + 12345u;
    audio[i] = 0.1f * ((float)(seed >> 8) / (float)(1u << 24) - 0.5f);
  }
  size_t got;
  for (int i = -warm; i < n; i++) {
    double t0 = now_us();
    se_status st = se_stream_push(enc, audio, chunk, SE_INTERLEAVED, z, cap, &got);
    if (i >= 0) t[i] = now_us() - t0;
    if (st != SE_OK) {
      fprintf(stderr, "%s\n", se_last_error());
      return 1;
    }
  }
  report("push one chunk", t, n);
  for (int i = -warm; i < n; i++) {
    double t0 = now_us();
    se_stream_push(enc, audio, 0, SE_INTERLEAVED, z, cap, &got);
    if (i >= 0) t[i] = now_us() - t0;
  }
  report("push 0 frames", t, n);
  free(audio);
  free(z);
  free(t);
  se_stream_free(enc);
  se_model_close(model);
  return 0;
}
