// util.cpp: the helpers every part of the backend shares (util.hpp).
#include "util.hpp"

#include <c10/util/StringUtil.h>

#include <climits>
#include <stdexcept>

namespace torch_bls {

std::string mpiMessage(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
    return "MPI error " + std::to_string(rc);
  return std::string(text, static_cast<size_t>(len));
}

void checkAgreement(const at::Tensor& t, MPI_Comm comm, const char* what, bool same_numel) {
  const int64_t code = static_cast<int64_t>(t.scalar_type()), n = same_numel ? t.numel() : 0;
  int64_t v[4] = {code, -code, n, -n};
  checkMpi(MPI_Allreduce(MPI_IN_PLACE, v, 4, MPI_INT64_T, MPI_MAX, comm), "MPI_Allreduce");
  if (v[0] != -v[1])
    throw std::runtime_error(c10::str("bls: ", what, ": the processes pass different dtypes (",
                                      t.scalar_type(), " here, codes ", -v[1], " to ", v[0],
                                      " across the group)"));
  if (v[2] != -v[3])
    throw std::runtime_error(c10::str("bls: ", what, ": the processes pass different element "
                                      "counts (", n, " here, ", -v[3], " to ", v[2],
                                      " across the group)"));
}

void checkMpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS)
    throw std::runtime_error(c10::str("bls: ", what, " failed: ", mpiMessage(rc)));
}

void checkCpuDense(const at::Tensor& t, const char* op, const char* which) {
  TORCH_CHECK(t.device().is_cpu(), "bls: ", op, ": ", which, " is on ", t.device(),
              "; this backend moves CPU tensors only");
  TORCH_CHECK(t.layout() == c10::kStrided, "bls: ", op, ": ", which,
              " must be a dense (strided) tensor");
}

int64_t nbytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

int intCount(int64_t bytes, const char* op) {
  TORCH_CHECK(bytes <= INT_MAX, "bls: ", op, ": ", bytes,
              " bytes per process exceed the 2 GiB an MPI call takes; split the tensor");
  return static_cast<int>(bytes);
}

// Elements per row: the product of all dimensions but the first (1 for a 1-D tensor).
int64_t rowElems(const at::Tensor& t) {
  int64_t n = 1;
  for (int64_t d = 1; d < t.dim(); d++)
    n *= t.size(d);
  return n;
}

// Rows per peer: the given splits (checked), or an equal split of dim 0.
std::vector<int64_t> splitRows(const at::Tensor& t, const std::vector<int64_t>& splits, int P,
                               const char* which) {
  int64_t rows = t.dim() == 0 ? 1 : t.size(0);
  if (splits.empty()) {
    TORCH_CHECK(rows % P == 0, "bls: all_to_all_single: the ", which, " has ", rows,
                " rows, not divisible by the group size ", P, "; pass ", which,
                "_split_sizes");
    return std::vector<int64_t>(static_cast<size_t>(P), rows / P);
  }
  TORCH_CHECK(static_cast<int>(splits.size()) == P, "bls: all_to_all_single: ", which,
              "_split_sizes has ", splits.size(), " entries for a group of ", P);
  int64_t sum = 0;
  for (size_t q = 0; q < splits.size(); q++) {
    TORCH_CHECK(splits[q] >= 0, "bls: all_to_all_single: ", which, "_split_sizes[", q,
                "] = ", splits[q], " is negative");
    sum += splits[q];
  }
  TORCH_CHECK(sum == rows, "bls: all_to_all_single: ", which, "_split_sizes sum to ", sum,
              " but the ", which, " has ", rows, " rows");
  return splits;
}

MPI_Datatype mpiType(c10::ScalarType s) {
  switch (s) {
    case c10::kFloat: return MPI_FLOAT;
    case c10::kDouble: return MPI_DOUBLE;
    case c10::kLong: return MPI_INT64_T;
    case c10::kInt: return MPI_INT32_T;
    case c10::kShort: return MPI_INT16_T;
    case c10::kChar: return MPI_INT8_T;
    case c10::kByte: return MPI_UINT8_T;
    default: return MPI_DATATYPE_NULL;
  }
}

MPI_Op mpiOp(const c10d::ReduceOp& op) {
  switch (static_cast<c10d::ReduceOp::RedOpType>(op)) {
    case c10d::ReduceOp::SUM: return MPI_SUM;
    case c10d::ReduceOp::PRODUCT: return MPI_PROD;
    case c10d::ReduceOp::MIN: return MPI_MIN;
    case c10d::ReduceOp::MAX: return MPI_MAX;
    default: return MPI_OP_NULL;
  }
}

}  // namespace torch_bls
