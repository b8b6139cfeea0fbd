// The C++ wrapper at its edges, run by tests/test_native.py (plain and under ASan + UBSan):
//   wrapper_check MODEL_DIR
// An empty se::Stream (default-constructed or moved from) throws se::Error where it divided by its
// zero output rows; se::Model moves by assignment as by construction.
#include <cstdio>
#include <utility>
#include <vector>

#include "same_edge.hpp"

static int failures = 0;

template <typename F>
static void expect_error(const char *what, F call) {
  try {
    call();
    std::fprintf(stderr, "FAIL: %s did not throw\n", what);
  } catch (const se::Error &e) {
    if (e.status == SE_ERR_ARGUMENT) return;
    std::fprintf(stderr, "FAIL: %s threw %s: %s\n", what, se_status_name(e.status), e.what());
  }
  failures++;
}

#define CHECK(cond)                                          \
  do {                                                       \
    if (!(cond)) {                                           \
      std::fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #cond); \
      failures++;                                            \
    }                                                        \
  } while (0)

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  std::vector<float> in(4096, 0.0f), out(1 << 16);
  se::Stream empty;
  expect_error("push on a default-constructed Stream", [&] { empty.push(in, 1, out); });
  expect_error("flush on a default-constructed Stream", [&] { empty.flush(out); });

  se::Model a(argv[1], {.threads = 1}), b(argv[1], {.threads = 1, .sides = SE_SIDE_DECODER});
  se::Stream enc = a.encoder();
  se::Stream moved = std::move(enc);
  expect_error("push on a moved-from Stream", [&] { enc.push(in, 1, out); });
  CHECK(moved.push(in, 1, out) == 0);
  moved = se::Stream();  // the stream freed before its model

  se::Model c = std::move(b);
  expect_error("a stream of a moved-from Model", [&] { b.decoder(); });
  a = std::move(c);  // a is now the decoder-only model
  CHECK(se_model_sides(a.get()) == SE_SIDE_DECODER);
  se::Stream dec = a.decoder();
  size_t want = dec.push_size(4);
  CHECK(want > 0 && dec.push(in, 4, out) == want);  // 4 zero latent frames: whole chunks of audio
  dec = se::Stream();
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  else std::printf("ok\n");
  return failures ? 1 : 0;
}
