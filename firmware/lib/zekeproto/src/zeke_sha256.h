// SHA-256 and HMAC-SHA256 (FIPS 180-4, RFC 2104) for the line protocol's tags.
// Fixed-size state, no heap, no exceptions: fits a Cortex-M4 stack.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace zeke {

constexpr size_t kSha256Bytes = 32;
constexpr size_t kSha256Block = 64;

class Sha256 {
public:
    Sha256() { reset(); }
    void reset();
    void update(const uint8_t* data, size_t len);
    void finish(uint8_t out[kSha256Bytes]);

private:
    void compress(const uint8_t block[kSha256Block]);
    uint32_t state_[8];
    uint64_t bits_;
    uint8_t block_[kSha256Block];
    size_t used_;
};

class HmacSha256 {
public:
    HmacSha256(const uint8_t* key, size_t keyLen);
    void update(const uint8_t* data, size_t len) { inner_.update(data, len); }
    void finish(uint8_t out[kSha256Bytes]);

private:
    Sha256 inner_;
    uint8_t opad_[kSha256Block];
};

// Constant-time comparison, so a tag check leaks nothing through its timing.
bool equalConstantTime(const uint8_t* a, const uint8_t* b, size_t len);

}  // namespace zeke
