#include "tables.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "owf/core/parallel.h"

namespace owf::entropy_internal {
namespace {

constexpr uint8_t kMagic[4] = {'O', 'W', 'F', 'E'};

struct CommonHeader {
  EntropyCoder coder = EntropyCoder::kHuffman;
  uint64_t n = 0;
  int alphabet_size = 0;
  size_t padding = 0;
};

// Reads the fixed fields, bounds n by the input size and strips the (zero) padding from `r`.
Result<CommonHeader> ReadCommonHeader(ByteReader& r, std::span<const uint8_t> all) {
  std::span<const uint8_t> magic;
  uint8_t version = 0, coder = 0;
  if (!r.Bytes(4, &magic) || std::memcmp(magic.data(), kMagic, 4) != 0) {
    return InvalidData("not an owf entropy stream (bad magic)");
  }
  if (!r.Byte(&version) || version != kVersion) {
    return InvalidData("unsupported entropy stream version");
  }
  if (!r.Byte(&coder) || (coder != 1 && coder != 2)) return InvalidData("unknown entropy coder");
  CommonHeader h;
  h.coder = static_cast<EntropyCoder>(coder);
  uint64_t k = 0, padding = 0;
  if (!r.Varint(&h.n) || !r.Varint(&k) || !r.Varint(&padding)) {
    return InvalidData("truncated entropy stream header");
  }
  if (h.n > kMaxSymbols || h.n > static_cast<uint64_t>(kMaxSymbolsPerByte) * all.size()) {
    return InvalidData("entropy stream claims " + std::to_string(h.n) +
                       " symbols, more than its size allows");
  }
  if (k < 1 || k > 65536) return InvalidData("entropy stream alphabet size out of range");
  h.alphabet_size = static_cast<int>(k);
  if (padding > r.remaining()) return InvalidData("entropy stream padding exceeds its size");
  h.padding = static_cast<size_t>(padding);
  for (size_t i = all.size() - h.padding; i < all.size(); ++i) {
    if (all[i] != 0) return InvalidData("entropy stream padding is not zero");
  }
  r.DropTail(h.padding);
  return h;
}

}  // namespace

bool ByteReader::Byte(uint8_t* v) {
  if (pos_ >= data_.size()) return false;
  *v = data_[pos_++];
  return true;
}

bool ByteReader::Varint(uint64_t* v) {
  uint64_t value = 0;
  for (int i = 0; i < 10; ++i) {
    if (pos_ + i >= data_.size()) return false;
    const uint8_t b = data_[pos_ + i];
    if (i == 9 && b > 1) return false;  // past 64 bits
    value |= uint64_t{b & 0x7Fu} << (7 * i);
    if ((b & 0x80) == 0) {
      pos_ += i + 1;
      *v = value;
      return true;
    }
  }
  return false;
}

bool ByteReader::Bytes(size_t count, std::span<const uint8_t>* out) {
  if (count > remaining()) return false;
  *out = data_.subspan(pos_, count);
  pos_ += count;
  return true;
}

bool ByteReader::DropTail(size_t count) {
  if (count > remaining()) return false;
  data_ = data_.first(data_.size() - count);
  return true;
}

void PutVarint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

void PutTable(std::vector<uint8_t>& out, std::span<const uint32_t> values) {
  size_t i = 0;
  while (i < values.size()) {
    size_t run = 1;
    while (i + run < values.size() && values[i + run] == values[i]) ++run;
    if (run >= 3) {
      PutVarint(out, (uint64_t{run - 3} << 1) | 1);
      PutVarint(out, values[i]);
      i += run;
    } else {
      PutVarint(out, uint64_t{values[i]} << 1);
      ++i;
    }
  }
}

Status ReadTable(ByteReader& r, size_t count, uint32_t max_value, std::vector<uint32_t>* values) {
  values->clear();
  values->reserve(count);
  while (values->size() < count) {
    uint64_t token = 0, value = 0, run = 1;
    if (!r.Varint(&token)) return InvalidData("truncated entropy table");
    if (token & 1) {
      run = (token >> 1) + 3;
      if (run < 3 || !r.Varint(&value)) return InvalidData("bad entropy table run");
    } else {
      value = token >> 1;
    }
    if (value > max_value) return InvalidData("entropy table value out of range");
    if (run > count - values->size()) return InvalidData("entropy table run past its end");
    values->insert(values->end(), static_cast<size_t>(run), static_cast<uint32_t>(value));
  }
  return Status::Ok();
}

std::vector<uint8_t> AssembleStream(EntropyCoder coder, uint64_t n, int alphabet_size,
                                    std::span<const uint8_t> meta,
                                    std::span<const std::span<const uint8_t>> payload) {
  std::vector<uint8_t> head(kMagic, kMagic + 4);
  head.push_back(kVersion);
  head.push_back(static_cast<uint8_t>(coder));
  PutVarint(head, n);
  PutVarint(head, static_cast<uint64_t>(alphabet_size));
  size_t payload_bytes = 0;
  for (const auto& p : payload) payload_bytes += p.size();
  // Size with a zero padding field (1 byte); pad up to ceil(n / kMaxSymbolsPerByte) if needed
  // (a longer padding varint only adds bytes).
  const uint64_t base = head.size() + 1 + meta.size() + payload_bytes;
  const uint64_t need = (n + kMaxSymbolsPerByte - 1) / kMaxSymbolsPerByte;
  const uint64_t padding = need > base ? need - base : 0;
  PutVarint(head, padding);

  std::vector<uint8_t> out;
  out.reserve(head.size() + meta.size() + payload_bytes + padding);
  out.insert(out.end(), head.begin(), head.end());
  out.insert(out.end(), meta.begin(), meta.end());
  for (const auto& p : payload) out.insert(out.end(), p.begin(), p.end());
  out.resize(out.size() + padding, 0);
  return out;
}

std::vector<uint32_t> CanonicalCodes(std::span<const uint8_t> lengths) {
  uint32_t per_length[kMaxHuffmanCodeLength + 1] = {};
  for (uint8_t len : lengths) ++per_length[len];
  per_length[0] = 0;
  uint32_t next[kMaxHuffmanCodeLength + 1] = {};
  uint32_t code = 0;
  for (int len = 1; len <= kMaxHuffmanCodeLength; ++len) {
    code = (code + per_length[len - 1]) << 1;
    next[len] = code;
  }
  std::vector<uint32_t> codes(lengths.size(), 0);
  for (size_t s = 0; s < lengths.size(); ++s) {
    if (lengths[s] != 0) codes[s] = next[lengths[s]]++;
  }
  return codes;
}

Result<HuffmanLayout> ParseHuffman(std::span<const uint8_t> encoded) {
  ByteReader r(encoded);
  OWF_ASSIGN_OR_RETURN(const CommonHeader h, ReadCommonHeader(r, encoded));
  if (h.coder != EntropyCoder::kHuffman) return InvalidData("not a Huffman stream");
  HuffmanLayout l;
  l.n = h.n;
  l.alphabet_size = h.alphabet_size;
  l.padding_bytes = h.padding;
  OWF_RETURN_IF_ERROR(
      ReadTable(r, static_cast<size_t>(h.alphabet_size), kMaxHuffmanCodeLength, &l.lengths)
          .WithContext("Huffman code lengths"));
  uint64_t kraft = 0;  // sum of 2^(24 - length): 2^24 for a complete code
  for (int s = 0; s < h.alphabet_size; ++s) {
    const uint32_t len = l.lengths[s];
    if (len == 0) continue;
    ++l.present;
    l.lone_symbol = s;
    l.max_length = std::max(l.max_length, static_cast<int>(len));
    kraft += uint64_t{1} << (kMaxHuffmanCodeLength - len);
  }
  if (l.present != 1) l.lone_symbol = -1;
  const bool coded = l.n > 0 && l.present >= 2;
  uint64_t sizes[kHuffmanStreams] = {};
  if (coded) {
    uint64_t sum = 0;
    for (int j = 0; j + 1 < kHuffmanStreams; ++j) {
      if (!r.Varint(&sizes[j]) || sizes[j] > r.remaining()) {
        return InvalidData("bad Huffman stream sizes");
      }
      sum += sizes[j];
    }
    if (sum > r.remaining()) return InvalidData("Huffman stream sizes exceed the payload");
    sizes[kHuffmanStreams - 1] = r.remaining() - sum;
  }
  l.header_bytes = r.pos();
  (void)r.Bytes(r.remaining(), &l.payload);
  if (l.n == 0) {
    if (l.present != 0 || !l.payload.empty()) return InvalidData("empty Huffman stream has data");
    return l;
  }
  if (l.present == 0) return InvalidData("Huffman stream has symbols but no codes");
  if (l.present == 1) {
    if (l.max_length != 1 || !l.payload.empty()) {
      return InvalidData("single-symbol Huffman stream is malformed");
    }
    return l;
  }
  if (kraft != uint64_t{1} << kMaxHuffmanCodeLength) {
    return InvalidData("Huffman code lengths do not form a complete prefix code");
  }
  size_t offset = 0;
  for (int j = 0; j < kHuffmanStreams; ++j) {
    l.streams[j] = l.payload.subspan(offset, static_cast<size_t>(sizes[j]));
    offset += static_cast<size_t>(sizes[j]);
    // Every symbol takes at least one bit.
    const uint64_t m =
        SliceBegin(l.n, kHuffmanStreams, j + 1) - SliceBegin(l.n, kHuffmanStreams, j);
    if (m > 8 * sizes[j]) return InvalidData("Huffman payload too short for its symbol count");
  }
  return l;
}

Result<RansLayout> ParseRans(std::span<const uint8_t> encoded) {
  ByteReader r(encoded);
  OWF_ASSIGN_OR_RETURN(const CommonHeader h, ReadCommonHeader(r, encoded));
  if (h.coder != EntropyCoder::kRans) return InvalidData("not a rANS stream");
  RansLayout l;
  l.n = h.n;
  l.alphabet_size = h.alphabet_size;
  l.padding_bytes = h.padding;
  uint8_t prob_bits = 0, lanes = 0;
  uint64_t streams = 0;
  if (!r.Byte(&prob_bits) || !r.Byte(&lanes) || !r.Varint(&streams)) {
    return InvalidData("truncated rANS header");
  }
  if (prob_bits < 1 || prob_bits > kMaxProbBits) return InvalidData("rANS prob_bits out of range");
  if (lanes != kRansLanes) return InvalidData("unsupported rANS lane count");
  l.prob_bits = prob_bits;
  const uint32_t total = uint32_t{1} << prob_bits;
  if (l.n == 0 ? streams != 0 : (streams < 1 || streams > l.n || streams > kMaxRansStreams)) {
    return InvalidData("rANS stream count out of range");
  }
  OWF_RETURN_IF_ERROR(ReadTable(r, static_cast<size_t>(h.alphabet_size), total, &l.freqs)
                          .WithContext("rANS frequencies"));
  uint64_t sum = 0;
  for (int s = 0; s < h.alphabet_size; ++s) {
    sum += l.freqs[s];
    if (l.freqs[s] == total) l.lone_symbol = s;
  }
  if (l.n == 0 ? sum != 0 : sum != total) {
    return InvalidData("rANS frequencies do not sum to 2^prob_bits");
  }
  if (streams > r.remaining()) return InvalidData("truncated rANS stream sizes");
  std::vector<uint64_t> sizes(static_cast<size_t>(streams));
  uint64_t payload = 0;
  for (auto& size : sizes) {
    if (!r.Varint(&size)) return InvalidData("truncated rANS stream sizes");
    if (size < 4 * kRansLanes || size % 2 != 0 || size > encoded.size()) {
      return InvalidData("bad rANS stream size");
    }
    payload += size;
  }
  l.header_bytes = r.pos();
  if (payload != r.remaining()) return InvalidData("rANS stream sizes do not match the payload");
  l.streams.resize(sizes.size());
  for (size_t j = 0; j < sizes.size(); ++j) (void)r.Bytes(sizes[j], &l.streams[j]);
  return l;
}

}  // namespace owf::entropy_internal

namespace owf {

using entropy_internal::ParseHuffman;
using entropy_internal::ParseRans;

Result<std::vector<uint64_t>> CountSymbols(std::span<const uint16_t> symbols, int alphabet_size,
                                           int threads) {
  if (alphabet_size < 1 || alphabet_size > 65536) {
    return InvalidArgument("alphabet size " + std::to_string(alphabet_size) +
                           " outside [1, 65536]");
  }
  const size_t k = static_cast<size_t>(alphabet_size);
  if (symbols.size() < 4 * k) {  // short input: one plain pass
    std::vector<uint64_t> counts(k, 0);
    for (uint16_t s : symbols) {
      if (s >= k) {
        return InvalidArgument("symbol outside the alphabet of " + std::to_string(alphabet_size));
      }
      ++counts[s];
    }
    return counts;
  }
  // Chunks of 2^22 symbols (32-bit counts cannot overflow), each counted into four interleaved
  // sub-histograms (fewer store-to-load stalls on runs of one symbol); out-of-range symbols go
  // to a spare bin. Chunk histograms are summed in chunk order.
  constexpr size_t kChunk = size_t{1} << 22;
  const size_t chunks = (symbols.size() + kChunk - 1) / kChunk;
  const size_t workers = std::min<size_t>(static_cast<size_t>(ResolveThreads(threads)), chunks);
  std::vector<std::vector<uint64_t>> partial(std::max<size_t>(workers, 1),
                                             std::vector<uint64_t>(k + 1, 0));
  ParallelFor(workers, static_cast<int>(workers), [&](size_t w) {
    std::vector<uint32_t> sub(4 * (k + 1));
    uint32_t* h[4] = {sub.data(), sub.data() + (k + 1), sub.data() + 2 * (k + 1),
                      sub.data() + 3 * (k + 1)};
    for (size_t c = w; c < chunks; c += workers) {
      const size_t start = c * kChunk, end = std::min(symbols.size(), start + kChunk);
      std::fill(sub.begin(), sub.end(), 0);
      size_t i = start;
      for (; i + 4 <= end; i += 4) {
        for (int j = 0; j < 4; ++j) ++h[j][std::min<size_t>(symbols[i + j], k)];
      }
      for (; i < end; ++i) ++h[0][std::min<size_t>(symbols[i], k)];
      for (size_t s = 0; s <= k; ++s)
        partial[w][s] += uint64_t{h[0][s]} + h[1][s] + h[2][s] + h[3][s];
    }
  });
  std::vector<uint64_t> counts(k, 0);
  for (const auto& p : partial) {
    if (p[k] != 0) {
      return InvalidArgument("symbol outside the alphabet of " + std::to_string(alphabet_size));
    }
    for (size_t s = 0; s < k; ++s) counts[s] += p[s];
  }
  return counts;
}

Result<EntropyStreamInfo> InspectEntropyStream(std::span<const uint8_t> encoded) {
  EntropyStreamInfo info;
  info.total_bytes = static_cast<int64_t>(encoded.size());
  if (encoded.size() > 5 && encoded[5] == static_cast<uint8_t>(EntropyCoder::kRans)) {
    OWF_ASSIGN_OR_RETURN(auto l, ParseRans(encoded));
    info.coder = EntropyCoder::kRans;
    info.num_symbols = static_cast<int64_t>(l.n);
    info.alphabet_size = l.alphabet_size;
    info.streams = static_cast<int>(l.streams.size());
    info.prob_bits = l.prob_bits;
    info.header_bytes = static_cast<int64_t>(l.header_bytes);
    info.padding_bytes = static_cast<int64_t>(l.padding_bytes);
    info.table = std::move(l.freqs);
  } else {
    OWF_ASSIGN_OR_RETURN(auto l, ParseHuffman(encoded));
    info.coder = EntropyCoder::kHuffman;
    info.num_symbols = static_cast<int64_t>(l.n);
    info.alphabet_size = l.alphabet_size;
    info.streams = l.n > 0 && l.present >= 2 ? entropy_internal::kHuffmanStreams : 0;
    info.max_code_length = l.max_length;
    info.header_bytes = static_cast<int64_t>(l.header_bytes);
    info.padding_bytes = static_cast<int64_t>(l.padding_bytes);
    info.table = std::move(l.lengths);
  }
  info.payload_bytes = info.total_bytes - info.header_bytes - info.padding_bytes;
  return info;
}

Result<LargeVector<uint16_t>> DecodeEntropy(std::span<const uint8_t> encoded, int threads) {
  if (encoded.size() > 5 && encoded[5] == static_cast<uint8_t>(EntropyCoder::kRans)) {
    return DecodeRans(encoded, threads);
  }
  return DecodeHuffman(encoded);
}

}  // namespace owf
