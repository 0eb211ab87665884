// The imatrix file: see owf/quantize/importance.h.
#include "owf/quantize/importance.h"

#include <cmath>
#include <cstring>

#include "owf/io/model.h"
#include "owf/io/safetensors_writer.h"

namespace owf {

Status WriteImatrix(const std::string& path, const Imatrix& m) {
  OWF_ASSIGN_OR_RETURN(auto w, SafetensorsWriter::Create(path));
  for (const auto& [name, col] : m.columns) {
    std::vector<uint8_t> bytes(col.size() * sizeof(float));
    std::memcpy(bytes.data(), col.data(), bytes.size());
    OWF_RETURN_IF_ERROR(w->Add(name, "F32", {static_cast<int64_t>(col.size())}, bytes));
  }
  w->SetMetadata({{"format", kImatrixFormat},
                  {"tokens", std::to_string(m.tokens)},
                  {"sequences", std::to_string(m.sequences)},
                  {"model", m.model},
                  {"statistic", "mean square of each input column's activation, per weight"}});
  return w->Finish();
}

Result<Imatrix> ReadImatrix(const std::string& path) {
  OWF_ASSIGN_OR_RETURN(auto reader, OpenModel(path));
  const nlohmann::json& meta = reader->metadata();
  if (!meta.contains("format") || meta["format"] != kImatrixFormat) {
    return InvalidData(path + ": not an owf imatrix file (no \"format\": \"" + kImatrixFormat +
                       "\" in its metadata; make one with `owf imatrix`)");
  }
  Imatrix m;
  auto number = [&](const char* key) -> int64_t {
    if (!meta.contains(key) || !meta[key].is_string()) return 0;
    try {
      return std::stoll(meta[key].get<std::string>());
    } catch (...) {
      return 0;
    }
  };
  m.tokens = number("tokens");
  m.sequences = number("sequences");
  if (meta.contains("model") && meta["model"].is_string()) m.model = meta["model"].get<std::string>();
  for (const TensorInfo& t : reader->tensors()) {
    if (t.shape.size() != 1 || t.dtype != DType::kF32) {
      return InvalidData(path + ": tensor '" + t.name + "' is " + t.dtype_name + " of rank " +
                         std::to_string(t.shape.size()) + "; an imatrix holds F32 vectors");
    }
    OWF_ASSIGN_OR_RETURN(Tensor x, reader->Read(t));
    for (size_t i = 0; i < x.data.size(); ++i) {
      if (!(x.data[i] >= 0) || !std::isfinite(x.data[i])) {
        return InvalidData(path + ": tensor '" + t.name + "' column " + std::to_string(i) + " is " +
                           std::to_string(x.data[i]) + "; mean squares are finite and >= 0");
      }
    }
    m.columns[t.name] = std::vector<float>(x.data.begin(), x.data.end());
  }
  return m;
}

Result<std::vector<float>> BroadcastColumns(const std::vector<float>& columns, const std::vector<int64_t>& shape,
                                            const std::string& name) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const int64_t cols = shape.empty() ? 1 : shape.back();
  if (static_cast<int64_t>(columns.size()) != cols || cols <= 0) {
    std::string s;
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return InvalidArgument("imatrix entry '" + name + "' has " + std::to_string(columns.size()) +
                           " values but the tensor (" + s + ") has " + std::to_string(cols) +
                           " input columns (its last dimension)");
  }
  std::vector<float> w(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i += cols) std::memcpy(w.data() + i, columns.data(), static_cast<size_t>(cols) * sizeof(float));
  return w;
}

}  // namespace owf
