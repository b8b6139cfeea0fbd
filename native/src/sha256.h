/* SHA-256 (FIPS 180-4), for checking graph files against the manifest. */
#ifndef SAME_EDGE_SHA256_H
#define SAME_EDGE_SHA256_H
#include <stddef.h>
#include <stdint.h>
typedef struct {
  uint32_t h[8];
  uint64_t length;
  uint8_t block[64];
  size_t used;
} sha256_ctx;
void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const void *data, size_t size);
void sha256_final(sha256_ctx *ctx, uint8_t digest[32]);
#endif
