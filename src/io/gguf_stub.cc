// TEMPORARY stub, used by src/io/CMakeLists.txt only while src/io/gguf.cc does not exist:
// GGUF files are reported as unsupported. Delete once the GGUF reader is committed.
#include "owf/io/model.h"

namespace owf {

Result<std::unique_ptr<ModelReader>> ParseGguf(std::span<const uint8_t>, const std::string& name) {
  return Unsupported(name + ": GGUF reading is not built into this owf");
}

Result<std::unique_ptr<ModelReader>> OpenGguf(const std::string& path) {
  return Unsupported(path + ": GGUF reading is not built into this owf");
}

}  // namespace owf
