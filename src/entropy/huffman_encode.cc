// Huffman encoder: length-limited code lengths by package-merge (Larmore & Hirschberg), a
// canonical code (codes of one length are consecutive, in symbol order; shorter codes first),
// and an MSB-first bit writer.
#include <algorithm>
#include <numeric>
#include <string>

#include "owf/entropy/coder.h"
#include "tables.h"

namespace owf {
namespace {

// Appends bits MSB first into a preallocated buffer.
class BitWriter {
 public:
  explicit BitWriter(uint8_t* out) : out_(out) {}
  // len <= 24, value < 2^len.
  void Put(uint32_t value, int len) {
    acc_ = (acc_ << len) | value;
    bits_ += len;
    if (bits_ >= 32) {
      bits_ -= 32;
      const uint32_t word = static_cast<uint32_t>(acc_ >> bits_);
      out_[0] = static_cast<uint8_t>(word >> 24);
      out_[1] = static_cast<uint8_t>(word >> 16);
      out_[2] = static_cast<uint8_t>(word >> 8);
      out_[3] = static_cast<uint8_t>(word);
      out_ += 4;
    }
  }
  // Writes the remaining bits, zero-filling the last byte.
  void Flush() {
    while (bits_ > 0) {
      const int take = std::min(bits_, 8);
      bits_ -= take;
      *out_++ = static_cast<uint8_t>(((acc_ >> bits_) & ((1u << take) - 1)) << (8 - take));
    }
  }

 private:
  uint8_t* out_;
  uint64_t acc_ = 0;
  int bits_ = 0;
};

}  // namespace

Result<std::vector<uint8_t>> HuffmanCodeLengths(std::span<const uint64_t> counts,
                                                int max_code_length) {
  if (max_code_length < 1 || max_code_length > kMaxHuffmanCodeLength) {
    return InvalidArgument("Huffman max code length " + std::to_string(max_code_length) +
                           " outside [1, " + std::to_string(kMaxHuffmanCodeLength) + "]");
  }
  std::vector<uint8_t> lengths(counts.size(), 0);
  std::vector<uint32_t> order;  // present symbols by ascending count (ties: by symbol)
  for (size_t s = 0; s < counts.size(); ++s) {
    if (counts[s] > 0) order.push_back(static_cast<uint32_t>(s));
  }
  const size_t m = order.size();
  if (m == 0) return lengths;
  if (m == 1) {
    lengths[order[0]] = 1;
    return lengths;
  }
  if (m > (uint64_t{1} << max_code_length)) {
    return InvalidArgument(std::to_string(m) + " symbols need codes longer than " +
                           std::to_string(max_code_length) + " bits");
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return counts[a] < counts[b]; });
  // Package-merge. Level D = max_code_length holds the leaves; each shallower level merges the
  // leaves with the packages (adjacent pairs) of the level below. is_package[d] records, for
  // the merged list of level d, which items are packages.
  const int depth = max_code_length;
  std::vector<std::vector<uint8_t>> is_package(depth + 1);
  std::vector<uint64_t> below(m), merged;
  for (size_t i = 0; i < m; ++i) below[i] = counts[order[i]];
  is_package[depth].assign(m, 0);
  for (int d = depth - 1; d >= 1; --d) {
    const size_t packages = below.size() / 2;
    merged.clear();
    merged.reserve(m + packages);
    auto& flags = is_package[d];
    flags.clear();
    flags.reserve(m + packages);
    size_t leaf = 0, pkg = 0;
    while (leaf < m || pkg < packages) {
      const bool take_leaf =
          pkg == packages ||
          (leaf < m && counts[order[leaf]] <= below[2 * pkg] + below[2 * pkg + 1]);
      if (take_leaf) {
        merged.push_back(counts[order[leaf++]]);
        flags.push_back(0);
      } else {
        merged.push_back(below[2 * pkg] + below[2 * pkg + 1]);
        ++pkg;
        flags.push_back(1);
      }
    }
    below.swap(merged);
  }
  // Select the 2m - 2 cheapest items of the top level and expand packages downwards; every
  // selected leaf adds one to its symbol's length (leaves are merged in ascending order, so the
  // selected leaves of a level are its first ones).
  size_t take = 2 * m - 2;
  for (int d = 1; d <= depth; ++d) {
    const auto& flags = is_package[d];
    size_t leaves = 0, packages = 0;
    if (take > flags.size()) return Internal("package-merge selected past a level's list");
    for (size_t i = 0; i < take; ++i) (flags[i] ? packages : leaves)++;
    for (size_t i = 0; i < leaves; ++i) ++lengths[order[i]];
    take = 2 * packages;
  }
  return lengths;
}

Result<std::vector<uint8_t>> EncodeHuffman(std::span<const uint16_t> symbols, int alphabet_size,
                                           int max_code_length) {
  OWF_ASSIGN_OR_RETURN(const std::vector<uint64_t> counts, CountSymbols(symbols, alphabet_size));
  if (max_code_length < 1 || max_code_length > kMaxHuffmanCodeLength) {
    return InvalidArgument("Huffman max code length " + std::to_string(max_code_length) +
                           " outside [1, " + std::to_string(kMaxHuffmanCodeLength) + "]");
  }
  const size_t present = static_cast<size_t>(
      std::count_if(counts.begin(), counts.end(), [](uint64_t c) { return c; }));
  int limit = max_code_length;
  while ((uint64_t{1} << limit) < present) ++limit;  // at most 16 for 65536 symbols
  OWF_ASSIGN_OR_RETURN(const std::vector<uint8_t> lengths, HuffmanCodeLengths(counts, limit));

  std::vector<uint8_t> meta;
  std::vector<uint32_t> table(lengths.begin(), lengths.end());
  entropy_internal::PutTable(meta, table);

  // The payload: kHuffmanStreams bit streams, one per contiguous slice of the symbols, each
  // zero-filled to whole bytes; the sizes of all but the last follow the table.
  using entropy_internal::kHuffmanStreams;
  std::vector<uint8_t> streams[kHuffmanStreams];
  if (present >= 2 && !symbols.empty()) {
    const std::vector<uint32_t> codes = entropy_internal::CanonicalCodes(lengths);
    // code << 5 | length, one load per symbol.
    std::vector<uint32_t> packed(codes.size());
    for (size_t s = 0; s < codes.size(); ++s) packed[s] = codes[s] << 5 | lengths[s];
    for (int j = 0; j < kHuffmanStreams; ++j) {
      const auto slice =
          symbols.subspan(entropy_internal::SliceBegin(symbols.size(), kHuffmanStreams, j),
                          entropy_internal::SliceBegin(symbols.size(), kHuffmanStreams, j + 1) -
                              entropy_internal::SliceBegin(symbols.size(), kHuffmanStreams, j));
      uint64_t bits = 0;
      for (uint16_t s : slice) bits += packed[s] & 31;
      streams[j].resize(static_cast<size_t>((bits + 7) / 8));
      BitWriter w(streams[j].data());
      for (uint16_t s : slice) w.Put(packed[s] >> 5, static_cast<int>(packed[s] & 31));
      w.Flush();
    }
    for (int j = 0; j + 1 < kHuffmanStreams; ++j) {
      entropy_internal::PutVarint(meta, streams[j].size());
    }
  }
  std::span<const uint8_t> pieces[kHuffmanStreams];
  for (int j = 0; j < kHuffmanStreams; ++j) pieces[j] = streams[j];
  return entropy_internal::AssembleStream(EntropyCoder::kHuffman, symbols.size(), alphabet_size,
                                          meta, pieces);
}

}  // namespace owf
