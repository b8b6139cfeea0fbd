/* Counts heap allocations during stream push, flush and reset, by interposing malloc and friends in
 * this executable (glibc: the real ones are __libc_*). Each allocation is attributed to the
 * shared object its caller lies in (dladdr of the return address): libsame_edge must make none
 * after a stream is created; LiteRT's own, inside a run, are counted and reported.
 *
 *   se_alloc_count MODEL_DIR [THREADS]   prints one line of key=value counts; exit 1 if
 *                                        libsame_edge allocated during push, flush or reset. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "same_edge.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_int counting;
static atomic_long n_library, n_other, bytes_other;
static void *library_base;

static void count(void *caller, size_t size) {
  if (!atomic_load(&counting)) return;
  Dl_info info;
  if (dladdr(caller, &info) && info.dli_fbase == library_base) atomic_fetch_add(&n_library, 1);
  else atomic_fetch_add(&n_other, 1), atomic_fetch_add(&bytes_other, (long)size);
}

void *malloc(size_t size) {
  count(__builtin_return_address(0), size);
  return __libc_malloc(size);
}
void *calloc(size_t n, size_t size) {
  count(__builtin_return_address(0), n * size);
  return __libc_calloc(n, size);
}
void *realloc(void *p, size_t size) {
  count(__builtin_return_address(0), size);
  return __libc_realloc(p, size);
}
void free(void *p) { __libc_free(p); }
int posix_memalign(void **out, size_t align, size_t size) {
  count(__builtin_return_address(0), size);
  void *p = __libc_memalign(align, size);
  if (!p) return 12;
  *out = p;
  return 0;
}
void *aligned_alloc(size_t align, size_t size) {
  count(__builtin_return_address(0), size);
  return __libc_memalign(align, size);
}
void *memalign(size_t align, size_t size) {
  count(__builtin_return_address(0), size);
  return __libc_memalign(align, size);
}

typedef struct {
  long library, other, bytes;
} counts;

static counts take(void) {
  counts c = {atomic_exchange(&n_library, 0), atomic_exchange(&n_other, 0), atomic_exchange(&bytes_other, 0)};
  return c;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: se_alloc_count MODEL_DIR [THREADS]\n");
    return 2;
  }
  Dl_info info;
  if (!dladdr((void *)se_stream_push, &info)) return 2;
  library_base = info.dli_fbase;
  se_model_options o;
  se_model_options_init(&o);
  o.threads = argc > 2 ? atoi(argv[2]) : 1;
  se_model *m = NULL;
  if (se_model_open(argv[1], &o, &m) != SE_OK) {
    fprintf(stderr, "%s\n", se_last_error());
    return 2;
  }
  int ch = se_model_channels(m), dim = se_model_latent_dim(m), hop = se_model_hop(m);
  se_stream *enc, *dec;
  if (se_encoder_create(m, 1, &enc) != SE_OK || se_decoder_create(m, 1, &dec) != SE_OK) return 2;
  size_t block = (size_t)hop, blocks = 40;
  float *audio = malloc(sizeof(float) * (size_t)ch * block);
  for (size_t i = 0; i < (size_t)ch * block; i++) audio[i] = (float)((i * 2654435761u) % 1000) / 5000.0f - 0.1f;
  /* Room for the whole song's output: a flush gives up to the frames its stream lags by (SAME-L's
   * are many). */
  size_t cap_z = se_encode_output_size(m, block * blocks), cap_y = se_decode_output_size(m, cap_z);
  float *z = malloc(sizeof(float) * (size_t)dim * cap_z), *y = malloc(sizeof(float) * (size_t)ch * cap_y);
  long lib_total = 0, first_other = 0, steady_other = 0, steady_bytes = 0, runs_steady = 0, flush_other = 0;
  int status_ok = 1;
  for (size_t b = 0; b < blocks; b++) {
    size_t nz = 0, ny = 0;
    atomic_store(&counting, 1);
    status_ok &= se_stream_push(enc, audio, block, SE_INTERLEAVED, z, cap_z, &nz) == SE_OK;
    status_ok &= se_stream_push(dec, z, nz, SE_PLANAR, y, cap_y, &ny) == SE_OK;
    atomic_store(&counting, 0);
    counts c = take();
    lib_total += c.library;
    if (b < 4) first_other += c.other; /* the first window calls of each stream: LiteRT binds its buffers */
    else if (nz) steady_other += c.other, steady_bytes += c.bytes, runs_steady++;
  }
  size_t nz = 0, ny = 0;
  atomic_store(&counting, 1);
  status_ok &= se_stream_flush(enc, SE_PLANAR, z, cap_z, &nz) == SE_OK;
  status_ok &= se_stream_push(dec, z, nz, SE_PLANAR, y, cap_y, &ny) == SE_OK;
  status_ok &= se_stream_flush(dec, SE_PLANAR, y, cap_y, &ny) == SE_OK;
  atomic_store(&counting, 0);
  counts c = take();
  lib_total += c.library;
  flush_other = c.other;
  /* A reset, and the next song's first blocks: nothing allocated in the library either. */
  atomic_store(&counting, 1);
  status_ok &= se_stream_reset(enc) == SE_OK && se_stream_reset(dec) == SE_OK;
  for (size_t b = 0; b < 4; b++) {
    status_ok &= se_stream_push(enc, audio, block, SE_INTERLEAVED, z, cap_z, &nz) == SE_OK;
    status_ok &= se_stream_push(dec, z, nz, SE_PLANAR, y, cap_y, &ny) == SE_OK;
  }
  atomic_store(&counting, 0);
  lib_total += take().library;
  printf("library_allocs=%ld litert_allocs_first_4_blocks=%ld litert_allocs_per_window_pair_steady=%.1f "
         "litert_bytes_per_window_pair_steady=%.0f litert_allocs_flush=%ld statuses_ok=%d\n",
         lib_total, first_other, runs_steady ? (double)steady_other / (double)runs_steady : 0.0,
         runs_steady ? (double)steady_bytes / (double)runs_steady : 0.0, flush_other, status_ok);
  se_stream_free(enc);
  se_stream_free(dec);
  se_model_close(m);
  free(audio), free(z), free(y);
  return lib_total == 0 && status_ok ? 0 : 1;
}
