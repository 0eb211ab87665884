// Huffman decoder: a primary lookup table on the next kPrimaryBits bits resolves codes up to that
// length in one load; longer codes (rare by construction) are found by canonical comparison.
#include <algorithm>
#include <cstring>

#include "owf/entropy/coder.h"
#include "tables.h"

namespace owf {
namespace {

constexpr int kPrimaryBits = 11;

uint64_t Load64Be(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}

class HuffmanTables {
 public:
  explicit HuffmanTables(const entropy_internal::HuffmanLayout& l) {
    max_len_ = l.max_length;
    primary_bits_ = std::min(max_len_, kPrimaryBits);
    std::vector<uint8_t> lengths(l.lengths.begin(), l.lengths.end());
    const std::vector<uint32_t> codes = entropy_internal::CanonicalCodes(lengths);
    lut_.assign(size_t{1} << primary_bits_, 0);
    uint32_t count[kMaxHuffmanCodeLength + 2] = {};
    for (uint8_t len : lengths) ++count[len];
    // Symbols sorted by (length, symbol): the canonical order.
    uint32_t offset[kMaxHuffmanCodeLength + 2] = {};
    for (int len = 1; len <= kMaxHuffmanCodeLength; ++len)
      offset[len + 1] = offset[len] + count[len];
    sorted_.resize(offset[kMaxHuffmanCodeLength + 1]);
    uint32_t fill[kMaxHuffmanCodeLength + 2];
    std::copy(std::begin(offset), std::end(offset), std::begin(fill));
    for (size_t s = 0; s < lengths.size(); ++s) {
      const int len = lengths[s];
      if (len == 0) continue;
      sorted_[fill[len]++] = static_cast<uint16_t>(s);
      if (len <= primary_bits_) {
        const uint32_t first = codes[s] << (primary_bits_ - len);
        const uint32_t entry = static_cast<uint32_t>(s) | static_cast<uint32_t>(len) << 16;
        std::fill(lut_.begin() + first, lut_.begin() + first + (1u << (primary_bits_ - len)),
                  entry);
      }
    }
    for (int len = 1; len <= kMaxHuffmanCodeLength; ++len) {
      count_[len] = count[len];
      offset_[len] = offset[len];
    }
    // First code of each length (right-aligned), as in CanonicalCodes.
    uint32_t code = 0;
    for (int len = 1; len <= kMaxHuffmanCodeLength; ++len) {
      code = (code + (len > 1 ? count[len - 1] : 0)) << 1;
      first_[len] = code;
    }
  }

  // The next symbol and its length (sym | len << 16) from a window whose top bits are the
  // stream's next bits. Every window decodes (the code is complete).
  uint32_t Decode(uint64_t window) const {
    const uint32_t e = lut_[window >> (64 - primary_bits_)];
    if (e >> 16) [[likely]]
      return e;
    return DecodeLong(window);
  }

 private:
  uint32_t DecodeLong(uint64_t window) const {
    for (int len = primary_bits_ + 1; len <= max_len_; ++len) {
      const uint32_t v = static_cast<uint32_t>(window >> (64 - len));
      const uint32_t index = v - first_[len];
      if (index < count_[len]) {
        return sorted_[offset_[len] + index] | static_cast<uint32_t>(len) << 16;
      }
    }
    return uint32_t{1} << 16;  // unreachable: the code is complete (checked on parse)
  }

  int max_len_ = 0;
  int primary_bits_ = 0;
  std::vector<uint32_t> lut_;
  std::vector<uint16_t> sorted_;
  uint32_t first_[kMaxHuffmanCodeLength + 1] = {};
  uint32_t count_[kMaxHuffmanCodeLength + 1] = {};
  uint32_t offset_[kMaxHuffmanCodeLength + 1] = {};
};

// One bit stream being decoded.
struct BitCursor {
  const uint8_t* data;
  size_t size;
  uint64_t pos;  // in bits
  uint16_t* out;
  uint16_t* out_end;
};

// Decodes two symbols from one window: 8 readable bytes at the current byte give >= 57 bits,
// two codes of <= 24 bits.
[[gnu::always_inline]] inline void DecodeTwo(const HuffmanTables& t, BitCursor& c) {
  uint64_t window = Load64Be(c.data + (c.pos >> 3)) << (c.pos & 7);
  const uint32_t a = t.Decode(window);
  window <<= a >> 16;
  const uint32_t b = t.Decode(window);
  c.out[0] = static_cast<uint16_t>(a);
  c.out[1] = static_cast<uint16_t>(b);
  c.pos += (a >> 16) + (b >> 16);
  c.out += 2;
}

// How many DecodeTwo calls can run on c without reading past its data (each advances the byte
// position by at most (7 + 48) / 8 = 6) or its output.
size_t SafePairs(const BitCursor& c) {
  const size_t byte = static_cast<size_t>(c.pos >> 3);
  const size_t by_input = c.size >= 8 && byte <= c.size - 8 ? (c.size - 8 - byte) / 6 + 1 : 0;
  return std::min(by_input, static_cast<size_t>(c.out_end - c.out) / 2);
}

// Decodes the rest of a stream and checks that it ends exactly at its last byte.
Status FinishStream(const HuffmanTables& t, BitCursor& c) {
  for (size_t pairs = SafePairs(c); pairs > 0; pairs = SafePairs(c)) {
    while (pairs-- > 0) DecodeTwo(t, c);
  }
  // Tail: assemble the window byte by byte, zeros past the end.
  const uint64_t total_bits = uint64_t{c.size} * 8;
  for (; c.out < c.out_end; ++c.out) {
    if (c.pos >= total_bits) return InvalidData("truncated Huffman payload");
    uint64_t window = 0;
    const size_t byte = static_cast<size_t>(c.pos >> 3);
    for (size_t k = 0; k < 8; ++k) {
      window = window << 8 | (byte + k < c.size ? c.data[byte + k] : 0);
    }
    const uint32_t e = t.Decode(window << (c.pos & 7));
    *c.out = static_cast<uint16_t>(e);
    c.pos += e >> 16;
  }
  if (c.pos > total_bits) return InvalidData("truncated Huffman payload");
  if ((c.pos + 7) / 8 != c.size) return InvalidData("Huffman payload has trailing bytes");
  if ((c.pos & 7) != 0 && (c.data[c.size - 1] & (0xFFu >> (c.pos & 7))) != 0) {
    return InvalidData("Huffman payload has nonzero fill bits");
  }
  return Status::Ok();
}

}  // namespace

Result<LargeVector<uint16_t>> DecodeHuffman(std::span<const uint8_t> encoded) {
  using entropy_internal::kHuffmanStreams;
  OWF_ASSIGN_OR_RETURN(const entropy_internal::HuffmanLayout l,
                       entropy_internal::ParseHuffman(encoded));
  const size_t n = static_cast<size_t>(l.n);
  LargeVector<uint16_t> out(n);
  if (n == 0) return out;
  if (l.present == 1) {
    std::fill(out.begin(), out.end(), static_cast<uint16_t>(l.lone_symbol));
    return out;
  }
  const HuffmanTables tables(l);
  BitCursor c[kHuffmanStreams];
  for (int j = 0; j < kHuffmanStreams; ++j) {
    c[j] = {l.streams[j].data(), l.streams[j].size(), 0,
            out.data() + entropy_internal::SliceBegin(n, kHuffmanStreams, j),
            out.data() + entropy_internal::SliceBegin(n, kHuffmanStreams, j + 1)};
  }
  // The streams' decode chains are independent: interleaving them keeps 4 in flight.
  static_assert(kHuffmanStreams == 4);
  for (;;) {
    const size_t pairs =
        std::min({SafePairs(c[0]), SafePairs(c[1]), SafePairs(c[2]), SafePairs(c[3])});
    if (pairs == 0) break;
    for (size_t k = 0; k < pairs; ++k) {
      DecodeTwo(tables, c[0]);
      DecodeTwo(tables, c[1]);
      DecodeTwo(tables, c[2]);
      DecodeTwo(tables, c[3]);
    }
  }
  for (auto& cursor : c) OWF_RETURN_IF_ERROR(FinishStream(tables, cursor));
  return out;
}

}  // namespace owf
