// GGUF-specific access on top of ModelReader: metadata arrays in full. metadata() summarises
// arrays longer than 64 elements as {"type", "length"}; a forward pass needs the whole
// tokenizer vocabulary (tokenizer.ggml.tokens / scores / token_type), which these return.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/io/model.h"

namespace owf {

// Errors: InvalidArgument when `reader` is not a GGUF reader, has no key `key` or the key is
// not an array of a matching element type; InvalidData for a value that does not convert.
//
// STRING elements, as stored (bytes, not checked as UTF-8).
Result<std::vector<std::string>> GgufStringArray(const ModelReader& reader, const std::string& key);
// FLOAT32 elements (FLOAT64 elements are rounded to float).
Result<std::vector<float>> GgufFloatArray(const ModelReader& reader, const std::string& key);
// Integer or BOOL elements; each value must fit in int32.
Result<std::vector<int32_t>> GgufIntArray(const ModelReader& reader, const std::string& key);

// The ggml name of a tensor type id ("F32", "Q4_K", "MXFP4", ...), or nullptr when the id is
// unknown or no longer defined.
const char* GgmlTypeName(uint32_t type);

}  // namespace owf
