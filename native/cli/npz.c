/* Stored-zip .npz latent files, read and written in blocks (see npz.h). */
#define _FILE_OFFSET_BITS 64
#define _POSIX_C_SOURCE 200809L
#include "npz.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LENGTH (1LL << 36)

static uint32_t crc_table[256];
static void crc_init(void) {
  if (crc_table[1]) return;
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}
static uint32_t crc_update(uint32_t crc, const void *data, size_t n) {
  const uint8_t *p = data;
  crc = ~crc;
  while (n--) crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xFFFF), put16(p + 2, v >> 16); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* An .npy header (version 1.0 for scalars, 2.0 for the latents as numpy writes them), padded with
 * spaces so that the data starts at a multiple of 64 bytes. */
static size_t npy_header(uint8_t *buf, size_t size, const char *dict, int version) {
  size_t pre = version == 1 ? 10 : 12, dlen = strlen(dict);
  size_t total = (pre + dlen + 1 + 63) / 64 * 64;
  if (total > size) return 0;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (uint8_t)version, buf[7] = 0;
  size_t hlen = total - pre;
  if (version == 1) put16(buf + 8, (uint32_t)hlen);
  else put32(buf + 8, (uint32_t)hlen);
  memcpy(buf + pre, dict, dlen);
  memset(buf + pre + dlen, ' ', hlen - dlen - 1);
  buf[total - 1] = '\n';
  return total;
}

typedef struct {
  char name[32];
  uint32_t crc, size, offset;
} member;

struct npz_writer {
  FILE *f;
  int dim;
  uint64_t frames;
  uint32_t crc;
  uint64_t data_bytes;
  member m[6];
  int n;
};

static int write_local(FILE *f, const char *name, uint32_t crc, uint32_t size) {
  uint8_t h[30] = {0};
  put32(h, 0x04034b50), put16(h + 4, 20), put16(h + 8, 0), put16(h + 10, 0), put16(h + 12, 0x21);
  put32(h + 14, crc), put32(h + 18, size), put32(h + 22, size), put16(h + 26, (uint32_t)strlen(name));
  return fwrite(h, 1, 30, f) == 30 && fwrite(name, 1, strlen(name), f) == strlen(name);
}

npz_writer *npz_writer_open(const char *tmp_path, int latent_dim, char *err, size_t err_size) {
  crc_init();
  npz_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->f = fopen(tmp_path, "w+b"))) {
    snprintf(err, err_size, "cannot write %s", tmp_path);
    free(w);
    return NULL;
  }
  w->dim = latent_dim;
  snprintf(w->m[0].name, sizeof w->m[0].name, "latents.npy");
  w->m[0].offset = 0;
  /* The header's shape is known only at the end: it is written then, over a fixed-size slot. */
  uint8_t hdr[128];
  memset(hdr, ' ', sizeof hdr);
  if (!write_local(w->f, "latents.npy", 0, 0) || fwrite(hdr, 1, 128, w->f) != 128) {
    snprintf(err, err_size, "cannot write %s", tmp_path);
    npz_writer_abort(w);
    return NULL;
  }
  return w;
}

int npz_writer_frames(npz_writer *w, const float *frames, size_t n) {
  size_t bytes = n * (size_t)w->dim * sizeof(float);
  if (fwrite(frames, 1, bytes, w->f) != bytes) return 0; /* little-endian hosts: <f4 as is */
  w->crc = crc_update(w->crc, frames, bytes);
  w->frames += n;
  w->data_bytes += bytes;
  return 1;
}

static int add_scalar(npz_writer *w, const char *name, const char *descr, const void *data, size_t size) {
  char dict[160];
  uint8_t buf[1024];
  snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (), }", descr);
  size_t h = npy_header(buf, sizeof buf - size, dict, 1);
  if (!h) return 0;
  memcpy(buf + h, data, size);
  member *m = &w->m[w->n++];
  snprintf(m->name, sizeof m->name, "%s", name);
  long off = ftell(w->f);
  if (off < 0 || off > 0xFFFFFFFFL) return 0;
  m->offset = (uint32_t)off;
  m->size = (uint32_t)(h + size);
  m->crc = crc_update(0, buf, m->size);
  return write_local(w->f, name, m->crc, m->size) && fwrite(buf, 1, m->size, w->f) == m->size;
}

int npz_writer_close(npz_writer *w, const npz_header *h, char *err, size_t err_size) {
  char dict[160];
  uint8_t hdr[128];
  snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': True, 'shape': (%d, %llu), }", w->dim,
           (unsigned long long)w->frames);
  uint64_t size = 128 + w->data_bytes;
  if (npy_header(hdr, sizeof hdr, dict, 2) != 128 || size > 0xFFFFFFF0ull) {
    snprintf(err, err_size, "latents too long for the native writer (4 GB zip member)");
    npz_writer_abort(w);
    return 0;
  }
  /* The member's CRC covers header then data: read the data back (the file is open "w+b"). */
  uint32_t crc = crc_update(0, hdr, 128);
  int ok = fflush(w->f) == 0 && fseek(w->f, 30 + 11 + 128, SEEK_SET) == 0;
  uint8_t *buf = malloc(1 << 20);
  for (uint64_t left = w->data_bytes; ok && buf && left;) {
    size_t want = left < (1u << 20) ? (size_t)left : (1u << 20);
    size_t got = fread(buf, 1, want, w->f);
    ok = got == want;
    crc = crc_update(crc, buf, got);
    left -= got;
  }
  ok = ok && buf;
  free(buf);
  member *lat = &w->m[0];
  lat->crc = crc, lat->size = (uint32_t)size;
  w->n = 1;
  ok = ok && fseek(w->f, 0, SEEK_SET) == 0 && write_local(w->f, "latents.npy", crc, (uint32_t)size) &&
       fwrite(hdr, 1, 128, w->f) == 128 && fseek(w->f, 0, SEEK_END) == 0;
  int64_t v;
  uint32_t uid[256];
  size_t n = strlen(h->model_id);
  for (size_t i = 0; i < n; i++) uid[i] = (uint8_t)h->model_id[i]; /* model ids are ASCII */
  char udescr[32];
  snprintf(udescr, sizeof udescr, "<U%zu", n);
  v = NPZ_FORMAT_VERSION, ok = ok && add_scalar(w, "format_version.npy", "<i8", &v, 8);
  v = h->sample_rate, ok = ok && add_scalar(w, "sample_rate.npy", "<i8", &v, 8);
  v = h->length, ok = ok && add_scalar(w, "length.npy", "<i8", &v, 8);
  ok = ok && add_scalar(w, "model_id.npy", udescr, uid, n * 4);
  v = h->source_rate, ok = ok && add_scalar(w, "source_rate.npy", "<i8", &v, 8);
  long cd = ftell(w->f);
  for (int i = 0; ok && i < w->n; i++) {
    uint8_t c[46] = {0};
    member *m = &w->m[i];
    put32(c, 0x02014b50), put16(c + 4, 20), put16(c + 6, 20), put16(c + 14, 0x21), put32(c + 16, m->crc);
    put32(c + 20, m->size), put32(c + 24, m->size), put16(c + 28, (uint32_t)strlen(m->name)), put32(c + 38, 0644u << 16);
    put32(c + 42, m->offset);
    ok = fwrite(c, 1, 46, w->f) == 46 && fwrite(m->name, 1, strlen(m->name), w->f) == strlen(m->name);
  }
  long end = ftell(w->f);
  uint8_t e[22] = {0};
  put32(e, 0x06054b50), put16(e + 8, (uint32_t)w->n), put16(e + 10, (uint32_t)w->n);
  put32(e + 12, (uint32_t)(end - cd)), put32(e + 16, (uint32_t)cd);
  ok = ok && cd >= 0 && fwrite(e, 1, 22, w->f) == 22;
  ok = fclose(w->f) == 0 && ok;
  w->f = NULL;
  free(w);
  if (!ok) snprintf(err, err_size, "cannot write the latent file (disk full?)");
  return ok;
}

void npz_writer_abort(npz_writer *w) {
  if (!w) return;
  if (w->f) fclose(w->f);
  free(w);
}

/* ---------- reader ---------- */

struct npz_reader {
  FILE *f;
  char path[1024];
  npz_header h;
  int dim;
  int64_t frames, done;
  uint64_t data_offset;
};

typedef struct {
  uint64_t offset, size; /* of the member's data */
  uint32_t crc;
  int found;
} entry;

/* The first `required` of the `count` names must be members; the rest may be absent. */
static int find_members(FILE *f, const char *path, entry *out, const char *const *names, int count, int required,
                        char *err, size_t err_size) {
  if (fseek(f, 0, SEEK_END) != 0) return 0;
  long long fsize = ftell(f);
  long tail = fsize < 65557 ? (long)fsize : 65557;
  uint8_t *buf = malloc((size_t)tail + 1);
  int ok = buf && fseek(f, (long)(fsize - tail), SEEK_SET) == 0 && fread(buf, 1, (size_t)tail, f) == (size_t)tail;
  long eocd = -1;
  for (long i = tail - 22; ok && i >= 0; i--)
    if (get32(buf + i) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (!ok || eocd < 0) {
    free(buf);
    snprintf(err, err_size, "%s is not a same-edge latent file (not a zip archive)", path);
    return 0;
  }
  uint64_t n = get16(buf + eocd + 10), cd_size = get32(buf + eocd + 12), cd_off = get32(buf + eocd + 16);
  if (eocd >= 20 && get32(buf + eocd - 20) == 0x07064b50) { /* zip64 end of central directory */
    uint64_t z64 = get64(buf + eocd - 20 + 8);
    uint8_t r[56];
    if (fseek(f, (long)z64, SEEK_SET) == 0 && fread(r, 1, 56, f) == 56 && get32(r) == 0x06064b50)
      n = get64(r + 32), cd_size = get64(r + 40), cd_off = get64(r + 48);
  }
  free(buf);
  if (cd_size > (1u << 24) || cd_off + cd_size > (uint64_t)fsize) {
    snprintf(err, err_size, "%s is not a same-edge latent file (bad zip directory)", path);
    return 0;
  }
  uint8_t *cd = malloc(cd_size + 1);
  ok = cd && fseek(f, (long)cd_off, SEEK_SET) == 0 && fread(cd, 1, cd_size, f) == cd_size;
  uint64_t pos = 0;
  for (uint64_t i = 0; ok && i < n; i++) {
    if (pos + 46 > cd_size || get32(cd + pos) != 0x02014b50) { ok = 0; break; }
    uint32_t method = get16(cd + pos + 10), nlen = get16(cd + pos + 28), xlen = get16(cd + pos + 30), clen = get16(cd + pos + 32);
    uint32_t flags = get16(cd + pos + 8);
    uint64_t csize = get32(cd + pos + 20), usize = get32(cd + pos + 24), loff = get32(cd + pos + 42);
    uint32_t crc = get32(cd + pos + 16);
    if (pos + 46 + nlen + xlen + clen > cd_size) { ok = 0; break; }
    const uint8_t *x = cd + pos + 46 + nlen;
    for (uint32_t j = 0; j + 4 <= xlen;) { /* zip64 extra: the 32-bit fields that are 0xFFFFFFFF, in order */
      uint32_t id = get16(x + j), len = get16(x + j + 2);
      if (id == 1) {
        uint32_t k = j + 4;
        if (usize == 0xFFFFFFFFu && k + 8 <= j + 4 + len) usize = get64(x + k), k += 8;
        if (csize == 0xFFFFFFFFu && k + 8 <= j + 4 + len) csize = get64(x + k), k += 8;
        if (loff == 0xFFFFFFFFu && k + 8 <= j + 4 + len) loff = get64(x + k), k += 8;
      }
      j += 4 + len;
    }
    for (int m = 0; m < count; m++)
      if (strlen(names[m]) == nlen && memcmp(cd + pos + 46, names[m], nlen) == 0) {
        if (method != 0 || (flags & 1) || csize != usize) {
          free(cd);
          snprintf(err, err_size, "%s: member %s is compressed or encrypted; the native reader reads stored members "
                   "(as same-edge writes them)", path, names[m]);
          return 0;
        }
        uint8_t lh[30];
        if (fseek(f, (long)loff, SEEK_SET) != 0 || fread(lh, 1, 30, f) != 30 || get32(lh) != 0x04034b50) { ok = 0; break; }
        out[m].offset = loff + 30 + get16(lh + 26) + get16(lh + 28);
        out[m].size = usize;
        out[m].crc = crc;
        out[m].found = 1;
        if (out[m].offset + usize > (uint64_t)fsize) ok = 0;
      }
    pos += 46 + nlen + xlen + clen;
  }
  free(cd);
  if (!ok) {
    snprintf(err, err_size, "%s is not a same-edge latent file (damaged zip)", path);
    return 0;
  }
  for (int m = 0; m < required; m++)
    if (!out[m].found) {
      snprintf(err, err_size, "%s is not a same-edge latent file (no %s)", path, names[m]);
      return 0;
    }
  return 1;
}

/* Parse an .npy header at the file position; returns the dict text in `dict`, data offset in *data. */
static int npy_read_header(FILE *f, uint64_t offset, uint64_t member_size, char *dict, size_t dict_size, uint64_t *data) {
  uint8_t pre[12];
  if (member_size < 10 || fseek(f, (long)offset, SEEK_SET) != 0 || fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
    return 0;
  uint64_t hlen, start;
  if (pre[6] == 1) hlen = get16(pre + 8), start = 10;
  else if (pre[6] == 2 || pre[6] == 3) {
    if (fread(pre + 10, 1, 2, f) != 2) return 0;
    hlen = get32(pre + 8), start = 12;
  } else return 0;
  if (hlen >= dict_size || start + hlen > member_size || fread(dict, 1, hlen, f) != hlen) return 0;
  dict[hlen] = '\0';
  *data = offset + start + hlen;
  return 1;
}

static const char *dict_value(const char *dict, const char *key) {
  const char *p = strstr(dict, key);
  if (!p) return NULL;
  p = strchr(p + strlen(key), ':');
  if (!p) return NULL;
  p++;
  while (*p == ' ') p++;
  return p;
}

static int read_int_scalar(FILE *f, const entry *e, int64_t *out) {
  char dict[256];
  uint64_t data;
  if (e->size > 4096 || !npy_read_header(f, e->offset, e->size, dict, sizeof dict, &data)) return 0;
  const char *d = dict_value(dict, "'descr'"), *s = dict_value(dict, "'shape'");
  if (!d || !s || strncmp(s, "()", 2) != 0) return 0;
  int bytes = strncmp(d, "'<i8'", 5) == 0 ? 8 : strncmp(d, "'<i4'", 5) == 0 ? 4 : 0;
  uint8_t b[8];
  if (!bytes || data + (uint64_t)bytes > e->offset + e->size || fread(b, 1, (size_t)bytes, f) != (size_t)bytes) return 0;
  *out = bytes == 8 ? (int64_t)get64(b) : (int64_t)(int32_t)get32(b);
  return 1;
}

npz_reader *npz_reader_open(const char *path, char *err, size_t err_size) {
  crc_init();
  static const char *const names[6] = {"latents.npy", "sample_rate.npy", "length.npy", "model_id.npy", "source_rate.npy",
                                       "format_version.npy"};
  entry e[6];
  memset(e, 0, sizeof e);
  npz_reader *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  snprintf(r->path, sizeof r->path, "%s", path);
  /* Regular files only, opened without waiting: opening a FIFO waits for a writer (for ever). */
  struct stat sb;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd >= 0 && (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))) close(fd), fd = -1;
  if (fd < 0 || !(r->f = fdopen(fd, "rb"))) {
    if (fd >= 0) close(fd);
    snprintf(err, err_size, "latent file not found: %s", path);
    free(r);
    return NULL;
  }
  if (!find_members(r->f, path, e, names, 6, 5, err, err_size)) goto fail;
  int64_t version = 1; /* a file from before the field: the same layout */
  if (e[5].found && (!read_int_scalar(r->f, &e[5], &version) || version < 1)) {
    snprintf(err, err_size, "%s: header field format_version must be a positive integer", path);
    goto fail;
  }
  if (version > NPZ_FORMAT_VERSION) {
    snprintf(err, err_size, "%s is a latent file of format version %lld, written by a newer same-edge; this one reads "
             "versions up to %d", path, (long long)version, NPZ_FORMAT_VERSION);
    goto fail;
  }
  if (!read_int_scalar(r->f, &e[1], &r->h.sample_rate) || !read_int_scalar(r->f, &e[2], &r->h.length) ||
      !read_int_scalar(r->f, &e[4], &r->h.source_rate) || r->h.sample_rate < 1 || r->h.sample_rate > 10000000 ||
      r->h.length < 1 || r->h.length > MAX_LENGTH || r->h.source_rate < 1 || r->h.source_rate > 10000000) {
    snprintf(err, err_size, "%s: header fields sample_rate, length and source_rate must be integers in range", path);
    goto fail;
  }
  {
    char dict[256];
    uint64_t data;
    if (e[3].size > 4096 || !npy_read_header(r->f, e[3].offset, e[3].size, dict, sizeof dict, &data)) goto bad_id;
    const char *d = dict_value(dict, "'descr'"), *s = dict_value(dict, "'shape'");
    int n = 0;
    if (!d || !s || strncmp(s, "()", 2) != 0 || sscanf(d, "'<U%d'", &n) != 1 || n < 1 || n > 200 ||
        data + 4 * (uint64_t)n > e[3].offset + e[3].size)
      goto bad_id;
    uint8_t b[800];
    if (fread(b, 1, 4 * (size_t)n, r->f) != 4 * (size_t)n) goto bad_id;
    for (int i = 0; i < n; i++) {
      uint32_t c = get32(b + 4 * i);
      if (c == 0 || c > 126) break; /* numpy strips trailing NULs; model ids are ASCII */
      r->h.model_id[i] = (char)c;
    }
  }
  {
    char dict[512];
    uint64_t data;
    long long dim = 0, frames = -1;
    if (!npy_read_header(r->f, e[0].offset, e[0].size, dict, sizeof dict, &data)) goto bad_lat;
    const char *d = dict_value(dict, "'descr'"), *fo = dict_value(dict, "'fortran_order'"), *s = dict_value(dict, "'shape'");
    if (!d || !fo || !s || strncmp(d, "'<f4'", 5) != 0 || sscanf(s, "(%lld, %lld)", &dim, &frames) != 2 || dim < 1 ||
        dim > 65536 || frames < 0)
      goto bad_lat;
    if (strncmp(fo, "True", 4) != 0) {
      snprintf(err, err_size, "%s stores row-major latents; the native reader reads frame-major files as same-edge "
               "writes them (re-encode it with same-edge)", path);
      goto fail;
    }
    if (data - e[0].offset + 4 * (uint64_t)dim * (uint64_t)frames != e[0].size) {
      snprintf(err, err_size, "%s: the latents member's size disagrees with its header", path);
      goto fail;
    }
    r->dim = (int)dim, r->frames = frames, r->data_offset = data;
    if (fseek(r->f, (long)data, SEEK_SET) != 0) goto bad_lat;
  }
  return r;
bad_id:
  snprintf(err, err_size, "%s: header field model_id must be a short string", path);
  goto fail;
bad_lat:
  snprintf(err, err_size, "%s holds malformed latents", path);
fail:
  fclose(r->f);
  free(r);
  return NULL;
}

const npz_header *npz_reader_header(const npz_reader *r) { return &r->h; }
void npz_reader_shape(const npz_reader *r, int *dim, int64_t *frames) { *dim = r->dim, *frames = r->frames; }

int64_t npz_reader_frames(npz_reader *r, float *out, int64_t n, char *err, size_t err_size) {
  if (n > r->frames - r->done) n = r->frames - r->done;
  size_t count = (size_t)n * (size_t)r->dim;
  if (n && fread(out, sizeof(float), count, r->f) != count) {
    snprintf(err, err_size, "%s: latents are truncated", r->path);
    return -1;
  }
  for (size_t i = 0; i < count; i++)
    if (!isfinite(out[i])) {
      snprintf(err, err_size, "%s holds malformed latents (NaN or Inf)", r->path);
      return -1;
    }
  r->done += n;
  return n;
}

void npz_reader_close(npz_reader *r) {
  if (!r) return;
  fclose(r->f);
  free(r);
}
