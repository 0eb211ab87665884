// libFuzzer target: the rANS entropy coder. Input starting with the stream magic "OWFE" goes to
// DecodeRans: it must fail with a message or return exactly the header's symbol count, all in
// the alphabet, which must encode and decode back unchanged. Any other input is a symbol
// string to encode (alphabet size, streams and precision from its first bytes): it must decode
// back unchanged, with 1 and 3 threads.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "owf/entropy/coder.h"

namespace {

void ExpectRoundTrip(std::span<const uint16_t> symbols, int alphabet_size, int streams,
                     int prob_bits) {
  auto enc = owf::EncodeRans(symbols, alphabet_size, streams, prob_bits, 1);
  if (!enc.ok()) {
    // Only a precision too small for the distinct symbols may be refused.
    if (prob_bits == 0 || enc.status().code() != owf::StatusCode::kInvalidArgument) {
      __builtin_trap();
    }
    return;
  }
  for (int threads : {1, 3}) {
    auto dec = owf::DecodeRans(*enc, threads);
    if (!dec.ok() || dec->size() != symbols.size()) __builtin_trap();
    if (!symbols.empty() &&
        std::memcmp(dec->data(), symbols.data(), symbols.size() * sizeof(uint16_t)) != 0) {
      __builtin_trap();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  if (size >= 4 && std::memcmp(data, "OWFE", 4) == 0) {
    // Streams may claim up to kMaxSymbolsPerByte symbols per byte: skip the huge ones, which
    // only repeat the same loops for longer.
    auto info = owf::InspectEntropyStream(input);
    if (info.ok() && info->num_symbols > (int64_t{1} << 22)) return 0;
    auto dec = owf::DecodeRans(input, 2);
    if (!dec.ok()) {
      if (dec.status().message().empty()) __builtin_trap();  // errors must say what is wrong
      return 0;
    }
    if (!info.ok() || static_cast<int64_t>(dec->size()) != info->num_symbols) __builtin_trap();
    for (uint16_t s : *dec) {
      if (s >= info->alphabet_size) __builtin_trap();
    }
    if (dec->size() <= (size_t{1} << 16)) {
      ExpectRoundTrip(std::span<const uint16_t>(dec->data(), dec->size()), info->alphabet_size,
                      std::max(info->streams, 1), info->prob_bits);
    }
    return 0;
  }
  if (size < 4) return 0;
  // 1..4096, or 65281..65536 when the second byte is 0xFF.
  const int alphabet_size = data[1] == 0xFF ? 65536 - data[0] : 1 + (data[0] | (data[1] & 15) << 8);
  const int streams = 1 + data[2] % 64;
  const int prob_bits = data[3] % 17;  // 0 = automatic
  std::vector<uint16_t> symbols((size - 4) / 2);
  for (size_t i = 0; i < symbols.size(); ++i) {
    symbols[i] = static_cast<uint16_t>((data[4 + 2 * i] | data[5 + 2 * i] << 8) % alphabet_size);
  }
  ExpectRoundTrip(symbols, alphabet_size, streams, prob_bits);
  return 0;
}
