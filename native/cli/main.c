/* same-edge-native: encode, decode, roundtrip and stream audio files with libsame_edge.
 * Audio through libsndfile, resampling through libsoxr (VHQ), as the Python CLI does. Bad input:
 * one line on stderr, exit status 2, no output file (written to a temporary file beside the
 * target, in folders made for it if missing, and renamed into place when complete; on failure the
 * file and the folders made are removed). tests/test_cli_agreement.py holds both CLIs to one table. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <sndfile.h>
#include <soxr.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "npz.h"
#include "same_edge.h"

#define BLOCK_SECONDS 4.0
#define DECODE_BLOCK_FRAMES 64
/* As same_edge.audio: INPUT_RATES (a rate outside is a damaged header, or not music) and
   FLAC_RATES (STREAMINFO holds the rate in 20 bits). */
#define MIN_INPUT_RATE 1000
#define MAX_INPUT_RATE 1000000
#define MAX_FLAC_RATE 655350

static char temp_path[4200]; /* the output being written, removed on any failure */
#define MAX_MADE_DIRS 64
static char *made_dirs[MAX_MADE_DIRS]; /* folders made for it, deepest first: removed with it */
static int n_made_dirs;

/* Async-signal-safe (unlink, rmdir): on_signal calls it too. */
static void remove_temp(void) {
  if (temp_path[0]) unlink(temp_path);
  temp_path[0] = '\0';
  for (int i = 0; i < n_made_dirs; i++) rmdir(made_dirs[i]); /* only if still empty */
  n_made_dirs = 0;
}

static void die(const char *fmt, ...) {
  va_list ap;
  remove_temp();
  fflush(stdout);
  fprintf(stderr, "same-edge-native: error: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  exit(2);
}

static void on_signal(int sig) {
  remove_temp();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory");
  return p;
}

static int has_ext(const char *path, const char *ext) {
  size_t n = strlen(path), e = strlen(ext);
  return n > e && strcasecmp(path + n - e, ext) == 0;
}

/* Make `dir` and its missing parents, as the Python CLI does (same_edge.atomic), each recorded in
 * made_dirs so that a failure removes them. */
static void make_parents(const char *target, const char *dir) {
  char path[4096];
  struct stat sb;
  snprintf(path, sizeof path, "%s", dir);
  int n = 0;
  char *missing[MAX_MADE_DIRS];
  while (stat(path, &sb) != 0 && errno == ENOENT) {
    if (n == MAX_MADE_DIRS) die("cannot write %s: more than %d folders to make", target, MAX_MADE_DIRS);
    missing[n++] = strdup(path);
    char *slash = strrchr(path, '/');
    while (slash && slash > path && slash[-1] == '/') slash--;
    if (!slash || slash == path) break; /* its parent is "." or "/" */
    *slash = '\0';
  }
  for (int i = n - 1; i >= 0; i--) {
    if (!missing[i]) die("out of memory");
    if (mkdir(missing[i], 0777) != 0 && errno != EEXIST) die("cannot write %s: %s", target, strerror(errno));
    memmove(made_dirs + 1, made_dirs, (size_t)n_made_dirs * sizeof *made_dirs); /* deepest first */
    made_dirs[0] = missing[i], n_made_dirs++;
  }
}

/* A temporary name beside `target`: ".NAME.XXXXXX". */
static void make_temp(const char *target) {
  char copy[4096], copy2[4096];
  if (strlen(target) >= sizeof copy) die("output path too long: %s", target);
  snprintf(copy, sizeof copy, "%s", target);
  snprintf(copy2, sizeof copy2, "%s", target);
  const char *dir = dirname(copy), *base = basename(copy2);
  struct stat sb;
  if (stat(target, &sb) == 0 && S_ISDIR(sb.st_mode)) die("cannot write %s: it is a directory", target);
  make_parents(target, dir);
  snprintf(temp_path, sizeof temp_path, "%s/.%.200s.XXXXXX", dir, base);
  int fd = mkstemp(temp_path);
  if (fd < 0) {
    temp_path[0] = '\0';
    die("cannot write %s: %s", target, strerror(errno));
  }
  close(fd);
  chmod(temp_path, 0644);
}

static void publish(const char *target) {
  if (rename(temp_path, target) != 0) die("cannot write %s: %s", target, strerror(errno));
  temp_path[0] = '\0';
  n_made_dirs = 0; /* they hold the output now */
}

/* ---------- audio in ---------- */

typedef struct {
  SNDFILE *f;
  SF_INFO info;
  const char *path;
  int channels, rate; /* the model's */
  int downmix;
  soxr_t soxr;
  sf_count_t done;
  size_t block;       /* frames per read at the input rate */
  float *raw, *mapped, *out;
  size_t out_cap;
  int finished;
} reader;

static void reader_open(reader *r, const char *path, int channels, int rate, int downmix) {
  memset(r, 0, sizeof *r);
  r->path = path, r->channels = channels, r->rate = rate, r->downmix = downmix;
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) die("input file not found: %s", path);
  if (sb.st_size == 0) die("input file is empty: %s", path);
  r->f = sf_open(path, SFM_READ, &r->info);
  if (!r->f) die("cannot read %s: %s", path, sf_strerror(NULL));
  char log[4096];
  sf_command(r->f, SFC_GET_LOG_INFO, log, sizeof log);
  if (strstr(log, "(should be")) die("%s is truncated: its header promises more audio than the file holds", path);
  if (r->info.frames <= 0) die("%s holds no samples", path);
  if (r->info.samplerate < MIN_INPUT_RATE || r->info.samplerate > MAX_INPUT_RATE)
    die("%s claims %d Hz, outside [%d, %d] Hz: a damaged header, or not music", path, r->info.samplerate, MIN_INPUT_RATE,
        MAX_INPUT_RATE);
  if (r->info.channels > channels && !downmix)
    die("%s has %d channels; the model takes %d (pass --downmix to mix down)", path, r->info.channels, channels);
  r->block = (size_t)(BLOCK_SECONDS * r->info.samplerate);
  if (r->block < 1) r->block = 1;
  r->raw = xmalloc(r->block * (size_t)r->info.channels * sizeof(float));
  r->mapped = xmalloc(r->block * (size_t)channels * sizeof(float));
  if (r->info.samplerate != rate) {
    soxr_error_t e;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ, 0);
    r->soxr = soxr_create(r->info.samplerate, rate, (unsigned)channels, &e, &io, &q, NULL);
    if (!r->soxr) die("cannot resample %s: %s", path, e);
    r->out_cap = (size_t)((double)r->block * rate / r->info.samplerate) + 4096;
    r->out = xmalloc(r->out_cap * (size_t)channels * sizeof(float));
  }
}

/* The sum of n floats in numpy's order (pairwise_sum of its umath loops), so that a downmix is
   np.mean's to the bit: in sequence below 8, in 8 running sums up to 128, halved above. */
static float pairwise_sum(const float *a, size_t n) {
  if (n < 8) {
    float res = 0.0f;
    for (size_t i = 0; i < n; i++) res += a[i];
    return res;
  }
  if (n <= 128) {
    float r[8];
    size_t i;
    for (int j = 0; j < 8; j++) r[j] = a[j];
    for (i = 8; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; j++) r[j] += a[i + j];
    float res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* The next block at the model's rate, interleaved [n][channels]; 0 at the end. */
static size_t reader_next(reader *r, const float **data) {
  while (!r->finished) {
    sf_count_t got = sf_readf_float(r->f, r->raw, (sf_count_t)r->block);
    /* A damaged frame (a FLAC CRC, say) ends the read early with an error set: not a truncation.
       The Python CLI's soundfile raises it, in libsndfile's words. */
    if (sf_error(r->f)) die("cannot read %s: %s", r->path, sf_error_number(sf_error(r->f)));
    if (got < 0) got = 0;
    r->done += got;
    int last = (size_t)got < r->block || r->done >= r->info.frames;
    if (last && r->done < r->info.frames) die("%s is truncated: %lld of %lld frames readable", r->path, (long long)r->done, (long long)r->info.frames);
    size_t in_ch = (size_t)r->info.channels, ch = (size_t)r->channels;
    for (size_t i = 0; i < (size_t)got * in_ch; i++)
      if (!isfinite(r->raw[i])) die("%s contains NaN or Inf samples", r->path);
    for (size_t j = 0; j < (size_t)got; j++) {
      if (in_ch == ch) memcpy(r->mapped + j * ch, r->raw + j * in_ch, ch * sizeof(float));
      else if (in_ch == 1)
        for (size_t c = 0; c < ch; c++) r->mapped[j * ch + c] = r->raw[j];
      else {
        float mean = pairwise_sum(r->raw + j * in_ch, in_ch) / (float)in_ch;
        for (size_t c = 0; c < ch; c++) r->mapped[j * ch + c] = mean;
      }
    }
    if (last) r->finished = 1;
    if (!r->soxr) {
      if (got) {
        *data = r->mapped;
        return (size_t)got;
      }
      continue;
    }
    size_t idone = 0, odone = 0;
    soxr_error_t e = soxr_process(r->soxr, r->mapped, (size_t)got, &idone, r->out, r->out_cap, &odone);
    if (e) die("cannot resample %s: %s", r->path, e);
    if (last) { /* drain */
      size_t more = 0;
      do {
        e = soxr_process(r->soxr, NULL, 0, NULL, r->out + odone * (size_t)r->channels, r->out_cap - odone, &more);
        if (e) die("cannot resample %s: %s", r->path, e);
        odone += more;
      } while (more && odone < r->out_cap);
    }
    if (odone) {
      *data = r->out;
      return odone;
    }
  }
  return 0;
}

static void reader_close(reader *r) {
  if (r->soxr) soxr_delete(r->soxr);
  sf_close(r->f);
  free(r->raw), free(r->mapped), free(r->out);
}

/* ---------- audio out ---------- */

typedef struct {
  SNDFILE *f;
  int channels, clip;
  long long over, samples;
  const char *target;
  soxr_t soxr; /* model rate -> output rate, when they differ (--keep-rate) */
  float *resampled;
  size_t resampled_cap; /* frames */
  int *pcm;             /* FLAC's samples, rounded here */
  size_t pcm_cap;       /* samples */
} writer;

/* `rate`: the model's; `out_rate`: the file's (0: the model's). */
static void writer_open(writer *w, const char *target, int rate, int out_rate, int channels) {
  memset(w, 0, sizeof *w);
  w->target = target, w->channels = channels;
  if (!out_rate) out_rate = rate;
  SF_INFO info = {0};
  info.samplerate = out_rate, info.channels = channels;
  if (has_ext(target, ".wav")) info.format = SF_FORMAT_WAV | SF_FORMAT_FLOAT;
  else if (has_ext(target, ".flac")) info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_24, w->clip = 1;
  else die("cannot write %s: use a .wav or .flac output", target);
  if (w->clip && out_rate > MAX_FLAC_RATE) die("cannot write %s: FLAC cannot store %d Hz; use .wav", target, out_rate);
  if (out_rate != rate) {
    soxr_error_t e;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_VHQ, 0);
    w->soxr = soxr_create(rate, out_rate, (unsigned)channels, &e, &io, &q, NULL);
    if (!w->soxr) die("cannot resample to %d Hz: %s", out_rate, e);
  }
  make_temp(target);
  w->f = sf_open(temp_path, SFM_WRITE, &info);
  if (!w->f) die("cannot write %s: %s", target, sf_strerror(NULL));
}

static void writer_put(writer *w, float *data, size_t frames) {
  size_t n = frames * (size_t)w->channels;
  for (size_t i = 0; i < n; i++)
    if (fabsf(data[i]) > 1.0f) {
      w->over++;
      if (w->clip) data[i] = data[i] > 0 ? 1.0f : -1.0f;
    }
  if (!frames) return;
  sf_count_t put;
  if (w->clip) {
    /* FLAC's 24-bit samples rounded here, as the soundfile wheel's libsndfile (1.2.2, the Python
       CLI's) rounds them: x * 2^23 to the nearest integer, ties to even, +1.0 to 2^23 - 1.
       Debian's 1.2.0 would scale by 2^23 - 1, one step away in 8% of samples. libsndfile writes
       an int's top 24 bits. */
    if (n > w->pcm_cap) {
      free(w->pcm);
      w->pcm_cap = n;
      w->pcm = xmalloc(n * sizeof(int));
    }
    for (size_t i = 0; i < n; i++) {
      long v = lrintf(data[i] * 8388608.0f);
      w->pcm[i] = (int)(v > 8388607 ? 8388607 : v < -8388608 ? -8388608 : v) * 256;
    }
    put = sf_writef_int(w->f, w->pcm, (sf_count_t)frames);
  } else put = sf_writef_float(w->f, data, (sf_count_t)frames);
  if (put != (sf_count_t)frames) die("cannot write %s: %s", w->target, sf_strerror(w->f));
  w->samples += (long long)frames;
}

/* Append `frames` interleaved frames at the model's rate (resampled first with --keep-rate). */
static void writer_write(writer *w, float *data, size_t frames) {
  if (!w->soxr) {
    writer_put(w, data, frames);
    return;
  }
  /* data == NULL: the end of the input, soxr's tail. */
  for (size_t done = 0;;) {
    size_t want = (frames - done) * 4 + 4096; /* a full buffer loops: any ratio fits */
    if (want > w->resampled_cap) {
      free(w->resampled);
      w->resampled_cap = want;
      w->resampled = xmalloc(want * (size_t)w->channels * sizeof(float));
    }
    size_t used = 0, made = 0;
    soxr_error_t e = soxr_process(w->soxr, data ? data + done * (size_t)w->channels : NULL, data ? frames - done : 0,
                                  &used, w->resampled, w->resampled_cap, &made);
    if (e) die("cannot resample for %s: %s", w->target, e);
    writer_put(w, w->resampled, made);
    done += used;
    if (data ? done >= frames && made < w->resampled_cap : made == 0) break;
  }
}

static void writer_close(writer *w) {
  if (w->soxr) {
    writer_write(w, NULL, 0);
    soxr_delete(w->soxr), free(w->resampled);
  }
  free(w->pcm);
  if (sf_close(w->f) != 0) die("cannot write %s", w->target);
  publish(w->target);
  if (w->over) fprintf(stderr, "note: %lld output sample(s) beyond +-1%s\n", w->over, w->clip ? " (clipped in FLAC)" : "");
}

/* ---------- model ---------- */

typedef struct {
  const char *model, *input, *output;
  int threads, block, downmix, report_memory, keep_rate;
} args;

static se_model *load(const args *a, int sides) {
  se_model_options o;
  se_model_options_init(&o);
  o.threads = a->threads;
  o.sides = sides;
  se_model *m = NULL;
  /* TFLite's core prints one INFO line when it creates XNNPACK; this program is single-threaded
   * here, so stderr is quiet for the open (a library cannot do this for an app). */
  fflush(stderr);
  int saved = dup(2), null = open("/dev/null", O_WRONLY);
  if (saved >= 0 && null >= 0) dup2(null, 2);
  se_status st = se_model_open(a->model, &o, &m);
  if (saved >= 0) dup2(saved, 2), close(saved);
  if (null >= 0) close(null);
  if (st != SE_OK) die("%s", se_last_error());
  return m;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  float *data;
  size_t cap; /* columns */
  int rows;
} buffer;

/* Room for `cols` columns, keeping the columns already held: the stream driver appends the
   decoder's flush after the frames of its last push, and a piece is gathered in `carry`. */
static float *room(buffer *b, size_t cols) {
  if (cols > b->cap) {
    size_t cap = cols + cols / 2 + 16;
    float *grown = realloc(b->data, cap * (size_t)b->rows * sizeof(float));
    if (!grown) die("out of memory");
    b->data = grown, b->cap = cap;
  }
  return b->data;
}

static size_t push(se_stream *s, const float *in, size_t n, buffer *out) {
  size_t want = se_stream_push_output_size(s, n), got = 0;
  room(out, want);
  if (se_stream_push(s, in, n, SE_INTERLEAVED, out->data, out->cap, &got) != SE_OK) die("%s", se_last_error());
  return got;
}

static size_t flush(se_stream *s, buffer *out) {
  size_t want = se_stream_flush_output_size(s), got = 0;
  room(out, want);
  if (se_stream_flush(s, SE_INTERLEAVED, out->data, out->cap, &got) != SE_OK) die("%s", se_last_error());
  return got;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double q) { /* numpy's default (linear) */
  if (!n) return 0;
  double pos = q / 100.0 * (double)(n - 1);
  size_t i = (size_t)pos;
  double f = pos - (double)i;
  return i + 1 < n ? v[i] + (v[i + 1] - v[i]) * f : v[i];
}

/* The state of one encoder-into-decoder run: what was pushed, written and timed. */
typedef struct {
  se_stream *enc, *dec;
  writer *out;
  buffer z, y;
  double *times, t_total;
  size_t nblocks, cap_t;
  long long total, emitted;
} stream_run;

/* Push one piece of audio through encoder and decoder, time it, and write the output that is due
   (trimmed to the input length: decoding covers whole frames, the input ends mid-frame). */
static void run_piece(stream_run *s, const float *p, size_t len) {
  s->total += (long long)len;
  double t0 = now();
  size_t nz = push(s->enc, p, len, &s->z);
  size_t ny = push(s->dec, s->z.data, nz, &s->y);
  double dt = now() - t0;
  s->t_total += dt;
  if (s->nblocks == s->cap_t) {
    double *grown = realloc(s->times, (s->cap_t *= 2) * sizeof(double));
    if (!grown) die("out of memory");
    s->times = grown;
  }
  s->times[s->nblocks++] = dt;
  if ((long long)ny > s->total - s->emitted) ny = (size_t)(s->total - s->emitted);
  writer_write(s->out, s->y.data, ny);
  s->emitted += (long long)ny;
}

/* Encoder into decoder, output trimmed to the input length (as same_edge.files.stream_through). */
static void stream_through(const args *a, se_model *m, int largest_window, size_t piece, int report) {
  reader r;
  writer w;
  int ch = se_model_channels(m), dim = se_model_latent_dim(m), rate = se_model_sample_rate(m);
  reader_open(&r, a->input, ch, rate, a->downmix);
  writer_open(&w, a->output, rate, a->keep_rate ? r.info.samplerate : 0, ch);
  stream_run s = {.out = &w, .z = {NULL, 0, dim}, .y = {NULL, 0, ch}, .cap_t = 1024};
  if (se_encoder_create(m, largest_window, &s.enc) != SE_OK || se_decoder_create(m, largest_window, &s.dec) != SE_OK)
    die("%s", se_last_error());
  s.times = xmalloc(s.cap_t * sizeof(double));
  buffer y2 = {NULL, 0, ch}, carry = {NULL, 0, ch};
  size_t ncarry = 0;
  const float *data;
  size_t n;
  while ((n = reader_next(&r, &data))) {
    /* Pieces of `piece` frames (0: the reader's blocks as they come). */
    size_t off = 0;
    while (off < n) {
      if (!piece) {
        run_piece(&s, data, n);
        break;
      }
      size_t take = piece - ncarry < n - off ? piece - ncarry : n - off;
      room(&carry, piece);
      memcpy(carry.data + ncarry * (size_t)ch, data + off * (size_t)ch, take * (size_t)ch * sizeof(float));
      ncarry += take, off += take;
      if (ncarry < piece) break;
      run_piece(&s, carry.data, piece);
      ncarry = 0;
    }
  }
  if (piece && ncarry) run_piece(&s, carry.data, ncarry); /* the last, short piece */
  size_t nz = flush(s.enc, &s.z);
  size_t ny = push(s.dec, s.z.data, nz, &s.y);
  size_t ny2 = flush(s.dec, &y2);
  room(&s.y, ny + ny2);
  memcpy(s.y.data + ny * (size_t)ch, y2.data, ny2 * (size_t)ch * sizeof(float));
  ny += ny2;
  if ((long long)ny > s.total - s.emitted) ny = (size_t)(s.total - s.emitted);
  writer_write(&w, s.y.data, ny);
  writer_close(&w);
  reader_close(&r);
  double secs = (double)s.total / rate;
  printf("%s: %.2f s\n", a->output, secs);
  if (report) {
    double *ms = xmalloc(s.nblocks * sizeof(double) + 1);
    size_t slow = 0;
    double budget = (double)piece / rate * 1e3;
    for (size_t i = 0; i < s.nblocks; i++) ms[i] = s.times[i] * 1e3, slow += ms[i] > budget;
    qsort(ms, s.nblocks, sizeof(double), cmp_double);
    printf("streamed %.2f s in %zu blocks of %zu samples (%.1f ms each): %.1fx real time on %d thread(s)\n", secs,
           s.nblocks, piece, budget, secs / (s.t_total > 0 ? s.t_total : 1e-9), se_model_threads(m));
    printf("compute per block: p50 %.1f ms, p99 %.1f ms, max %.1f ms; %zu block(s) slower than real time\n",
           percentile(ms, s.nblocks, 50), percentile(ms, s.nblocks, 99), s.nblocks ? ms[s.nblocks - 1] : 0.0, slow);
    double le = 1e3 * se_model_encoder_latency_samples(m) / rate, ld = 1e3 * se_model_decoder_latency_samples(m) / rate;
    printf("algorithmic latency: %.0f ms encoder + %.0f ms decoder = %.0f ms\n", le, ld, le + ld);
    free(ms);
  } else {
    printf("%.1fx real time (encode + decode) on %d thread(s)\n", secs / (s.t_total > 0 ? s.t_total : 1e-9),
           se_model_threads(m));
  }
  free(s.times), free(s.z.data), free(s.y.data), free(y2.data), free(carry.data);
  se_stream_free(s.enc);
  se_stream_free(s.dec);
}

static void cmd_encode(const args *a) {
  if (!has_ext(a->output, ".npz")) die("latent files are .npz, got %s", a->output);
  se_model *m = load(a, SE_SIDE_ENCODER);
  int ch = se_model_channels(m), dim = se_model_latent_dim(m);
  reader r;
  reader_open(&r, a->input, ch, se_model_sample_rate(m), a->downmix);
  se_stream *enc;
  if (se_encoder_create(m, 0, &enc) != SE_OK) die("%s", se_last_error());
  make_temp(a->output);
  char err[600];
  npz_writer *w = npz_writer_open(temp_path, dim, err, sizeof err);
  if (!w) die("%s", err);
  buffer z = {NULL, 0, dim};
  long long length = 0, frames = 0;
  const float *data;
  size_t n;
  while ((n = reader_next(&r, &data))) {
    length += (long long)n;
    size_t k = push(enc, data, n, &z); /* interleaved latents are frame-major: the file's layout */
    if (!npz_writer_frames(w, z.data, k)) die("cannot write %s: %s", a->output, strerror(errno ? errno : EIO));
    frames += (long long)k;
  }
  size_t k = flush(enc, &z);
  if (!npz_writer_frames(w, z.data, k)) die("cannot write %s: %s", a->output, strerror(errno ? errno : EIO));
  frames += (long long)k;
  npz_header h = {se_model_sample_rate(m), length, r.info.samplerate, ""};
  snprintf(h.model_id, sizeof h.model_id, "%s", se_model_id(m));
  if (!npz_writer_close(w, &h, err, sizeof err)) die("%s", err);
  publish(a->output);
  printf("%s: %lld frames x %d dims from %.2f s of audio\n", a->output, frames, dim, (double)length / se_model_sample_rate(m));
  reader_close(&r);
  free(z.data);
  se_stream_free(enc);
  se_model_close(m);
}

static void cmd_decode(const args *a) {
  char err[1200];
  npz_reader *r = npz_reader_open(a->input, err, sizeof err);
  if (!r) die("%s", err);
  se_model *m = load(a, SE_SIDE_DECODER);
  const npz_header *h = npz_reader_header(r);
  int dim, ch = se_model_channels(m), hop = se_model_hop(m);
  int64_t frames;
  npz_reader_shape(r, &dim, &frames);
  if (strcmp(h->model_id, se_model_id(m)) != 0)
    die("%s was encoded by another model (%s); %s is %s", a->input, h->model_id, a->model, se_model_id(m));
  if (dim != se_model_latent_dim(m) || !((frames - 1) * hop < h->length && h->length <= frames * hop))
    die("%s holds %d x %lld latents for %lld samples, which this model (%d-dim, hop %d) cannot have produced", a->input, dim,
        (long long)frames, (long long)h->length, se_model_latent_dim(m), hop);
  se_stream *dec;
  if (se_decoder_create(m, 0, &dec) != SE_OK) die("%s", se_last_error());
  writer w;
  if (a->keep_rate && (h->source_rate < MIN_INPUT_RATE || h->source_rate > MAX_INPUT_RATE))
    die("%s records a source rate of %lld Hz, outside [%d, %d] Hz", a->input, (long long)h->source_rate, MIN_INPUT_RATE,
        MAX_INPUT_RATE);
  writer_open(&w, a->output, se_model_sample_rate(m), a->keep_rate ? (int)h->source_rate : 0, ch);
  float *block = xmalloc((size_t)DECODE_BLOCK_FRAMES * (size_t)dim * sizeof(float));
  buffer y = {NULL, 0, ch};
  long long remaining = h->length;
  for (;;) {
    int64_t k = npz_reader_frames(r, block, DECODE_BLOCK_FRAMES, err, sizeof err);
    if (k < 0) die("%s", err);
    size_t ny = k ? push(dec, block, (size_t)k, &y) : flush(dec, &y);
    if ((long long)ny > remaining) ny = (size_t)remaining;
    writer_write(&w, y.data, ny);
    remaining -= (long long)ny;
    if (!k) break;
  }
  writer_close(&w);
  printf("%s: %.2f s at %d Hz\n", a->output, (double)h->length / se_model_sample_rate(m),
         a->keep_rate ? (int)h->source_rate : se_model_sample_rate(m));
  free(block), free(y.data);
  se_stream_free(dec);
  npz_reader_close(r);
  se_model_close(m);
}

static void usage(void) {
  fprintf(stderr,
          "usage: same-edge-native {encode,decode,roundtrip,stream} INPUT OUTPUT [--model DIR] [--threads N] "
          "[--block N] [--downmix] [--keep-rate] [--report-memory]\n"
          "  encode AUDIO LATENTS.npz | decode LATENTS.npz AUDIO | roundtrip AUDIO OUT.wav|.flac | stream AUDIO OUT\n"
          "  --keep-rate   decode, roundtrip: write at the input's sample rate, not the model's\n"
          "  --model DIR   model directory (default: $SAME_EDGE_MODEL, else models/demo)\n");
}

static int parse_int(const char *s, const char *what, int lo, int hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || end == s || v < lo || v > hi) die("%s must be an integer in %d..%d, got %s", what, lo, hi, s);
  return (int)v;
}

int main(int argc, char **argv) {
  /* A closed standard stream's descriptor would go to the next file opened (the output, say, which
     the report would then be written into): each closed one reads and writes /dev/null instead,
     so a closed stdout only silences the report, as it does the Python CLI's. */
  for (int fd = 0; fd <= 2; fd++)
    if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDWR) != fd) return 2;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  signal(SIGHUP, on_signal);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN); /* a write past `ulimit -f` is then EFBIG: one line, exit 2, no file left */
  if (argc >= 2 && (strcmp(argv[1], "--version") == 0)) {
    printf("same-edge-native %s (LiteRT %s)\n", se_version(), se_litert_version());
    return 0;
  }
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  args a = {getenv("SAME_EDGE_MODEL") ? getenv("SAME_EDGE_MODEL") : "models/demo", NULL, NULL, 0, 0, 0, 0, 0};
  const char *cmd = argv[1];
  int positional = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) a.model = argv[++i];
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) a.threads = parse_int(argv[++i], "--threads", 1, 256);
    else if (strcmp(argv[i], "--block") == 0 && i + 1 < argc) a.block = parse_int(argv[++i], "--block", 1, 1 << 24);
    else if (strcmp(argv[i], "--downmix") == 0) a.downmix = 1;
    else if (strcmp(argv[i], "--report-memory") == 0) a.report_memory = 1;
    else if (strcmp(argv[i], "--keep-rate") == 0) a.keep_rate = 1;
    else if (argv[i][0] == '-' && argv[i][1]) die("unknown option %s", argv[i]);
    else if (positional == 0) a.input = argv[i], positional++;
    else if (positional == 1) a.output = argv[i], positional++;
    else die("unexpected argument %s", argv[i]);
  }
  if (positional != 2) {
    usage();
    die("%s needs an input and an output", cmd);
  }
  if (a.keep_rate && strcmp(cmd, "decode") != 0 && strcmp(cmd, "roundtrip") != 0)
    die("--keep-rate applies to decode and roundtrip, not %s", cmd);
  if (strcmp(cmd, "encode") == 0) cmd_encode(&a);
  else if (strcmp(cmd, "decode") == 0) cmd_decode(&a);
  else if (strcmp(cmd, "roundtrip") == 0 || strcmp(cmd, "stream") == 0) {
    se_model *m = load(&a, SE_SIDE_BOTH);
    if (strcmp(cmd, "roundtrip") == 0) stream_through(&a, m, 0, 0, 0);
    else stream_through(&a, m, 1, a.block ? (size_t)a.block : (size_t)se_model_hop(m), 1);
    se_model_close(m);
  } else die("unknown command %s (encode, decode, roundtrip, stream)", cmd);
  if (a.report_memory) { /* this process's own high-water mark (Linux), not its parent's */
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
      if (strncmp(line, "VmHWM:", 6) == 0) printf("peak RSS: %.1f MB\n", atof(line + 6) / 1024.0);
    if (f) fclose(f);
  }
  if (fflush(stdout) != 0) { /* the output is written; the report could not be (stdout full, say) */
    fprintf(stderr, "same-edge-native: error: cannot write to stdout: %s\n", strerror(errno));
    return 2;
  }
  return 0;
}
