// Read-only memory mapping of a whole file.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "owf/core/status.h"

namespace owf {

class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Drops the resident pages wholly inside `range` (part of this mapping): they are read from the
  // file again if touched. Keeps memory bounded when streaming through files larger than RAM.
  void Release(std::span<const uint8_t> range) const;

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace owf
