// Header-only C++20 wrapper of same_edge.h: RAII handles, std::span, exceptions (se::Error).
//
//   se::Model model("models/demo", {.threads = 2});
//   se::Stream enc = model.encoder(), dec = model.decoder();
//   std::vector<float> z(enc.push_size(n) * model.latent_dim());
//   z.resize(enc.push(audio, n, z, SE_INTERLEAVED) * model.latent_dim());
#ifndef SAME_EDGE_HPP
#define SAME_EDGE_HPP

#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "same_edge.h"

namespace se {

struct Error : std::runtime_error {
  se_status status;
  Error(se_status s, const std::string &message) : std::runtime_error(message), status(s) {}
};

struct Options {
  int threads = 0;                    // 0: every core
  int sides = SE_SIDE_BOTH;
  const char *weight_cache_dir = nullptr; // see se_model_options; nullptr: in memory where available
  bool verify_sha256 = true;
};

class Stream {
 public:
  Stream() = default;
  explicit Stream(se_stream *s) : s_(s) {}
  Stream(Stream &&o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  Stream &operator=(Stream &&o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  Stream(const Stream &) = delete;
  Stream &operator=(const Stream &) = delete;
  ~Stream() { se_stream_free(s_); }

  int input_rows() const { return se_stream_input_rows(s_); }
  int output_rows() const { return se_stream_output_rows(s_); }
  // Output columns the next push of n input columns (or the flush) returns.
  size_t push_size(size_t n) const { return se_stream_push_output_size(s_, n); }
  size_t flush_size() const { return se_stream_flush_output_size(s_); }

  // Push n columns of `in` (n * input_rows() floats); writes into `out` (capacity out.size() /
  // output_rows() columns); returns the columns written.
  // An empty Stream (default-constructed or moved from) throws se::Error (SE_ERR_ARGUMENT).
  size_t push(std::span<const float> in, size_t n, std::span<float> out, se_layout layout = SE_INTERLEAVED) {
    require();
    if (in.size() < n * static_cast<size_t>(input_rows())) throw Error(SE_ERR_ARGUMENT, "input span shorter than n columns");
    size_t got = 0;
    check(se_stream_push(s_, in.data(), n, layout, out.data(), out.size() / output_rows(), &got));
    return got;
  }
  size_t flush(std::span<float> out, se_layout layout = SE_INTERLEAVED) {
    require();
    size_t got = 0;
    check(se_stream_flush(s_, layout, out.data(), out.size() / output_rows(), &got));
    return got;
  }
  se_stream *get() const { return s_; }

 private:
  void require() const {  // the capacity below divides by output_rows(), 0 without a stream
    if (!s_) throw Error(SE_ERR_ARGUMENT, "this se::Stream is empty (default-constructed or moved from)");
  }
  void check(se_status st) const {
    if (st != SE_OK) throw Error(st, se_stream_error(s_));
  }
  se_stream *s_ = nullptr;
};

class Model {
 public:
  explicit Model(const std::string &dir, const Options &options = {}) {
    se_model_options o;
    se_model_options_init(&o);
    o.threads = options.threads;
    o.sides = options.sides;
    o.weight_cache_dir = options.weight_cache_dir;
    o.verify_sha256 = options.verify_sha256 ? 1 : 0;
    char err[512];
    se_status st = se_model_open(dir.c_str(), &o, &m_, err, sizeof err);
    if (st != SE_OK) throw Error(st, err);
  }
  Model(Model &&o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  Model &operator=(Model &&o) noexcept {  // as Stream's: o closes the model this held
    std::swap(m_, o.m_);
    return *this;
  }
  Model(const Model &) = delete;
  Model &operator=(const Model &) = delete;
  // Streams must die first: a Model destroyed under a live stream is left open (leaked: se_model_close
  // refuses), not freed under it.
  ~Model() { se_model_close(m_); }

  int sample_rate() const { return se_model_sample_rate(m_); }
  int channels() const { return se_model_channels(m_); }
  int latent_dim() const { return se_model_latent_dim(m_); }
  int hop() const { return se_model_hop(m_); }
  int encoder_latency_samples() const { return se_model_encoder_latency_samples(m_); }
  int decoder_latency_samples() const { return se_model_decoder_latency_samples(m_); }
  int threads() const { return se_model_threads(m_); }
  std::string id() const { return se_model_id(m_); }

  // largest_window 1: a live stream; 0: every window (offline throughput).
  Stream encoder(int largest_window = 1) { return make(se_encoder_create, largest_window); }
  Stream decoder(int largest_window = 1) { return make(se_decoder_create, largest_window); }
  se_model *get() const { return m_; }

 private:
  template <typename F>
  Stream make(F create, int largest_window) {
    if (!m_) throw Error(SE_ERR_ARGUMENT, "this se::Model is empty (moved from)");
    se_stream *s = nullptr;
    se_status st = create(m_, largest_window, &s);
    if (st != SE_OK) throw Error(st, se_model_error(m_));
    return Stream(s);
  }
  se_model *m_ = nullptr;
};

}  // namespace se
#endif  // SAME_EDGE_HPP
