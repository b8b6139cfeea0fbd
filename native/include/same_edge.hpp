// Header-only C++20 wrapper of same_edge.h (libsame_edge 1.x): RAII handles, std::span, and
// exceptions (se::Error, with the status and se_last_error()'s message).
//
//   se::Model model("models/demo", {.threads = 2});
//   se::Stream enc = model.encoder(), dec = model.decoder();
//   std::vector<float> z(enc.push_size(n) * enc.output_rows());
//   size_t frames = enc.push(audio, z);            // audio: n interleaved frames
//   std::vector<float> all = model.encode(audio);  // offline: every latent frame at once
//
// Lifetimes. se::Model and se::Stream own one reference each: a stream keeps its model alive, so a
// Model may be destroyed (or moved over) before its Streams; the last one frees the model. Both
// move (construction and assignment: what the target held is freed first) and never copy. An empty
// one (default-constructed or moved from) throws se::Error(SE_ERR_ARGUMENT) when used; only get(),
// release(), the bool conversion and destruction are allowed on it. Threads: as the C API (a
// Model may be shared; one Stream takes one call at a time).
#ifndef SAME_EDGE_HPP
#define SAME_EDGE_HPP

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "same_edge.h"

namespace se {

// A failed call: its status and the message the library left for this thread.
struct Error : std::runtime_error {
  se_status status;
  Error(se_status s, const std::string &message) : std::runtime_error(message), status(s) {}
  const char *name() const noexcept { return se_status_name(status); }
};

// Throws se::Error with se_last_error() unless st is SE_OK.
inline void check(se_status st) {
  if (st != SE_OK) throw Error(st, se_last_error());
}

// This library's version ("1.0.0"; compare with SE_VERSION_STRING, the header's) and the LiteRT
// runtime this process loaded ("2.3"; at least SE_LITERT_MIN_VERSION or every open fails).
inline std::string_view version() noexcept { return se_version(); }
inline int version_number() noexcept { return se_version_number(); }
inline std::string_view litert_version() noexcept { return se_litert_version(); }

// se_model_options.weight_cache_dir: unset (the default, or nullptr) is XNNPACK's in-memory cache
// where memfd_create exists; "" is none; anything else a directory (one file per graph).
class WeightCacheDir {
 public:
  WeightCacheDir() = default;
  WeightCacheDir(std::nullptr_t) {}
  WeightCacheDir(const char *dir) : set_(dir != nullptr), dir_(dir ? dir : "") {}
  WeightCacheDir(std::string dir) : set_(true), dir_(std::move(dir)) {}
  const char *c_str() const noexcept { return set_ ? dir_.c_str() : nullptr; }

 private:
  bool set_ = false;
  std::string dir_;
};

// Every field of se_model_options; each default is the C default (see same_edge.h).
struct Options {
  int threads = 0;                              // 1..256; 0: every core this process may use
  int sides = 0;                                // SE_SIDE_*; 0: both
  WeightCacheDir weight_cache_dir = {};         // see WeightCacheDir
  bool skip_sha256 = false;                     // true: check each graph's size only
  se_log_level log_level = SE_LOG_DEFAULT;      // this library's messages at or above it (default: warnings)
  // Called on the thread of the call that logs, during that call: it must not throw. A captureless
  // lambda converts to it. log_user_data must outlive the model and every stream made from it.
  se_log_callback log_callback = nullptr;
  void *log_user_data = nullptr;
  se_log_level litert_log_level = SE_LOG_DEFAULT;  // LiteRT's own stderr messages (default: silent)

  // The C struct, built with se_model_options_init; its weight_cache_dir points into *this.
  se_model_options c() const {
    se_model_options o;
    se_model_options_init(&o);
    o.threads = threads;
    o.sides = sides;
    o.weight_cache_dir = weight_cache_dir.c_str();
    o.skip_sha256 = skip_sha256 ? 1 : 0;
    o.log_level = log_level;
    o.log_callback = log_callback;
    o.log_user_data = log_user_data;
    o.litert_log_level = litert_log_level;
    return o;
  }
};

// One offline encode/decode call's options. The functions are called on the calling thread during
// the call only, so they may capture locals; one that throws cancels the call and its exception is
// rethrown by encode/decode.
struct RunOptions {
  int largest_window = 0;                                   // in chunks (SAME-S: 2 frames, SAME-L: 1); 0: every window
  std::function<bool()> abort = {};                         // true: stop with SE_ERR_CANCELLED
  std::function<void(size_t done, size_t total)> progress = {};  // input columns consumed so far, of total
};

namespace detail {

// A handle of C type T freed by Free: the moves and the empty-handle checks of Model and Stream.
template <typename T, void (*Free)(T *)>
class Handle {
 public:
  Handle() = default;
  explicit Handle(T *p) noexcept : p_(p) {}
  Handle(Handle &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  Handle &operator=(Handle &&o) noexcept {  // self-move keeps the handle; never a double free
    if (this != &o) Free(std::exchange(p_, std::exchange(o.p_, nullptr)));
    return *this;
  }
  Handle(const Handle &) = delete;
  Handle &operator=(const Handle &) = delete;
  ~Handle() { Free(p_); }

  T *get() const noexcept { return p_; }
  T *release() noexcept { return std::exchange(p_, nullptr); }  // the caller frees it
  explicit operator bool() const noexcept { return p_ != nullptr; }

 protected:
  T *use(const char *what) const {  // throws on an empty handle, before any division by its rows
    if (!p_) throw Error(SE_ERR_ARGUMENT, std::string("this se::") + what + " is empty (default-constructed or moved from)");
    return p_;
  }

 private:
  T *p_ = nullptr;
};

// The columns of a span of `rows`-row data, refusing a partial column.
inline size_t columns(size_t floats, int rows, const char *what) {
  if (rows <= 0 || floats % static_cast<size_t>(rows)) throw Error(SE_ERR_ARGUMENT, std::string(what) + " is not a whole number of columns");
  return floats / static_cast<size_t>(rows);
}

// se_run_options around a RunOptions, with trampolines that catch what the functions throw.
struct Run {
  explicit Run(const RunOptions &o) : opts(o) {  // not copied or moved: c.user_data is this
    c.struct_size = sizeof c;
    c.largest_window = o.largest_window;
    if (o.abort || o.progress) {  // a throwing progress function cancels at the next abort check
      c.abort_callback = &Run::abort;
      c.progress_callback = &Run::progress;
      c.user_data = this;
    }
  }
  Run(const Run &) = delete;
  Run &operator=(const Run &) = delete;
  void finish(se_status st) const {
    if (thrown) std::rethrow_exception(thrown);
    check(st);
  }
  static int abort(void *p) noexcept {
    Run *r = static_cast<Run *>(p);
    if (r->thrown) return 1;
    try {
      return r->opts.abort && r->opts.abort() ? 1 : 0;
    } catch (...) {
      r->thrown = std::current_exception();
      return 1;
    }
  }
  static void progress(size_t done, size_t total, void *p) noexcept {
    Run *r = static_cast<Run *>(p);
    if (r->thrown || !r->opts.progress) return;
    try {
      r->opts.progress(done, total);
    } catch (...) {
      r->thrown = std::current_exception();
    }
  }
  const RunOptions &opts;
  se_run_options c{};
  std::exception_ptr thrown;
};

}  // namespace detail

// An encoder or decoder stream (Model::encoder(), Model::decoder()). Input columns are audio frames
// (encoder) or latent frames (decoder); spans hold whole columns of input_rows() / output_rows()
// floats, in `layout`. SE_PLANAR rows follow one another: an input's are n columns long, an
// output's out.size() / output_rows() (its capacity).
class Stream : public detail::Handle<se_stream, se_stream_free> {
 public:
  Stream() = default;
  static Stream adopt(se_stream *s) noexcept { return Stream(s); }  // takes over the C handle

  int input_rows() const { return se_stream_input_rows(use("Stream")); }
  int output_rows() const { return se_stream_output_rows(use("Stream")); }
  // Exactly the output columns the next push of n input columns (or the flush) returns; SIZE_MAX
  // when they would not fit in memory (push refuses that n).
  size_t push_size(size_t n) const { return se_stream_push_output_size(use("Stream"), n); }
  size_t flush_size() const { return se_stream_flush_output_size(use("Stream")); }

  // Push n columns of `in` (interleaved: its first n; planar: rows n apart); write the output now final into `out` (capacity
  // out.size() / output_rows() columns); return the columns written.
  size_t push(std::span<const float> in, size_t n, std::span<float> out, se_layout layout = SE_INTERLEAVED) {
    se_stream *s = use("Stream");
    if (n > in.size() / static_cast<size_t>(input_rows())) throw Error(SE_ERR_ARGUMENT, "the input span is shorter than n columns");
    size_t got = 0;
    check(se_stream_push(s, in.data(), n, layout, out.data(), out.size() / static_cast<size_t>(output_rows()), &got));
    return got;
  }
  // Push all of `in` (whole columns).
  size_t push(std::span<const float> in, std::span<float> out, se_layout layout = SE_INTERLEAVED) {
    use("Stream");
    return push(in, detail::columns(in.size(), input_rows(), "the input"), out, layout);
  }
  // The rest of the output; no push after it but for a reset().
  size_t flush(std::span<float> out, se_layout layout = SE_INTERLEAVED) {
    se_stream *s = use("Stream");
    size_t got = 0;
    check(se_stream_flush(s, layout, out.data(), out.size() / static_cast<size_t>(output_rows()), &got));
    return got;
  }
  // Back to the start, as if new (after a flush, a failure or mid-stream), without allocating.
  void reset() { check(se_stream_reset(use("Stream"))); }

 private:
  explicit Stream(se_stream *s) noexcept : Handle(s) {}
};

// An open model: from a directory (the constructor), memory or file ranges (the factories).
class Model : public detail::Handle<se_model, se_model_close> {
 public:
  Model() = default;
  explicit Model(const std::string &dir, const Options &options = {}) : Handle(open(dir, options)) {}
  // The bytes of manifest.json and of each graph (empty for a side options.sides leaves out); they
  // are copied, and may be freed once this returns.
  static Model from_memory(std::span<const std::byte> manifest, std::span<const std::byte> encoder,
                           std::span<const std::byte> decoder, const Options &options = {}) {
    return from_memory(manifest.data(), manifest.size(), encoder.data(), encoder.size(), decoder.data(), decoder.size(),
                       options);
  }
  static Model from_memory(const void *manifest, size_t manifest_size, const void *encoder, size_t encoder_size,
                           const void *decoder, size_t decoder_size, const Options &options = {}) {
    se_model_options o = options.c();
    se_model *m = nullptr;
    check(se_model_open_memory(manifest, manifest_size, encoder, encoder_size, decoder, decoder_size, &o, &m));
    return Model(m);
  }
  // File ranges ({fd, offset, length}; fd -1 for a side not loaded): an APK's uncompressed assets,
  // or whole files. The fds are read with pread, not closed, and may be closed once this returns.
  static Model from_fd(se_file_range manifest, se_file_range encoder, se_file_range decoder, const Options &options = {}) {
    se_model_options o = options.c();
    se_model *m = nullptr;
    check(se_model_open_fd(manifest, encoder, decoder, &o, &m));
    return Model(m);
  }
  static Model adopt(se_model *m) noexcept { return Model(m); }  // takes over the C handle

  int sample_rate() const { return se_model_sample_rate(use("Model")); }
  int channels() const { return se_model_channels(use("Model")); }
  int latent_dim() const { return se_model_latent_dim(use("Model")); }
  int hop() const { return se_model_hop(use("Model")); }
  int frames_per_chunk() const { return se_model_frames_per_chunk(use("Model")); }
  int encoder_latency_samples() const { return se_model_encoder_latency_samples(use("Model")); }
  int decoder_latency_samples() const { return se_model_decoder_latency_samples(use("Model")); }
  int threads() const { return se_model_threads(use("Model")); }
  int sides() const { return se_model_sides(use("Model")); }
  std::string id() const { return se_model_id(use("Model")); }
  std::string precision() const { return se_model_precision(use("Model")); }

  // largest_window 1: a live stream (lowest latency); 0: every window (offline throughput).
  Stream encoder(int largest_window = 1) const { return make(se_encoder_create, largest_window); }
  Stream decoder(int largest_window = 1) const { return make(se_decoder_create, largest_window); }

  // Offline: audio (whole frames of channels()) -> every latent frame, ceil(frames / hop()) of them.
  std::vector<float> encode(std::span<const float> audio, se_layout layout = SE_INTERLEAVED,
                            const RunOptions &options = {}) const {
    return offline(&se_encode_output_size, &se_encode, audio, channels(), latent_dim(), layout, options);
  }
  size_t encode(std::span<const float> audio, std::span<float> latents, se_layout layout = SE_INTERLEAVED,
                const RunOptions &options = {}) const {
    return offline_into(&se_encode, audio, channels(), latents, latent_dim(), layout, options);
  }
  // Offline: latents (whole frames of latent_dim()) -> audio, hop() frames per latent frame.
  std::vector<float> decode(std::span<const float> latents, se_layout layout = SE_INTERLEAVED,
                            const RunOptions &options = {}) const {
    return offline(&se_decode_output_size, &se_decode, latents, latent_dim(), channels(), layout, options);
  }
  size_t decode(std::span<const float> latents, std::span<float> audio, se_layout layout = SE_INTERLEAVED,
                const RunOptions &options = {}) const {
    return offline_into(&se_decode, latents, latent_dim(), audio, channels(), layout, options);
  }

 private:
  explicit Model(se_model *m) noexcept : Handle(m) {}
  static se_model *open(const std::string &dir, const Options &options) {
    se_model_options o = options.c();
    se_model *m = nullptr;
    check(se_model_open(dir.c_str(), &o, &m));
    return m;
  }
  using Call = se_status (*)(se_model *, const float *, size_t, se_layout, float *, size_t, size_t *, const se_run_options *);
  using Size = size_t (*)(const se_model *, size_t);

  Stream make(se_status (*create)(se_model *, int, se_stream **), int largest_window) const {
    se_stream *s = nullptr;
    check(create(use("Model"), largest_window, &s));
    return Stream::adopt(s);
  }
  size_t offline_into(Call run, std::span<const float> in, int in_rows, std::span<float> out, int out_rows, se_layout layout,
                      const RunOptions &options) const {
    const size_t n = detail::columns(in.size(), in_rows, "the input");
    detail::Run r(options);
    size_t got = 0;
    r.finish(run(use("Model"), in.data(), n, layout, out.data(), out.size() / static_cast<size_t>(out_rows), &got, &r.c));
    return got;
  }
  std::vector<float> offline(Size size, Call run, std::span<const float> in, int in_rows, int out_rows, se_layout layout,
                             const RunOptions &options) const {
    const size_t cols = size(use("Model"), detail::columns(in.size(), in_rows, "the input"));
    if (cols == SIZE_MAX) throw Error(SE_ERR_ARGUMENT, "the output would not fit in memory");
    std::vector<float> out(cols * static_cast<size_t>(out_rows));
    out.resize(offline_into(run, in, in_rows, out, out_rows, layout, options) * static_cast<size_t>(out_rows));
    return out;
  }
};

}  // namespace se
#endif  // SAME_EDGE_HPP
