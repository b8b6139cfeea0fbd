// The C++ wrapper (same_edge.hpp) on a model, run by tests/test_native.py (plain and under ASan + UBSan):
//   wrapper_check MODEL_DIR
// Every option, a model opened from a directory, from memory and from ranges of one file (as an
// APK's assets) encoding and decoding bit for bit alike, a reset stream equal to a new one, empty
// (moved-from) handles throwing instead of crashing, a stream outliving its model, the log
// callback, cancellation through RunOptions, and error statuses and messages. Prints "ok".
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "same_edge.hpp"

namespace fs = std::filesystem;

static int failures = 0;

#define CHECK(cond)                                                \
  do {                                                             \
    if (!(cond)) {                                                 \
      std::fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #cond); \
      failures++;                                                  \
    }                                                              \
  } while (0)

// The status `call` throws (SE_OK if none), and its message in *message.
template <typename F>
static se_status thrown(F call, std::string *message = nullptr) {
  try {
    call();
  } catch (const se::Error &e) {
    if (message) *message = e.what();
    return e.status;
  }
  return SE_OK;
}

#define CHECK_THROWS(status, call)                                                                           \
  do {                                                                                                       \
    se_status got_ = thrown([&] { call; });                                                                  \
    if (got_ != (status)) {                                                                                  \
      std::fprintf(stderr, "FAIL line %d: %s gave %s, not %s\n", __LINE__, #call, se_status_name(got_), #status); \
      failures++;                                                                                            \
    }                                                                                                        \
  } while (0)

static std::vector<std::byte> read_file(const fs::path &path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw std::runtime_error("cannot read " + path.string());
  std::vector<std::byte> out(bytes.size());
  if (!bytes.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

static bool same_bits(const std::vector<float> &a, const std::vector<float> &b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// What a log callback received.
struct Log {
  int info = 0, errors = 0;
  std::string last_error;
};

static void on_log(se_log_level level, const char *message, void *user_data) {
  Log *log = static_cast<Log *>(user_data);
  if (level == SE_LOG_INFO) log->info++;
  if (level == SE_LOG_ERROR) log->errors++, log->last_error = message;
}

// A stream's whole output for `in`, pushed in blocks of `block` columns, then flushed.
static std::vector<float> stream_all(se::Stream &s, const std::vector<float> &in, size_t block) {
  const size_t in_rows = static_cast<size_t>(s.input_rows()), out_rows = static_cast<size_t>(s.output_rows());
  const size_t n = in.size() / in_rows;
  std::vector<float> out, buf;
  for (size_t at = 0; at < n; at += block) {
    const size_t k = std::min(block, n - at);
    buf.resize(s.push_size(k) * out_rows);
    size_t got = s.push(std::span<const float>(in).subspan(at * in_rows, k * in_rows), buf);
    out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got * out_rows));
  }
  buf.resize(s.flush_size() * out_rows);
  size_t got = s.flush(buf);
  out.insert(out.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(got * out_rows));
  return out;
}

static void run(const fs::path &dir, const fs::path &tmp) {
  // Versions: the library is the header's, on a LiteRT the library accepts.
  CHECK(se::version() == SE_VERSION_STRING);
  CHECK(se::version_number() == SE_VERSION_MAJOR * 10000 + SE_VERSION_MINOR * 100 + SE_VERSION_PATCH);
  CHECK(se::litert_version() >= std::string_view(SE_LITERT_MIN_VERSION));

  // Every option: one thread, both sides spelled out, a weight cache directory, size checks only,
  // INFO messages to a callback, LiteRT silent.
  Log log;
  const fs::path cache = tmp / "cache";
  fs::create_directory(cache);
  se::Options every{.threads = 1, .sides = SE_SIDE_BOTH, .weight_cache_dir = cache.string(), .skip_sha256 = true,
                    .log_level = SE_LOG_INFO, .log_callback = on_log, .log_user_data = &log,
                    .litert_log_level = SE_LOG_SILENT};
  se::Model model(dir.string(), every);
  CHECK(log.info > 0);  // "opened ...", "compiled ..."
  CHECK(model.threads() == 1 && model.sides() == SE_SIDE_BOTH);
  CHECK(model.sample_rate() == 44100 && model.channels() == 2 && model.latent_dim() > 0 && model.hop() > 0);
  CHECK(model.frames_per_chunk() > 0 && model.encoder_latency_samples() > 0 && model.decoder_latency_samples() > 0);
  CHECK(model.id().find('-') != std::string::npos && !model.precision().empty());
  int xnn = 0;
  for (const auto &f : fs::directory_iterator(cache)) xnn += f.path().extension() == ".xnn";
  CHECK(xnn == 2);  // one packed-weight file per graph

  // The same model's defaults: warnings only, so no INFO message; a failure reaches the callback
  // at SE_LOG_ERROR with the exception's message.
  Log quiet;
  se::Model plain(dir.string(), {.threads = 1, .log_callback = on_log, .log_user_data = &quiet});
  CHECK(quiet.info == 0 && plain.sides() == SE_SIDE_BOTH);

  const size_t ch = static_cast<size_t>(model.channels()), dim = static_cast<size_t>(model.latent_dim());
  const size_t frames = 3 * static_cast<size_t>(model.hop()) * static_cast<size_t>(model.frames_per_chunk()) + 1234;
  std::vector<float> audio(frames * ch);
  for (size_t i = 0; i < audio.size(); i++) audio[i] = 0.3f * std::sin(0.01f * static_cast<float>(i)) * std::cos(0.0007f * static_cast<float>(i % 9973));

  // Offline through the wrapper: vector and span forms agree; latents decode to n * hop frames.
  std::vector<float> z = model.encode(audio);
  CHECK(z.size() == (frames + static_cast<size_t>(model.hop()) - 1) / static_cast<size_t>(model.hop()) * dim);
  std::vector<float> z_span(z.size() + dim);
  CHECK(model.encode(audio, z_span) * dim == z.size());
  z_span.resize(z.size());
  CHECK(same_bits(z, z_span));
  std::vector<float> y = model.decode(z);
  CHECK(y.size() == z.size() / dim * static_cast<size_t>(model.hop()) * ch);
  CHECK(same_bits(model.encode(audio, SE_INTERLEAVED, {.largest_window = 1}), z));

  // The model in memory (the buffers freed before it runs) and in one file at padded offsets (as
  // an APK's uncompressed assets; the fd closed before it runs): the same bits as the directory.
  se::Model from_memory;
  {
    std::vector<std::byte> m = read_file(dir / "manifest.json"), e = read_file(dir / "encoder.tflite"),
                           d = read_file(dir / "decoder.tflite");
    from_memory = se::Model::from_memory(m, e, d, {.threads = 1});
  }
  CHECK(same_bits(from_memory.encode(audio), z) && same_bits(from_memory.decode(z), y));
  se::Model from_fd;
  {
    const fs::path apk = tmp / "app.apk";
    std::ofstream out(apk, std::ios::binary);
    se_file_range ranges[3];
    const char *names[3] = {"manifest.json", "encoder.tflite", "decoder.tflite"};
    for (int i = 0; i < 3; i++) {
      std::vector<std::byte> bytes = read_file(dir / names[i]);
      out << std::string(static_cast<size_t>(97 + 1000 * i), 'P');  // padding, as zip headers would be
      ranges[i] = {-1, static_cast<int64_t>(out.tellp()), static_cast<int64_t>(bytes.size())};
      out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
    out << "trailing bytes";
    out.close();
    int fd = open(apk.c_str(), O_RDONLY);
    CHECK(fd >= 0);
    for (se_file_range &r : ranges) r.fd = fd;
    from_fd = se::Model::from_fd(ranges[0], ranges[1], ranges[2], {.threads = 1});
    se_file_range short_range = ranges[1];
    short_range.length -= 1;  // the manifest's size no longer matches
    CHECK_THROWS(SE_ERR_MODEL, se::Model::from_fd(ranges[0], short_range, ranges[2], {.threads = 1}));
    CHECK_THROWS(SE_ERR_ARGUMENT, se::Model::from_fd(ranges[0], ranges[1], {-1, 0, 0}, {.threads = 1}));
    se::Model encoder_only = se::Model::from_fd(ranges[0], ranges[1], {-1, 0, 0}, {.threads = 1, .sides = SE_SIDE_ENCODER});
    CHECK(encoder_only.sides() == SE_SIDE_ENCODER);
    CHECK_THROWS(SE_ERR_STATE, encoder_only.decoder());
    close(fd);
  }
  CHECK(same_bits(from_fd.encode(audio), z) && same_bits(from_fd.decode(z), y));

  // skip_sha256: a graph with one byte changed opens on its size alone; checked, it is refused.
  {
    std::vector<std::byte> m = read_file(dir / "manifest.json"), e = read_file(dir / "encoder.tflite");
    e[e.size() / 2] ^= std::byte{1};
    std::string message;
    CHECK(thrown([&] { se::Model::from_memory(m, e, {}, {.threads = 1, .sides = SE_SIDE_ENCODER}); }, &message) ==
          SE_ERR_MODEL);
    CHECK(message.find("sha256") != std::string::npos);
    CHECK(thrown([&] {
            se::Model::from_memory(m, e, {}, {.threads = 1, .sides = SE_SIDE_ENCODER, .skip_sha256 = true});
          }) == SE_OK);
  }

  // Streams: any blocks equal offline; reset (after a flush, and mid-stream) equals a new stream.
  {
    se::Stream enc = model.encoder();
    std::vector<float> first = stream_all(enc, audio, 1000);
    CHECK(same_bits(first, z));
    enc.reset();
    CHECK(same_bits(stream_all(enc, audio, 4410), z));
    std::vector<float> sink(enc.push_size(777) * dim);
    enc.reset();
    enc.push(std::span<const float>(audio).first(777 * ch), sink);
    enc.reset();
    se::Stream fresh = model.encoder();
    CHECK(same_bits(stream_all(enc, audio, 333), stream_all(fresh, audio, 333)));
    se::Stream dec = model.decoder();
    CHECK(same_bits(stream_all(dec, z, 3), y));
    // Explicit n: the first n columns of a longer span; n past the span is refused.
    std::vector<float> out(dim);
    enc.reset();
    CHECK(enc.push(audio, 10, out) == 0);
    CHECK(enc.flush_size() == 1);  // 10 frames: one latent frame
    CHECK_THROWS(SE_ERR_ARGUMENT, enc.push(std::span<const float>(audio).first(8), 5, out));
    CHECK_THROWS(SE_ERR_ARGUMENT, enc.push(std::span<const float>(audio).first(3), out));  // half a frame
  }

  // A model destroyed before its streams: they keep it alive and still compute the same bits.
  {
    se::Stream enc, dec;
    {
      se::Model gone(dir.string(), {.threads = 1});
      enc = gone.encoder(0);
      dec = gone.decoder(0);
    }
    CHECK(same_bits(stream_all(enc, audio, 8192), z) && same_bits(stream_all(dec, z, 7), y));
    se::Model replaced(dir.string(), {.threads = 1});
    se::Stream kept = replaced.encoder();
    replaced = se::Model();  // move assignment closes what it held; the stream keeps it
    CHECK(same_bits(stream_all(kept, audio, 5000), z));
  }

  // Empty handles: every use throws SE_ERR_ARGUMENT, nothing divides by zero rows.
  {
    std::vector<float> in(4096, 0.0f), out(1 << 16);
    se::Stream empty;
    CHECK(!empty);
    CHECK_THROWS(SE_ERR_ARGUMENT, empty.push(in, 1, out));
    CHECK_THROWS(SE_ERR_ARGUMENT, empty.push(in, out));
    CHECK_THROWS(SE_ERR_ARGUMENT, empty.flush(out));
    CHECK_THROWS(SE_ERR_ARGUMENT, empty.reset());
    CHECK_THROWS(SE_ERR_ARGUMENT, empty.push_size(1));
    CHECK_THROWS(SE_ERR_ARGUMENT, empty.flush_size());
    CHECK_THROWS(SE_ERR_ARGUMENT, empty.output_rows());
    se::Stream enc = model.encoder();
    se::Stream moved = std::move(enc);
    CHECK(!enc && moved);
    CHECK_THROWS(SE_ERR_ARGUMENT, enc.push(in, 1, out));
    CHECK(moved.push(in, 1, out) == 0);
    se::Stream &alias = moved;
    moved = std::move(alias);  // self-move keeps the stream
    CHECK(moved && moved.push(in, 1, out) == 0);
    moved = model.decoder();  // move assignment frees the encoder stream it held
    CHECK(moved.input_rows() == model.latent_dim());

    se::Model a(dir.string(), {.threads = 1}), b(dir.string(), {.threads = 1, .sides = SE_SIDE_DECODER});
    se::Model c = std::move(b);
    CHECK_THROWS(SE_ERR_ARGUMENT, b.decoder());
    CHECK_THROWS(SE_ERR_ARGUMENT, b.channels());
    CHECK_THROWS(SE_ERR_ARGUMENT, b.id());
    CHECK_THROWS(SE_ERR_ARGUMENT, b.encode(in));
    CHECK_THROWS(SE_ERR_ARGUMENT, b.decode(in, out));
    a = std::move(c);  // a is now the decoder-only model
    CHECK(a.sides() == SE_SIDE_DECODER);
    CHECK_THROWS(SE_ERR_STATE, a.encoder());
    se::Stream dec = a.decoder();
    size_t want = dec.push_size(4);
    CHECK(want > 0 && dec.push(in, 4, out) == want);  // 4 zero latent frames: whole chunks of audio
  }

  // RunOptions: an abort function cancels (at once, or after some progress); one that throws has
  // its exception rethrown; progress ends at the total.
  {
    CHECK_THROWS(SE_ERR_CANCELLED, model.encode(audio, SE_INTERLEAVED, {.abort = [] { return true; }}));
    size_t calls = 0, last = 0, total = 0;
    se::RunOptions later{.largest_window = 1,
                         .abort = [&] { return calls >= 2; },
                         .progress = [&](size_t done, size_t of) { calls++, last = done, total = of; }};
    CHECK_THROWS(SE_ERR_CANCELLED, model.encode(audio, SE_INTERLEAVED, later));
    CHECK(calls == 2 && last > 0 && last < frames && total == frames);
    calls = 0;
    CHECK(same_bits(model.decode(z, SE_INTERLEAVED, {.progress = [&](size_t done, size_t of) { calls++, last = done, total = of; }}), y));
    CHECK(calls > 0 && last == total && total == z.size() / dim);
    bool caught = false;
    try {
      model.encode(audio, SE_INTERLEAVED, {.abort = []() -> bool { throw std::logic_error("from abort"); }});
    } catch (const std::logic_error &e) {
      caught = std::string(e.what()) == "from abort";
    }
    CHECK(caught);
  }

  // Errors: statuses and per-thread messages, also sent to the log callback at SE_LOG_ERROR.
  {
    std::string message;
    CHECK(thrown([&] { se::Model((tmp / "no-such-model").string()); }, &message) == SE_ERR_MODEL);
    CHECK(message.find("no-such-model") != std::string::npos && message == se_last_error());
    std::thread([] { CHECK(std::string(se_last_error()).empty()); }).join();  // other threads' own
    se::Model decoder_only(dir.string(), {.threads = 1, .sides = SE_SIDE_DECODER, .log_callback = on_log,
                                          .log_user_data = &quiet});
    CHECK(thrown([&] { decoder_only.encoder(); }, &message) == SE_ERR_STATE);
    CHECK(quiet.errors == 1 && quiet.last_error == message);
    se::Stream enc = model.encoder();
    std::vector<float> tiny(dim);
    CHECK_THROWS(SE_ERR_BUFFER_TOO_SMALL, enc.push(audio, tiny));
    std::vector<float> bad(ch * 10, 0.0f);
    bad[3] = NAN;
    CHECK_THROWS(SE_ERR_ARGUMENT, enc.push(bad, tiny));
    CHECK(enc.push(std::span<const float>(audio).first(ch * 10), tiny) == 0);  // a refused push consumed nothing
    std::vector<float> out(enc.flush_size() * dim);
    enc.flush(out);
    CHECK_THROWS(SE_ERR_STATE, enc.push(audio, 1, out));  // push after flush
    CHECK_THROWS(SE_ERR_ARGUMENT, se::Model(dir.string(), {.threads = 100000}));
    CHECK_THROWS(SE_ERR_ARGUMENT, se::Model(dir.string(), {.sides = 7}));
  }

}

int main(int argc, char **argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  char tmpl[] = "/tmp/wrapper_check.XXXXXX";
  if (!mkdtemp(tmpl)) return 2;
  try {
    run(argv[1], tmpl);
  } catch (const std::exception &e) {  // an unexpected throw: a failure, and the temporary files go
    std::fprintf(stderr, "FAIL: %s\n", e.what());
    failures++;
  }
  fs::remove_all(tmpl);
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  else std::printf("ok\n");
  return failures ? 1 : 0;
}
