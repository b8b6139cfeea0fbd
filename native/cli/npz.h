/* same-edge latent files (.npz): a stored (uncompressed) zip with latents.npy ([latent_dim, L]
 * float32, fortran_order, i.e. frame-major) and scalar members sample_rate.npy, length.npy,
 * source_rate.npy (int64) and model_id.npy (unicode), as same_edge/latents.py writes them, and
 * format_version.npy (int64, NPZ_FORMAT_VERSION; absent in files from before it: version 1). A
 * newer version is refused by name.
 * The native reader reads that layout, zip64 or not; compressed members and row-major latents
 * (np.savez of a C-ordered array) are refused with a message. */
#ifndef SAME_EDGE_NPZ_H
#define SAME_EDGE_NPZ_H
#include <stdint.h>
#include <stdio.h>

#define NPZ_FORMAT_VERSION 1 /* same_edge.latents.FORMAT_VERSION */

typedef struct {
  int64_t sample_rate, length, source_rate;
  char model_id[256];
} npz_header;

typedef struct npz_writer npz_writer;
/* Writes to `tmp_path` (the caller renames it into place after npz_writer_close succeeds). */
npz_writer *npz_writer_open(const char *tmp_path, int latent_dim, char *err, size_t err_size);
int npz_writer_frames(npz_writer *w, const float *frames, size_t n); /* n frames, each latent_dim floats */
int npz_writer_close(npz_writer *w, const npz_header *h, char *err, size_t err_size);
void npz_writer_abort(npz_writer *w);

typedef struct npz_reader npz_reader;
npz_reader *npz_reader_open(const char *path, char *err, size_t err_size);
const npz_header *npz_reader_header(const npz_reader *r);
void npz_reader_shape(const npz_reader *r, int *latent_dim, int64_t *frames);
/* Read up to n frames (frame-major, latent_dim floats each); returns frames read, -1 on error. */
int64_t npz_reader_frames(npz_reader *r, float *out, int64_t n, char *err, size_t err_size);
void npz_reader_close(npz_reader *r);
#endif
