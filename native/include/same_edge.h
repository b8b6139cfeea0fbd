/* libsame_edge: SAME music autoencoder streams on LiteRT, from C.
 *
 * One public header, a C ABI with opaque handles and no global state. A model directory written
 * by `same-edge export` (manifest.json + encoder.tflite + decoder.tflite) is opened once; encoder
 * and decoder streams are created from it. Every result is bit-identical to the Python runtime
 * (same_edge.Codec) with the same thread count.
 *
 * Threading: a se_model may be shared by any number of threads. Each stream owns its LiteRT
 * input/output buffers, pending input and carried state, so streams on different threads are
 * correct concurrently (an encoder stream on the capture thread and a decoder stream on the
 * playback thread, say). One stream must not be used by two threads at once: a push or flush
 * that starts while another thread's call on the same stream runs is refused (SE_ERR_STATE; the
 * stream is unchanged, and se_stream_error says so on the refused thread). se_stream_free must not
 * race a call on its stream: that cannot be detected. A graph's compiled model runs one signature
 * at a time: runs of streams of the same side (encoder or decoder) on different threads take
 * turns on a mutex per graph; the encoder and the decoder never wait for each other.
 *
 * Files: each graph is read into memory once at open (the bytes whose sha256 is checked are the
 * bytes run), so replacing or rewriting a model's files while it is open changes nothing. Only
 * regular files are opened: a FIFO or a device in a model directory is refused, never waited on.
 *
 * Memory: after a stream is created, push and flush do not allocate in this library's code
 * (everything is preallocated at creation; LiteRT's own behaviour inside a run is measured and
 * reported in docs/EMBEDDING.md). The offline se_encode/se_decode create a stream per call.
 *
 * Layouts: audio is [channels][frames] (SE_PLANAR, one row per channel, row stride = the count)
 * or [frames][channels] (SE_INTERLEAVED). Latents are [latent_dim][frames] (SE_PLANAR) or
 * [frames][latent_dim] (SE_INTERLEAVED). An output buffer of capacity `cap` in SE_PLANAR holds
 * row r at out + r * cap.
 */
#ifndef SAME_EDGE_H
#define SAME_EDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(SAME_EDGE_BUILDING_SHARED)
#define SE_API __declspec(dllexport)
#elif defined(__GNUC__)
#define SE_API __attribute__((visibility("default")))
#else
#define SE_API
#endif

#define SE_VERSION_MAJOR 0
#define SE_VERSION_MINOR 2
#define SE_VERSION_PATCH 0

typedef enum se_status {
  SE_OK = 0,
  SE_ERR_ARGUMENT = 1,        /* null pointer, wrong size or layout, NaN/Inf input */
  SE_ERR_MODEL = 2,           /* model directory missing, damaged or inconsistent */
  SE_ERR_RUNTIME = 3,         /* LiteRT missing, too old (< 2.2) or failing */
  SE_ERR_STATE = 4,           /* push or flush after flush; a stream that failed before, or in use by
                                 another thread; closing a model whose streams live */
  SE_ERR_NO_MEMORY = 5,
  SE_ERR_BUFFER_TOO_SMALL = 6,/* the output capacity is less than the output; nothing was consumed */
  SE_ERR_NONFINITE = 7        /* the graph produced NaN or Inf (input far outside the model's range) */
} se_status;

typedef enum se_layout { SE_PLANAR = 0, SE_INTERLEAVED = 1 } se_layout;

/* Which graphs se_model_open loads: an app that only decodes loads half. */
enum { SE_SIDE_ENCODER = 1, SE_SIDE_DECODER = 2, SE_SIDE_BOTH = 3 };

typedef struct se_model se_model;
typedef struct se_stream se_stream;

typedef struct se_model_options {
  int threads;              /* CPU threads for LiteRT/XNNPACK; 0: every core this process may use */
  int sides;                /* SE_SIDE_*; 0 means both */
  const char *weight_cache_dir; /* where XNNPACK keeps packed weights between opens: a directory, in
                               which each graph has its own file, named after the graph and its
                               sha256 in the manifest ("encoder-<first 16 hex digits>.xnn"), so a
                               replaced export never reuses another graph's packed weights. NULL:
                               in memory where memfd_create exists (Linux, Android), else none;
                               "": none (each signature packs its own copy). Under a finite file-size
                               limit (the soft RLIMIT_FSIZE, `ulimit -f`) there is none, whatever
                               this says: XNNPACK writing its cache past the limit would die of
                               SIGXFSZ or fail where it cannot be recovered from. No cache costs
                               memory (a copy of the packed weights per signature), not accuracy:
                               the outputs are the same. */
  int verify_sha256;        /* 1 (default): check each graph's sha256 against the manifest; 0: size only */
  int litert_log_severity;  /* LiteRT's minimum log severity: 4 (default) silent ... 1 info */
} se_model_options;

/* The library's version, "MAJOR.MINOR.PATCH", and as MAJOR * 10000 + MINOR * 100 + PATCH. */
SE_API const char *se_version(void);
SE_API int se_version_number(void);
/* A constant name for a status ("SE_ERR_MODEL"). */
SE_API const char *se_status_name(se_status status);

/* Defaults: threads 0, both sides, ":memory" cache, sha256 checked, LiteRT silent. */
SE_API void se_model_options_init(se_model_options *options);

/* Open DIR (manifest.json, encoder.tflite, decoder.tflite). options may be NULL (defaults).
 * On failure *model is NULL and, if error is not NULL, a one-line reason is written there
 * (truncated to error_size). Refuses a LiteRT runtime older than 2.2. */
SE_API se_status se_model_open(const char *dir, const se_model_options *options, se_model **model, char *error,
                               size_t error_size);
/* Release the model. Every stream created from it must have been freed first: while any lives,
 * the model stays open and usable, and this returns SE_ERR_STATE (se_model_error says how many).
 * SE_OK otherwise; NULL is ignored (SE_OK). (Before 0.2 this returned void: a caller ignoring the
 * result is unchanged.) */
SE_API se_status se_model_close(se_model *model);
/* The message of the model's latest failure (offline calls, stream creation); "" if none. */
SE_API const char *se_model_error(const se_model *model);

/* Model facts (0 or "" for a NULL model). */
SE_API int se_model_sample_rate(const se_model *model);     /* Hz, 44100 for SAME-S */
SE_API int se_model_channels(const se_model *model);
SE_API int se_model_latent_dim(const se_model *model);
SE_API int se_model_hop(const se_model *model);             /* audio samples per latent frame */
SE_API int se_model_frames_per_chunk(const se_model *model);
/* Algorithmic latency in samples: the most audio an encoder stream holds back (chunk_samples +
 * start_skip_frames * hop), and the most a decoder stream holds back behind the latents pushed
 * ((frames_per_chunk - 1) * hop + start_skip_samples); as same_edge.Manifest computes them. */
SE_API int se_model_encoder_latency_samples(const se_model *model);
SE_API int se_model_decoder_latency_samples(const se_model *model);
SE_API int se_model_threads(const se_model *model);
SE_API int se_model_sides(const se_model *model);           /* SE_SIDE_* loaded */
SE_API const char *se_model_id(const se_model *model);      /* config_sha256[:16] "-" checkpoint_sha256[:16] */
SE_API const char *se_model_precision(const se_model *model);

/* Streams. largest_window: the largest window (in attention chunks) a call may use; 1 is a live
 * stream (lowest latency, the Python default), 0 means every window of the model (offline
 * throughput). On failure *stream is NULL and se_model_error says why. */
SE_API se_status se_encoder_create(se_model *model, int largest_window, se_stream **stream);
SE_API se_status se_decoder_create(se_model *model, int largest_window, se_stream **stream);
SE_API void se_stream_free(se_stream *stream);
SE_API const char *se_stream_error(const se_stream *stream);

/* Rows of a stream's input and output: encoder channels -> latent_dim, decoder latent_dim -> channels. */
SE_API int se_stream_input_rows(const se_stream *stream);
SE_API int se_stream_output_rows(const se_stream *stream);
/* Exactly how many output columns the next se_stream_push of n input columns, or se_stream_flush,
 * returns (latent frames for an encoder, audio frames for a decoder). SIZE_MAX when n columns, or
 * their output, would not fit in memory (the bytes overflow size_t): an error, not a size;
 * se_stream_push refuses that n with SE_ERR_ARGUMENT. 0 for a NULL, flushed or failed stream. */
SE_API size_t se_stream_push_output_size(const se_stream *stream, size_t n);
SE_API size_t se_stream_flush_output_size(const se_stream *stream);

/* Push n input columns (audio frames for an encoder, latent frames for a decoder; any n, 0 too)
 * laid out as `layout`; write the output that is now final to out (capacity out_capacity columns,
 * same layout) and its count to *out_n. The input is copied: the caller may reuse its buffer at
 * once. If out_capacity is too small nothing is consumed (SE_ERR_BUFFER_TOO_SMALL). */
SE_API se_status se_stream_push(se_stream *stream, const float *input, size_t n, se_layout layout, float *out,
                                size_t out_capacity, size_t *out_n);
/* Finish: the rest of the output (the encoder pads the last audio to a whole chunk, the decoder
 * its last latents; totals are ceil(T / hop) frames and L * hop samples). No push after it. */
SE_API se_status se_stream_flush(se_stream *stream, se_layout layout, float *out, size_t out_capacity, size_t *out_n);

/* Offline, the same as one push of everything and a flush with every window:
 * audio [channels x frames] -> latents, ceil(frames / hop) columns. The size queries return
 * SIZE_MAX, as se_stream_push_output_size does, when the input or output would not fit in memory
 * (se_encode and se_decode refuse that count with SE_ERR_ARGUMENT), 0 for a NULL model. */
SE_API size_t se_encode_output_size(const se_model *model, size_t frames);
SE_API se_status se_encode(se_model *model, const float *audio, size_t frames, se_layout layout, float *latents,
                           size_t capacity, size_t *n_latents);
/* latents [latent_dim x n] -> audio, n * hop frames. */
SE_API size_t se_decode_output_size(const se_model *model, size_t n);
SE_API se_status se_decode(se_model *model, const float *latents, size_t n, se_layout layout, float *audio,
                           size_t capacity, size_t *n_frames);

#ifdef __cplusplus
}
#endif
#endif /* SAME_EDGE_H */
