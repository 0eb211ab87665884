// The byte layout of a model's source files, so that an output can be written "like the source":
// the same files, the same bytes outside the tensors (headers, alignment padding, tokenizer and
// config files of a directory), and new bytes of the same size for each tensor. Both
// `owf quantise --emit fake` and `owf dequantise` write through LikeSourceWriter, which is what
// makes their outputs identical.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "owf/core/status.h"
#include "owf/io/model.h"

namespace owf {

struct SourceTensor {
  std::string name;
  uint64_t offset = 0;  // within its file
  uint64_t nbytes = 0;
};

struct SourceFile {
  std::string name;  // relative to the output (file name within a directory)
  uint64_t size = 0;
  std::vector<SourceTensor> tensors;  // sorted by offset, non-overlapping
};

struct SourceLayout {
  std::string format;      // "safetensors", "gguf" or "npy"
  bool directory = false;  // output is a directory holding files + extra_files
  std::vector<SourceFile> files;
  std::vector<std::string> extra_files;  // non-weight files of a directory (config.json, tokenizer...)

  nlohmann::json ToJson() const;
  static Result<SourceLayout> FromJson(const nlohmann::json& j);
};

// Describes `reader`'s files. `input` is the path the user gave (file or directory).
Result<SourceLayout> DescribeSource(const ModelReader& reader, const std::string& input);

// The bytes of file `index` outside its tensors, in order. Read from the source files.
Result<std::vector<uint8_t>> ReadGapBytes(const SourceLayout& layout, size_t index, const std::string& input);
// Contents of extra file `index` of a directory source.
Result<std::vector<uint8_t>> ReadExtraFile(const SourceLayout& layout, size_t index, const std::string& input);

class LikeSourceWriter {
 public:
  // Creates the output under a temporary name beside `output`.
  static Result<std::unique_ptr<LikeSourceWriter>> Create(const SourceLayout& layout, const std::string& output);
  ~LikeSourceWriter();  // without Finish: removes everything it created

  Status PutGaps(size_t file_index, std::span<const uint8_t> gaps);
  Status PutExtra(size_t extra_index, std::span<const uint8_t> contents);
  // Bytes of tensor `name` (must be exactly its source size), any order.
  Status PutTensor(const std::string& name, std::span<const uint8_t> bytes);
  // Checks every part was written, then renames the output into place.
  Status Finish();

 private:
  struct Impl;
  explicit LikeSourceWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace owf
