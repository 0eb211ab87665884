#include "owf/quantize/driver.h"

#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <set>

#include "owf/formats/quantise.h"
#include "owf/io/npy.h"
#include "owf/io/packed.h"
#include "owf/io/source.h"
#include "owf/quantize/allocate.h"
#include "owf/quantize/importance.h"

namespace owf {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

bool IsSafetensorsDtype(const std::string& d) {
  static const std::set<std::string> kNames = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16",
                                               "I8",  "U64", "U32", "U16", "U8",   "BOOL"};
  return kNames.count(d) > 0;
}

std::string GapName(size_t i) { return "__owf.gaps." + std::to_string(i); }
std::string ExtraName(size_t i) { return "__owf.extra." + std::to_string(i); }

uintmax_t SizeOnDisk(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    uintmax_t total = 0;
    for (const auto& e : fs::recursive_directory_iterator(path, ec))
      if (e.is_regular_file()) total += e.file_size();
    return total;
  }
  const uintmax_t s = fs::file_size(path, ec);
  return ec ? 0 : s;
}

// Where a run's bytes go: the packed container, or a copy shaped like the source.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Quantised(const TensorInfo& t, const QuantisedTensor& q) = 0;
  virtual Status Kept(const TensorInfo& t, std::span<const uint8_t> raw) = 0;
  virtual Status Finish(const ModelReader& model, const std::string& input) = 0;
  int64_t payload_bytes = 0;
};

class PackedSink : public Sink {
 public:
  static Result<std::unique_ptr<Sink>> Create(const std::string& output, SourceLayout layout) {
    OWF_ASSIGN_OR_RETURN(auto w, SafetensorsWriter::Create(output));
    auto s = std::make_unique<PackedSink>();
    s->writer_ = std::move(w);
    s->layout_ = std::move(layout);
    return std::unique_ptr<Sink>(std::move(s));
  }
  Status Quantised(const TensorInfo& t, const QuantisedTensor& q) override {
    OWF_ASSIGN_OR_RETURN(auto desc, AddPackedTensor(*writer_, t.name, q, DTypeName(t.dtype)));
    descs_[t.name] = std::move(desc);
    payload_bytes += PackedPayloadBytes(q);
    return Status::Ok();
  }
  Status Kept(const TensorInfo& t, std::span<const uint8_t> raw) override {
    payload_bytes += static_cast<int64_t>(raw.size());
    if (IsSafetensorsDtype(t.dtype_name)) return writer_->Add(t.name, t.dtype_name, t.shape, raw);
    kept_blobs_[t.name] = {{"dtype", t.dtype_name}, {"shape", t.shape}};
    return writer_->Add(t.name, "U8", {static_cast<int64_t>(raw.size())}, raw);
  }
  Status Finish(const ModelReader&, const std::string& input) override {
    for (size_t i = 0; i < layout_.files.size(); ++i) {
      OWF_ASSIGN_OR_RETURN(auto gaps, ReadGapBytes(layout_, i, input));
      OWF_RETURN_IF_ERROR(writer_->Add(GapName(i), "U8", {static_cast<int64_t>(gaps.size())}, gaps));
    }
    for (size_t i = 0; i < layout_.extra_files.size(); ++i) {
      OWF_ASSIGN_OR_RETURN(auto bytes, ReadExtraFile(layout_, i, input));
      OWF_RETURN_IF_ERROR(writer_->Add(ExtraName(i), "U8", {static_cast<int64_t>(bytes.size())}, bytes));
    }
    nlohmann::json meta{{"version", kPackedVersion}, {"tensors", descs_}, {"source", layout_.ToJson()},
                        {"kept_blobs", kept_blobs_}};
    writer_->SetMetadata({{kPackedMetadataKey, meta.dump()}});
    return writer_->Finish();
  }

 private:
  std::unique_ptr<SafetensorsWriter> writer_;
  SourceLayout layout_;
  nlohmann::json descs_ = nlohmann::json::object();
  nlohmann::json kept_blobs_ = nlohmann::json::object();
};

class FakeSink : public Sink {
 public:
  static Result<std::unique_ptr<Sink>> Create(const std::string& output, const SourceLayout& layout) {
    auto s = std::make_unique<FakeSink>();
    s->output_ = output;
    if (layout.format != "npy") {
      OWF_ASSIGN_OR_RETURN(s->writer_, LikeSourceWriter::Create(layout, output));
    }
    s->layout_ = layout;
    return std::unique_ptr<Sink>(std::move(s));
  }
  Status Quantised(const TensorInfo& t, const QuantisedTensor& q) override {
    if (!writer_) return WriteNpy(output_, q.values);
    OWF_ASSIGN_OR_RETURN(auto bytes, EncodeAs(q.values, DTypeName(t.dtype)));
    return writer_->PutTensor(t.name, bytes);
  }
  Status Kept(const TensorInfo& t, std::span<const uint8_t> raw) override {
    if (!writer_) {  // an unquantised .npy (its reader holds float32): write it back
      Tensor x;
      x.shape = t.shape;
      x.data.resize(raw.size() / sizeof(float));
      std::memcpy(x.data.data(), raw.data(), x.data.size() * sizeof(float));
      return WriteNpy(output_, x);
    }
    return writer_->PutTensor(t.name, raw);
  }
  Status Finish(const ModelReader&, const std::string& input) override {
    if (!writer_) return Status::Ok();
    for (size_t i = 0; i < layout_.files.size(); ++i) {
      OWF_ASSIGN_OR_RETURN(auto gaps, ReadGapBytes(layout_, i, input));
      OWF_RETURN_IF_ERROR(writer_->PutGaps(i, gaps));
    }
    for (size_t i = 0; i < layout_.extra_files.size(); ++i) {
      OWF_ASSIGN_OR_RETURN(auto bytes, ReadExtraFile(layout_, i, input));
      OWF_RETURN_IF_ERROR(writer_->PutExtra(i, bytes));
    }
    return writer_->Finish();
  }

 private:
  std::string output_;
  SourceLayout layout_;
  std::unique_ptr<LikeSourceWriter> writer_;
};

}  // namespace

Result<ModelReport> QuantiseModel(const std::string& input, const Rules& rules, const QuantiseModelOptions& opt) {
  const auto start = Clock::now();
  OWF_ASSIGN_OR_RETURN(auto model, OpenModel(input));
  OWF_ASSIGN_OR_RETURN(auto plan, MakePlan(*model, rules));
  if (opt.bits_per_param) {
    AllocationOptions a;
    a.bits_per_param = *opt.bits_per_param;
    std::map<std::string, double> fisher;
    if (!opt.sensitivity.empty()) {
      OWF_ASSIGN_OR_RETURN(fisher, ReadSensitivity(opt.sensitivity));
      a.fisher = &fisher;
    }
    OWF_ASSIGN_OR_RETURN(Allocation alloc, AllocateBits(*model, std::move(plan), a));
    plan = std::move(alloc.plan);
  }
  Imatrix imatrix;
  if (!opt.importance.empty()) {
    auto m = ReadImatrix(opt.importance);
    if (!m.ok()) return m.status().WithContext("--importance");
    imatrix = std::move(*m);
  }
  OWF_ASSIGN_OR_RETURN(SourceLayout layout, DescribeSource(*model, input));
  std::unique_ptr<Sink> sink;
  if (opt.emit == Emit::kPacked) {
    OWF_ASSIGN_OR_RETURN(sink, PackedSink::Create(opt.output, layout));
  } else {
    OWF_ASSIGN_OR_RETURN(sink, FakeSink::Create(opt.output, layout));
  }
  ModelReport report;
  report.input = input;
  report.output = opt.output;
  for (size_t i = 0; i < plan.size(); ++i) {
    const PlanEntry& e = plan[i];
    const TensorInfo& t = *e.tensor;
    if (opt.progress) opt.progress(i, plan.size(), t.name);
    TensorReport row{t.name, t.shape, t.dtype_name, "keep", e.why, "", t.numel(), 0, 0, 0};
    if (e.spec) {
      OWF_ASSIGN_OR_RETURN(Tensor x, model->Read(t));
      std::vector<float> weights;
      if (!opt.importance.empty()) {
        auto it = imatrix.columns.find(t.name);
        if (it == imatrix.columns.end()) {
          report.warnings.push_back("no importance for tensor '" + t.name + "' in " + opt.importance +
                                    ": quantised for the plain (unweighted) error");
        } else if (e.spec->rotate_seed) {
          // The rotation mixes a row's columns: the weight of an error in the rotated domain is
          // H diag(w) H^T, whose diagonal is the mean of w for every element. Nothing to steer.
          report.warnings.push_back("tensor '" + t.name + "': importance has no effect under rotate(hadamard) " +
                                    "(every rotated element's weight is the mean); not used");
        } else {
          auto w = BroadcastColumns(it->second, x.shape, t.name);
          if (!w.ok()) return w.status().WithContext(opt.importance);
          weights = std::move(*w);
          row.importance = true;
        }
      }
      auto q = QuantiseTensor(*e.spec, x, QuantiseOptions{opt.threads, weights.empty() ? nullptr : &weights});
      if (!q.ok()) return q.status().WithContext("tensor '" + t.name + "' " + x.ShapeString());
      OWF_RETURN_IF_ERROR(sink->Quantised(t, *q));
      row.spec = ToString(*e.spec);
      row.fitted = q->fitted;
      row.bits = q->total_bits();
      row.rmse_norm = ComputeMetrics(q->error, q->bits_per_element()).rmse_norm;
      row.seconds = q->seconds;
      report.quantised_elements += row.elements;
    } else {
      OWF_RETURN_IF_ERROR(sink->Kept(t, model->RawBytes(t)));
      row.bits = static_cast<double>(t.nbytes) * 8;
    }
    model->Release(t);  // streaming: the source's pages need not stay resident
    report.elements += row.elements;
    report.bits += row.bits;
    report.tensors.push_back(std::move(row));
  }
  if (opt.progress) opt.progress(plan.size(), plan.size(), "");
  OWF_RETURN_IF_ERROR(sink->Finish(*model, input));
  report.payload_bytes = sink->payload_bytes;
  report.output_bytes = static_cast<int64_t>(SizeOnDisk(opt.output));
  report.seconds = Since(start);
  return report;
}

Status DequantiseModel(const std::string& packed_path, const std::string& output) {
  OWF_ASSIGN_OR_RETURN(auto packed, OpenSafetensors(packed_path));
  OWF_ASSIGN_OR_RETURN(auto meta, ReadPackedMetadata(*packed));
  if (!meta.contains("source")) return InvalidData(packed_path + ": no source layout in the owf metadata");
  OWF_ASSIGN_OR_RETURN(SourceLayout layout, SourceLayout::FromJson(meta["source"]));
  const auto& descs = meta["tensors"];
  if (layout.format == "npy") {
    if (descs.size() != 1) return InvalidData(packed_path + ": an npy source holds exactly one tensor");
    OWF_ASSIGN_OR_RETURN(Tensor t, ReadPackedTensor(*packed, descs.begin().key(), descs.begin().value()));
    return WriteNpy(output, t);
  }
  OWF_ASSIGN_OR_RETURN(auto writer, LikeSourceWriter::Create(layout, output));
  auto part = [&](const std::string& name) -> Result<std::span<const uint8_t>> {
    const TensorInfo* t = packed->Find(name);
    if (!t) return InvalidData(packed_path + ": missing '" + name + "'");
    return packed->RawBytes(*t);
  };
  for (size_t i = 0; i < layout.files.size(); ++i) {
    OWF_ASSIGN_OR_RETURN(auto gaps, part(GapName(i)));
    OWF_RETURN_IF_ERROR(writer->PutGaps(i, gaps));
    for (const SourceTensor& st : layout.files[i].tensors) {
      if (descs.contains(st.name)) {
        const auto& d = descs[st.name];
        OWF_ASSIGN_OR_RETURN(Tensor t, ReadPackedTensor(*packed, st.name, d));
        if (!d.contains("dtype") || !d["dtype"].is_string()) return InvalidData("tensor '" + st.name + "': no dtype");
        OWF_ASSIGN_OR_RETURN(auto bytes, EncodeAs(t, d["dtype"].get<std::string>()));
        OWF_RETURN_IF_ERROR(writer->PutTensor(st.name, bytes));
      } else {
        OWF_ASSIGN_OR_RETURN(auto raw, part(st.name));
        OWF_RETURN_IF_ERROR(writer->PutTensor(st.name, raw));
      }
    }
  }
  for (size_t i = 0; i < layout.extra_files.size(); ++i) {
    OWF_ASSIGN_OR_RETURN(auto bytes, part(ExtraName(i)));
    OWF_RETURN_IF_ERROR(writer->PutExtra(i, bytes));
  }
  return writer->Finish();
}

nlohmann::json ToJson(const ModelReport& r) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : r.tensors) {
    nlohmann::json row{{"name", t.name}, {"shape", t.shape}, {"dtype", t.dtype}, {"spec", t.spec}, {"why", t.why},
                       {"elements", t.elements}, {"bits", t.bits},
                       {"bits_per_param", t.elements ? t.bits / static_cast<double>(t.elements) : 0.0}};
    if (t.spec != "keep") {
      row["rmse_norm"] = t.rmse_norm;
      row["seconds"] = t.seconds;
      if (!t.fitted.empty()) row["fitted"] = t.fitted;
      if (t.importance) row["importance"] = true;
    }
    tensors.push_back(std::move(row));
  }
  return {{"input", r.input}, {"output", r.output}, {"tensors", tensors}, {"elements", r.elements},
          {"quantised_elements", r.quantised_elements}, {"bits", r.bits}, {"bits_per_param", r.bits_per_param()},
          {"payload_bytes", r.payload_bytes}, {"output_bytes", r.output_bytes}, {"seconds", r.seconds},
          {"warnings", r.warnings}};
}

}  // namespace owf
