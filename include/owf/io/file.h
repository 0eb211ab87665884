// Whole-file reads and atomic writes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "owf/core/status.h"

namespace owf {

Result<std::vector<uint8_t>> ReadFileBytes(const std::string& path);
// Writes `contents` to a temporary file beside `path`, then renames it over `path`.
// On any failure the temporary is removed and `path` is untouched.
Status WriteFileAtomic(const std::string& path, std::string_view contents);

}  // namespace owf
