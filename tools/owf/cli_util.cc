#include "cli_util.h"

#include <cstdio>

#include "owf/io/model.h"
#include "owf/io/npy.h"

namespace owf::cli {

int Fail(const Status& s) {
  std::fprintf(stderr, "owf: error: %s\n", s.message().c_str());
  return 1;
}

Result<Tensor> LoadInputTensor(const std::string& input, const std::string& tensor) {
  if (tensor.empty()) return ReadNpy(input);
  OWF_ASSIGN_OR_RETURN(auto model, OpenModel(input));
  const TensorInfo* info = model->Find(tensor);
  if (!info) return InvalidArgument(input + ": no tensor named '" + tensor + "' (see owf inspect)");
  return model->Read(*info);
}

}  // namespace owf::cli
