/* libsame_edge 1.x: SAME music autoencoder streams on LiteRT, from C.
 *
 * A complete program: stream a file of interleaved stereo float32 audio at 44.1 kHz through the
 * encoder and the decoder, block by block, as an app's audio callback would (this example is
 * compiled with -Wall -Werror and run by tests/test_native.py):
 *
 * example-begin
 *   #include <stdio.h>
 *   #include <stdlib.h>
 *
 *   #include "same_edge.h"
 *
 *   int main(int argc, char **argv) {
 *     if (argc != 3) {
 *       fprintf(stderr, "usage: %s MODEL_DIR AUDIO.f32\n", argv[0]);
 *       return 2;
 *     }
 *     se_model_options options = {0};  // zero is every default
 *     options.threads = 2;
 *     se_model *model = NULL;
 *     se_stream *enc = NULL, *dec = NULL;
 *     if (se_model_open(argv[1], &options, &model) != SE_OK || se_encoder_create(model, 1, &enc) != SE_OK ||
 *         se_decoder_create(model, 1, &dec) != SE_OK) {
 *       fprintf(stderr, "%s\n", se_last_error());
 *       return 1;
 *     }
 *     se_model_close(model);  // the streams keep it alive
 *     enum { BLOCK = 4410, CAP = 1 << 16 };  // 100 ms in; CAP output columns, more than a block gives
 *     const size_t ch = (size_t)se_stream_input_rows(enc), dim = (size_t)se_stream_output_rows(enc);
 *     float *audio = malloc(sizeof(float) * ch * BLOCK), *z = malloc(sizeof(float) * dim * CAP),
 *           *y = malloc(sizeof(float) * ch * CAP);
 *     FILE *in = fopen(argv[2], "rb");
 *     size_t n, nz, ny, k, latents = 0, samples = 0;
 *     se_status st = in && audio && z && y ? SE_OK : SE_ERR_ARGUMENT;
 *     for (int last = 0; st == SE_OK && !last;) {
 *       n = fread(audio, sizeof(float) * ch, BLOCK, in);  // interleaved stereo float32 at 44.1 kHz
 *       last = n < BLOCK;
 *       st = se_stream_push(enc, audio, n, SE_INTERLEAVED, z, CAP, &nz);
 *       if (st == SE_OK && last && (st = se_stream_flush(enc, SE_INTERLEAVED, z + nz * dim, CAP - nz, &k)) == SE_OK)
 *         nz += k;
 *       if (st == SE_OK) st = se_stream_push(dec, z, nz, SE_INTERLEAVED, y, CAP, &ny);
 *       if (st == SE_OK && last && (st = se_stream_flush(dec, SE_INTERLEAVED, y + ny * ch, CAP - ny, &k)) == SE_OK)
 *         ny += k;
 *       latents += nz, samples += ny;  // y holds ny frames of interleaved audio: play or save them
 *     }
 *     if (st != SE_OK) fprintf(stderr, "%s: %s\n", se_status_name(st), in ? se_last_error() : argv[2]);
 *     else printf("%zu latent frames, %zu samples\n", latents, samples);
 *     if (in) fclose(in);
 *     free(audio);
 *     free(z);
 *     free(y);
 *     se_stream_free(enc);  // the last stream frees the model
 *     se_stream_free(dec);
 *     return st == SE_OK ? 0 : 1;
 *   }
 * example-end
 *
 * A model written by `same-edge export` (manifest.json, encoder.tflite, decoder.tflite) is opened
 * from its directory, from memory, or from file descriptors (an APK's uncompressed assets), with
 * the same checks each way: sizes and sha256 against the manifest, the graphs' structure, and the
 * manifest each graph embeds against manifest.json. Streams are created from an open model. Every
 * result is bit-identical to the Python runtime (same_edge.Codec) with the same thread count.
 *
 * ABI. The library's soname changes only with the major version. Structs an app fills in
 * (se_model_options, se_run_options) start with struct_size: the library reads only the bytes the
 * app's struct has (0 means the 1.0 size), gives later fields their defaults, and refuses a larger
 * struct only if a field it does not know is set. Every field's zero is its default, so `{0}` is
 * the default options. Renamed functions stay as deprecated aliases (SE_DEPRECATED) within a major
 * version.
 *
 * Errors. A call that fails returns a status other than SE_OK and leaves a one-line message for
 * the calling thread, read with se_last_error(); calls on other threads never overwrite it. The
 * message is also sent to the model's log callback at SE_LOG_ERROR.
 *
 * Threading. A se_model may be shared by any number of threads. Each stream owns its buffers,
 * pending input and carried state, so streams on different threads run concurrently (an encoder
 * stream on the capture thread, a decoder stream on the playback thread). One stream takes one
 * call at a time: a push, flush or reset that starts while another thread's call on the same
 * stream runs is refused with SE_ERR_STATE and changes nothing. se_stream_free must not race a
 * call on its stream (that cannot be detected). A graph runs one signature at a time: runs of
 * streams of the same side on different threads take turns on a mutex per graph; the encoder and
 * the decoder never wait for each other.
 *
 * Lifetimes. The library copies what it keeps: option strings, input blocks, and a model's bytes
 * (opened from memory, the caller may free them once the open returns). Each stream holds a
 * reference to its model: se_model_close releases the caller's reference, and the model is freed
 * when its last stream is freed. Strings the library returns are constant or live as long as the
 * object they describe (se_last_error's until the thread's next failing call).
 *
 * Memory. After a stream is created, push, flush and reset do not allocate in this library's code
 * (everything is preallocated; LiteRT's own behaviour inside a run is measured in
 * docs/EMBEDDING.md). se_encode/se_decode create a stream per call.
 *
 * Layouts. Audio is [channels][frames] (SE_PLANAR, one row per channel) or [frames][channels]
 * (SE_INTERLEAVED). Latents are [latent_dim][frames] (SE_PLANAR) or [frames][latent_dim]
 * (SE_INTERLEAVED). An output buffer of capacity `cap` columns in SE_PLANAR holds row r at
 * out + r * cap. Samples are float32 at the model's sample rate (44100 Hz for SAME), nominally
 * in [-1, 1].
 */
#ifndef SAME_EDGE_H
#define SAME_EDGE_H

#include <stddef.h>
#include <stdint.h>

#include "same_edge_version.h" /* SE_VERSION_MAJOR, _MINOR, _PATCH, SE_VERSION_STRING */

#ifdef __cplusplus
extern "C" {
#endif

/* Shared library: exported (building) or imported (using) on Windows, default visibility
 * elsewhere. Define SAME_EDGE_STATIC when linking the static library. */
#if defined(SAME_EDGE_STATIC)
#define SE_API
#elif defined(_WIN32) || defined(__CYGWIN__)
#if defined(SAME_EDGE_BUILDING_SHARED)
#define SE_API __declspec(dllexport)
#else
#define SE_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define SE_API __attribute__((visibility("default")))
#else
#define SE_API
#endif

/* Marks an entry point kept for compatibility: callers get a compiler warning naming the new one. */
#if defined(__GNUC__) || defined(__clang__)
#define SE_DEPRECATED(message) __attribute__((deprecated(message)))
#elif defined(_MSC_VER)
#define SE_DEPRECATED(message) __declspec(deprecated(message))
#else
#define SE_DEPRECATED(message)
#endif

typedef enum se_status {
  SE_OK = 0,
  SE_ERR_ARGUMENT = 1,         /* null pointer, wrong size, option or layout, NaN/Inf input */
  SE_ERR_MODEL = 2,            /* model missing, damaged or inconsistent */
  SE_ERR_RUNTIME = 3,          /* LiteRT missing, too old (see SE_LITERT_MIN_VERSION) or failing */
  SE_ERR_STATE = 4,            /* push or flush after flush; a stream that failed before, or in use by
                                  another thread; a side the model was opened without */
  SE_ERR_NO_MEMORY = 5,
  SE_ERR_BUFFER_TOO_SMALL = 6, /* the output capacity is less than the output; nothing was consumed */
  SE_ERR_NONFINITE = 7,        /* the graph produced NaN or Inf (input far outside the model's range) */
  SE_ERR_CANCELLED = 8         /* se_run_options.abort_callback asked to stop */
} se_status;

typedef enum se_layout { SE_PLANAR = 0, SE_INTERLEAVED = 1 } se_layout;

/* Which graphs a model loads: an app that only decodes loads half. 0 means both. */
enum { SE_SIDE_ENCODER = 1, SE_SIDE_DECODER = 2, SE_SIDE_BOTH = 3 };

typedef enum se_log_level {
  SE_LOG_DEFAULT = 0, /* this library: SE_LOG_WARNING; LiteRT: SE_LOG_SILENT */
  SE_LOG_DEBUG = 1,
  SE_LOG_INFO = 2,
  SE_LOG_WARNING = 3,
  SE_LOG_ERROR = 4,
  SE_LOG_SILENT = 5
} se_log_level;

/* Receives this library's messages at or above se_model_options.log_level, on the thread that
 * made the call, one line each, without a newline. `message` is valid during the call only. */
typedef void (*se_log_callback)(se_log_level level, const char *message, void *user_data);

typedef struct se_model se_model;
typedef struct se_stream se_stream;

typedef struct se_model_options {
  size_t struct_size;           /* sizeof(se_model_options) as the app was compiled (se_model_options_init
                                   sets it); 0: the 1.0 size */
  int threads;                  /* CPU threads for LiteRT/XNNPACK, 1..256; 0: every core this process may use */
  int sides;                    /* SE_SIDE_*; 0: both */
  const char *weight_cache_dir; /* where XNNPACK keeps packed weights between opens: a directory, in which
                                   each graph has its own file named after its sha256
                                   ("encoder-<first 16 hex digits>.xnn"), so a replaced export never
                                   reuses another's packed weights. NULL: in memory where memfd_create
                                   exists (Linux, Android), else none; "": none (each signature packs
                                   its own copy: more memory, the same outputs). Under a finite file-size
                                   limit (`ulimit -f`) there is none, whatever this says: XNNPACK writing
                                   past it would die of SIGXFSZ. Copied at open. */
  int skip_sha256;              /* 0: check each graph's sha256 against the manifest; 1: its size only */
  se_log_level log_level;       /* this library's messages to log_callback; 0: SE_LOG_WARNING */
  se_log_callback log_callback; /* NULL: this library's messages are dropped */
  void *log_user_data;          /* passed to log_callback; must outlive the model and its streams */
  se_log_level litert_log_level;/* LiteRT's own messages, which it writes to stderr (it exports no hook
                                   to redirect them); 0: SE_LOG_SILENT */
  int reserved;                 /* 0. Fills what would be tail padding, where a later field would hide
                                   from a 1.0 library's check of unknown fields */
} se_model_options;

/* Options of one offline se_encode/se_decode call. */
typedef struct se_run_options {
  size_t struct_size; /* as se_model_options.struct_size */
  int largest_window; /* the largest window (in chunks) a graph call may use; 0: every one */
  /* Called on the calling thread before each graph call; nonzero stops the call with
   * SE_ERR_CANCELLED (the output buffer's contents are then unspecified). Another thread
   * cancels by setting a flag this reads. */
  int (*abort_callback)(void *user_data);
  /* Called after each graph call: input columns consumed so far, of `total`. */
  void (*progress_callback)(size_t done, size_t total, void *user_data);
  void *user_data;
} se_run_options;

/* Where a model file is inside an open file: an APK's uncompressed asset is (the APK's fd,
 * AssetFileDescriptor.getStartOffset(), getLength()); a whole file is (fd, 0, its size). The
 * library reads with pread (the fd's position is not used or moved) and does not close it. */
typedef struct se_file_range {
  int fd;
  int64_t offset;
  int64_t length;
} se_file_range;

/* ---------- versions and errors ---------- */

/* This library's version, "MAJOR.MINOR.PATCH" (that of the same-edge Python package too), and as
 * MAJOR * 10000 + MINOR * 100 + PATCH. Compare with SE_VERSION_* to detect a mismatched library. */
SE_API const char *se_version(void);
SE_API int se_version_number(void);
/* The LiteRT runtime this process loaded, as the newest LiteRT C API release whose entry points it
 * has: "2.3", "2.2" or "<2.2" (libLiteRt.so exports no version call). The library refuses a runtime older than
 * SE_LITERT_MIN_VERSION (the same floor as the Python package's ai-edge-litert requirement). */
#define SE_LITERT_MIN_VERSION "2.3"
SE_API const char *se_litert_version(void);
/* A constant name for a status ("SE_ERR_MODEL"). */
SE_API const char *se_status_name(se_status status);
/* The message of this thread's latest failed call into the library ("" if none). Valid until this
 * thread's next failing call; never changed by other threads. */
SE_API const char *se_last_error(void);

/* ---------- models ---------- */

/* Zeroes *options and sets struct_size: the defaults. */
SE_API void se_model_options_init(se_model_options *options);

/* Open the model in directory DIR (manifest.json, encoder.tflite, decoder.tflite). options may be
 * NULL (defaults). Each graph is read into memory the library owns: replacing the files later
 * changes nothing. Only regular files are opened (a FIFO is refused, never waited on). On failure
 * *model is NULL. */
SE_API se_status se_model_open(const char *dir, const se_model_options *options, se_model **model);
/* The same from memory: manifest.json's bytes and each graph's (NULL and 0 for a side that
 * options->sides does not load). The bytes are copied; the caller may free them on return. */
SE_API se_status se_model_open_memory(const void *manifest, size_t manifest_size, const void *encoder,
                                      size_t encoder_size, const void *decoder, size_t decoder_size,
                                      const se_model_options *options, se_model **model);
/* The same from file ranges (see se_file_range; fd -1 for a side not loaded). The fds may be the
 * same file at different offsets, and may be closed once this returns. */
SE_API se_status se_model_open_fd(se_file_range manifest, se_file_range encoder, se_file_range decoder,
                                  const se_model_options *options, se_model **model);
/* Release the caller's reference: the model is freed now, or when its last stream is freed. The
 * handle must not be used after this. NULL is ignored. */
SE_API void se_model_close(se_model *model);

/* Model facts (0 or "" for a NULL model); strings live as long as the model. */
SE_API int se_model_sample_rate(const se_model *model);     /* Hz, 44100 for SAME */
SE_API int se_model_channels(const se_model *model);
SE_API int se_model_latent_dim(const se_model *model);
SE_API int se_model_hop(const se_model *model);             /* audio samples per latent frame */
/* Latent frames of the smallest window a graph runs: an attention chunk (2) for SAME-S; 1 for
 * SAME-L, whose sliding-window attention runs whole frames (windows and largest_window then count
 * frames). */
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

/* ---------- streams ---------- */

/* largest_window: the largest window (in chunks) a call may use; 1 is a live stream
 * (lowest latency, the Python default), 0 every window of the model (offline throughput). */
SE_API se_status se_encoder_create(se_model *model, int largest_window, se_stream **stream);
SE_API se_status se_decoder_create(se_model *model, int largest_window, se_stream **stream);
/* Free the stream and its reference to the model. NULL is ignored. */
SE_API void se_stream_free(se_stream *stream);
/* Back to the start, as if just created, without allocating: after a flush, a failure or
 * mid-stream. Its next outputs equal a new stream's bit for bit. */
SE_API se_status se_stream_reset(se_stream *stream);

/* Rows of a stream's input and output: encoder channels -> latent_dim, decoder latent_dim -> channels. */
SE_API int se_stream_input_rows(const se_stream *stream);
SE_API int se_stream_output_rows(const se_stream *stream);
/* Exactly how many output columns the next se_stream_push of n input columns, or se_stream_flush,
 * returns (latent frames for an encoder, audio frames for a decoder). SIZE_MAX when n columns, or
 * their output, would not fit in memory: an error, not a size (se_stream_push refuses that n with
 * SE_ERR_ARGUMENT). 0 for a NULL, flushed or failed stream. */
SE_API size_t se_stream_push_output_size(const se_stream *stream, size_t n);
SE_API size_t se_stream_flush_output_size(const se_stream *stream);

/* Push n input columns (audio frames for an encoder, latent frames for a decoder; any n, 0 too)
 * laid out as `layout`; write the output that is now final to out (capacity out_capacity columns,
 * same layout) and its count to *out_n. The input is copied: the caller may reuse its buffer at
 * once. If out_capacity is too small nothing is consumed (SE_ERR_BUFFER_TOO_SMALL). */
SE_API se_status se_stream_push(se_stream *stream, const float *input, size_t n, se_layout layout, float *out,
                                size_t out_capacity, size_t *out_n);
/* Finish: the rest of the output (the encoder pads the last audio to a whole chunk, the decoder
 * its last latents; SAME-L then runs windows of padding through the frames its stream lags by;
 * totals are ceil(T / hop) frames and L * hop samples). No push after it but for a reset. */
SE_API se_status se_stream_flush(se_stream *stream, se_layout layout, float *out, size_t out_capacity, size_t *out_n);

/* ---------- offline ---------- */

/* audio [channels x frames] -> latents, ceil(frames / hop) columns; the same as one push of
 * everything and a flush. options may be NULL (every window, no callbacks). The size queries
 * return SIZE_MAX, as se_stream_push_output_size does, when the input or output would not fit in
 * memory (se_encode and se_decode refuse that count), 0 for a NULL model. */
SE_API size_t se_encode_output_size(const se_model *model, size_t frames);
SE_API se_status se_encode(se_model *model, const float *audio, size_t frames, se_layout layout, float *latents,
                           size_t capacity, size_t *n_latents, const se_run_options *options);
/* latents [latent_dim x n] -> audio, n * hop frames. */
SE_API size_t se_decode_output_size(const se_model *model, size_t n);
SE_API se_status se_decode(se_model *model, const float *latents, size_t n, se_layout layout, float *audio,
                           size_t capacity, size_t *n_frames, const se_run_options *options);

/* ---------- deprecated ---------- */

/* 0.x's per-model message, which threads sharing a model overwrote: now this thread's. */
SE_DEPRECATED("use se_last_error()") SE_API const char *se_model_error(const se_model *model);

#ifdef __cplusplus
}
#endif
#endif /* SAME_EDGE_H */
