// Internal: the entropy stream format shared by the encoders and decoders (header, run-length
// coded tables, stream layout) and small helpers. See include/owf/entropy/coder.h.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "owf/core/status.h"
#include "owf/entropy/coder.h"

namespace owf::entropy_internal {

inline constexpr uint8_t kVersion = 1;
// Hard cap on n whatever the input size (2^40 symbols = 2 TiB decoded).
inline constexpr uint64_t kMaxSymbols = uint64_t{1} << 40;
inline constexpr int kMaxRansStreams = 65536;
inline constexpr int kMaxProbBits = 16;
// rANS states live in [kRansL, 2^32); renormalisation moves 16 bits at a time.
inline constexpr uint32_t kRansL = uint32_t{1} << 16;
// Huffman payloads hold this many independent bit streams (the decoder interleaves them).
inline constexpr int kHuffmanStreams = 4;

// Bounds-checked little reader over a byte span. Every method returns false (and reads
// nothing) when the bytes are not there.
class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> data) : data_(data) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  bool Byte(uint8_t* v);
  // LEB128, at most 10 bytes, no overflow past 64 bits.
  bool Varint(uint64_t* v);
  bool Bytes(size_t count, std::span<const uint8_t>* out);
  // Forgets the last `count` bytes (padding).
  bool DropTail(size_t count);

 private:
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
};

void PutVarint(std::vector<uint8_t>& out, uint64_t v);

// Run-length coded table of values: a token t is one value t >> 1 when t is even, else a run of
// (t >> 1) + 3 copies of the varint value that follows.
void PutTable(std::vector<uint8_t>& out, std::span<const uint32_t> values);
// Reads exactly `count` values, each <= max_value.
Status ReadTable(ByteReader& r, size_t count, uint32_t max_value, std::vector<uint32_t>* values);

// Header + meta (coder fields and tables) + payload pieces + padding, where the padding keeps
// n <= kMaxSymbolsPerByte x total size.
std::vector<uint8_t> AssembleStream(EntropyCoder coder, uint64_t n, int alphabet_size,
                                    std::span<const uint8_t> meta,
                                    std::span<const std::span<const uint8_t>> payload);

struct HuffmanLayout {
  uint64_t n = 0;
  int alphabet_size = 0;
  std::vector<uint32_t> lengths;  // K code lengths, a complete prefix code (or one symbol)
  int max_length = 0;
  int present = 0;       // symbols with a code
  int lone_symbol = -1;  // the only symbol when present == 1 (the payload is then empty)
  size_t header_bytes = 0;
  size_t padding_bytes = 0;
  std::span<const uint8_t> payload;
  // The payload's bit streams, one per contiguous quarter of the symbols (see SliceBegin).
  std::span<const uint8_t> streams[kHuffmanStreams];
};
Result<HuffmanLayout> ParseHuffman(std::span<const uint8_t> encoded);

struct RansLayout {
  uint64_t n = 0;
  int alphabet_size = 0;
  int prob_bits = 0;
  std::vector<uint32_t> freqs;  // K frequencies summing to 2^prob_bits (all 0 when n == 0)
  int lone_symbol = -1;         // the symbol with frequency 2^prob_bits, if any
  size_t header_bytes = 0;
  size_t padding_bytes = 0;
  std::vector<std::span<const uint8_t>> streams;  // S >= 1 when n > 0, S == 0 when n == 0
};
Result<RansLayout> ParseRans(std::span<const uint8_t> encoded);

// Canonical Huffman codes for the lengths (0 = no code; each <= kMaxHuffmanCodeLength), right-
// aligned: codes of one length are consecutive in symbol order and shorter codes come first.
std::vector<uint32_t> CanonicalCodes(std::span<const uint8_t> lengths);

// Slice j of S over n symbols is [SliceBegin(n, S, j), SliceBegin(n, S, j + 1)).
inline uint64_t SliceBegin(uint64_t n, uint64_t streams, uint64_t j) { return n * j / streams; }

inline uint32_t Load32Le(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap32(v);
  return v;
}
inline uint64_t Load64Le(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  return v;
}
inline uint32_t Load16Le(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap16(v);
  return v;
}

}  // namespace owf::entropy_internal
