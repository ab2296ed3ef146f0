// util.hpp: helpers the backend's files share: MPI errors, tensor checks, splits, types.
#pragma once

#include <torch/csrc/distributed/c10d/Types.hpp>

#include <ATen/ATen.h>
#include <mpi.h>

#include <string>
#include <vector>

namespace torch_bls {

// MPI's text for an error code.
std::string mpiMessage(int rc);
// Throws "bls: WHAT failed: MPI's text" unless rc is MPI_SUCCESS.
void checkMpi(int rc, const char* what);
// Every process of comm passes t's dtype (and, with same_numel, its element count), else every
// process throws "bls: WHAT: the processes pass different ...": MPI would reinterpret the bits.
// One small allreduce (the max of each value and of its negation), so all fail together.
void checkAgreement(const at::Tensor& t, MPI_Comm comm, const char* what, bool same_numel);
// A CPU tensor with a strided layout, else an error naming the op and the argument.
void checkCpuDense(const at::Tensor& t, const char* op, const char* which);
int64_t nbytes(const at::Tensor& t);
// bytes as MPI's int count, or an error naming the op.
int intCount(int64_t bytes, const char* op);
// Elements per row: the product of all dimensions but the first (1 for a 1-D tensor).
int64_t rowElems(const at::Tensor& t);
// Rows per peer: the given splits (checked), or an equal split of dim 0.
std::vector<int64_t> splitRows(const at::Tensor& t, const std::vector<int64_t>& splits, int P,
                               const char* which);
// MPI's type for a tensor dtype; MPI_DATATYPE_NULL for the others.
MPI_Datatype mpiType(c10::ScalarType s);
// MPI's reduction; MPI_OP_NULL for those MPI lacks.
MPI_Op mpiOp(const c10d::ReduceOp& op);

}  // namespace torch_bls
