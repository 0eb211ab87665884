// Entropy coders for the indices (codes) of quantised tensors: symbols are uint16_t values in
// [0, K) with 1 <= K <= 65536. Two static (two-pass) coders share one self-contained byte format:
//
//   * Huffman: a canonical, length-limited prefix code (optimal under the limit: package-merge).
//     Simple and universal, but at least 1 bit per symbol.
//   * rANS: range asymmetric numeral systems (J. Duda) with quantised frequencies f_s summing to
//     M = 2^prob_bits. The symbols are cut into `streams` contiguous slices; each slice is coded
//     by 4 interleaved 32-bit states (symbol i of a slice by lane i % 4) into its own byte
//     stream, so slices decode independently (on threads now, on a GPU later). Measured within
//     0.1% of the static entropy for n >= 1M (header, tables and states included).
//
// Stream layout (integers are LEB128 varints unless a width is given):
//   "OWFE", version (1 byte) = 1, coder (1 byte: 1 Huffman, 2 rANS), n, K, padding
//   Huffman: table of K code lengths; when two or more symbols occur, the byte sizes of the
//            first 3 of 4 bit streams, then the streams: the symbols cut into 4 contiguous
//            slices, each coded MSB first and zero-filled to a whole byte (the decoder
//            interleaves them; a lone symbol needs no payload). Codes are canonical: of one
//            length consecutive in symbol order, shorter codes first.
//   rANS:    prob_bits (1 byte), lanes (1 byte) = 4, streams S, table of K frequencies,
//            S stream sizes in bytes, then the S streams (each: the 4 lanes' initial states as
//            little-endian uint32, then little-endian 16-bit words). Symbols occupy
//            consecutive slots in symbol order (c_s = f_0 + ... + f_{s-1}). Decoding a state x
//            in [2^16, 2^32): slot = x mod M gives s, x = f_s * (x >> prob_bits) + slot - c_s,
//            and if x < 2^16 then x = x << 16 | next word; within a group of 4 symbols the
//            lanes take their words in lane order. A slice ends with every state at 2^16 and
//            its stream consumed. A symbol with f_s = M (the only one) costs nothing.
//   then `padding` zero bytes.
// Slice j of S over n symbols is [floor(n j / S), floor(n (j + 1) / S)).
// Tables are run-length coded (zero runs are common). A stream never holds more than
// kMaxSymbolsPerByte symbols per byte of its total size: encoders pad the (rare) degenerate
// streams that would, so decoders can bound their allocation by the input size before
// allocating. Decoders check every field, table and final rANS state, and return InvalidData
// for malformed or truncated input; they never read out of bounds or hang, and allocate at
// most 2 x kMaxSymbolsPerByte bytes per input byte (plus tables of at most 512 KiB).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "owf/core/memory.h"
#include "owf/core/status.h"

namespace owf {

enum class EntropyCoder : uint8_t { kHuffman = 1, kRans = 2 };

// Decoded symbols per byte of a stream, at most (see above).
inline constexpr int64_t kMaxSymbolsPerByte = 16384;
// Longest Huffman code the format accepts.
inline constexpr int kMaxHuffmanCodeLength = 24;
// rANS: slices hold at least this many symbols (fewer streams than asked for short inputs).
inline constexpr int64_t kMinRansSliceSymbols = 4096;
// rANS: interleaved states per slice.
inline constexpr int kRansLanes = 4;

// Huffman code. Code lengths come from package-merge: optimal for the counts subject to
// max_code_length (1..24). When more than 2^max_code_length distinct symbols occur, the limit
// is raised to ceil(log2(distinct)). Returns InvalidArgument for K outside [1, 65536] or a
// symbol >= K.
Result<std::vector<uint8_t>> EncodeHuffman(std::span<const uint16_t> symbols, int alphabet_size,
                                           int max_code_length = 15);
Result<LargeVector<uint16_t>> DecodeHuffman(std::span<const uint8_t> encoded);

// rANS. streams: slices to cut the input into (1..65536; fewer when a slice would hold less
// than kMinRansSliceSymbols). prob_bits: frequency precision 1..16, or 0 to choose: the
// smallest precision in [clamp(ceil(log2(distinct)) + 1, 12, 16), 16] whose coded size is
// within 0.1% of the best one (smaller tables decode faster). threads: 0 = all cores; the
// output is identical for any thread count.
Result<std::vector<uint8_t>> EncodeRans(std::span<const uint16_t> symbols, int alphabet_size,
                                        int streams = 32, int prob_bits = 0, int threads = 0);
Result<LargeVector<uint16_t>> DecodeRans(std::span<const uint8_t> encoded, int threads = 0);

// Decodes either coder's stream (dispatch on the coder byte).
Result<LargeVector<uint16_t>> DecodeEntropy(std::span<const uint8_t> encoded, int threads = 0);

// What a stream holds, from its header and tables alone (validated as the decoders do).
struct EntropyStreamInfo {
  EntropyCoder coder = EntropyCoder::kHuffman;
  int64_t num_symbols = 0;   // n
  int alphabet_size = 0;     // K
  int streams = 0;           // rANS slices; Huffman bit streams (4, or 0 without payload)
  int prob_bits = 0;         // rANS frequency precision (Huffman: 0)
  int max_code_length = 0;   // Huffman: longest code (rANS: 0)
  int64_t header_bytes = 0;  // fixed fields, table and stream sizes
  int64_t payload_bytes = 0;
  int64_t padding_bytes = 0;
  int64_t total_bytes = 0;
  // The table's frequencies (rANS) or code lengths (Huffman), K entries.
  std::vector<uint32_t> table;
};
Result<EntropyStreamInfo> InspectEntropyStream(std::span<const uint8_t> encoded);

// Building blocks, exposed for tests and for size estimates.
// Per-symbol counts; InvalidArgument for K outside [1, 65536] or a symbol >= K. threads: 0 = all
// cores.
Result<std::vector<uint64_t>> CountSymbols(std::span<const uint16_t> symbols, int alphabet_size,
                                           int threads = 1);
// Optimal length-limited code lengths (package-merge) for counts; 0 for absent symbols, 1 for a
// lone present symbol. InvalidArgument if 2^max_code_length < distinct symbols or the limit is
// outside [1, 24].
Result<std::vector<uint8_t>> HuffmanCodeLengths(std::span<const uint64_t> counts,
                                                int max_code_length);
// Frequencies summing to 2^prob_bits, >= 1 for every present symbol, 0 for absent ones, with a
// near-minimal coded size sum(count_i * log2(2^prob_bits / freq_i)): rounded shares, then unit
// corrections where they cost least (greedy; the cost is convex per symbol). InvalidArgument if
// 2^prob_bits < distinct symbols or prob_bits outside [1, 16]. All zeros for empty counts.
Result<std::vector<uint32_t>> QuantiseFrequencies(std::span<const uint64_t> counts, int prob_bits);

}  // namespace owf
