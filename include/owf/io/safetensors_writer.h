// Streaming safetensors writer: tensors are appended one at a time (their bytes go to a
// temporary data file), then Finish() writes the header and the data into a temporary output
// beside the target and renames it into place. Abandoning the writer (destructor without Finish,
// or any error) leaves no output and no temporary behind.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "owf/core/status.h"

namespace owf {

class SafetensorsWriter {
 public:
  static Result<std::unique_ptr<SafetensorsWriter>> Create(const std::string& path);
  ~SafetensorsWriter();

  // dtype as safetensors spells it ("F32", "BF16", "U8", "I32", ...); bytes.size() must equal
  // numel(shape) x dtype size. Names must be unique.
  Status Add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
             std::span<const uint8_t> bytes);
  // String key-values for the header's "__metadata__".
  void SetMetadata(std::map<std::string, std::string> metadata);
  Status Finish();

 private:
  struct Impl;
  explicit SafetensorsWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace owf
