// collectives.cpp: the collectives other than all_to_all_single, on a worker thread in call
// order, with MPI's blocking collectives on their own communicator (bls_core.hpp).
#include "bls_core.hpp"
#include "util.hpp"

#include <c10/util/StringUtil.h>

#include <algorithm>
#include <stdexcept>

namespace torch_bls {
namespace {
const int64_t kChunkBytes = 1 << 30;  // MPI counts are int: larger buffers go in chunks
}  // namespace

// ----------------------------------------------------------------------- worker collectives

c10::intrusive_ptr<c10d::Work> Core::enqueue(const c10::intrusive_ptr<BlsWork>& work,
                                             std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    TORCH_CHECK(!down_, "bls: ", work->what(), " on a process group that was shut down");
    queue_.emplace_back(work, std::move(fn));
  }
  queue_cv_.notify_one();
  return work;
}

void Core::workerLoop() {
  for (;;) {
    std::pair<c10::intrusive_ptr<BlsWork>, std::function<void()>> item;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) {
        worker_done_ = true;
        queue_cv_.notify_all();
        return;
      }
      item = std::move(queue_.front());
      queue_.pop_front();
      running_ = item.first->what();
    }
    std::exception_ptr error;
    try {
      item.second();
    } catch (...) {
      error = std::current_exception();
    }
    item.first->keep.clear();
    item.first->complete(error);
    std::lock_guard<std::mutex> lock(queue_mu_);
    running_.clear();
  }
}

c10::intrusive_ptr<c10d::Work> Core::broadcast(std::vector<at::Tensor>& tensors, int64_t root) {
  TORCH_CHECK(tensors.size() == 1, "bls: broadcast takes one tensor per process (got ",
              tensors.size(), ")");
  TORCH_CHECK(root >= 0 && root < size_, "bls: broadcast: root ", root, " is not a rank of ",
              size_);
  at::Tensor t = tensors[0];
  checkCpuDense(t, "broadcast", "the tensor");
  at::Tensor buf = t.contiguous();
  auto work = newWork(c10d::OpType::BROADCAST, "broadcast");
  work->keep = {buf};
  work->outputs = {t};
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [t, buf, root, comm]() mutable {
    checkAgreement(buf, comm, "broadcast", true);
    auto* p = static_cast<char*>(buf.data_ptr());
    for (int64_t off = 0, n = nbytes(buf); off < n; off += kChunkBytes) {
      int len = static_cast<int>(std::min(kChunkBytes, n - off));
      checkMpi(MPI_Bcast(p + off, len, MPI_BYTE, static_cast<int>(root), comm), "MPI_Bcast");
    }
    if (!buf.is_same(t))
      t.copy_(buf);
  });
}

c10::intrusive_ptr<c10d::Work> Core::allReduce(std::vector<at::Tensor>& tensors,
                                               const c10d::ReduceOp& op) {
  TORCH_CHECK(tensors.size() == 1, "bls: all_reduce takes one tensor per process (got ",
              tensors.size(), ")");
  at::Tensor t = tensors[0];
  checkCpuDense(t, "all_reduce", "the tensor");
  MPI_Datatype type = mpiType(t.scalar_type());
  TORCH_CHECK(type != MPI_DATATYPE_NULL, "bls: all_reduce: dtype ", t.scalar_type(),
              " is not supported (float32, float64, int8/16/32/64, uint8 are)");
  MPI_Op mop = mpiOp(op);
  TORCH_CHECK(mop != MPI_OP_NULL, "bls: all_reduce supports SUM, PRODUCT, MIN and MAX");
  at::Tensor buf = t.contiguous();
  auto work = newWork(c10d::OpType::ALLREDUCE, "all_reduce");
  work->keep = {buf};
  work->outputs = {t};
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [t, buf, type, mop, comm]() mutable {
    checkAgreement(buf, comm, "all_reduce", true);
    const int64_t es = static_cast<int64_t>(buf.element_size()), step = kChunkBytes / es;
    auto* p = static_cast<char*>(buf.data_ptr());
    for (int64_t off = 0, n = buf.numel(); off < n; off += step) {
      int len = static_cast<int>(std::min(step, n - off));
      checkMpi(MPI_Allreduce(MPI_IN_PLACE, p + off * es, len, type, mop, comm), "MPI_Allreduce");
    }
    if (!buf.is_same(t))
      t.copy_(buf);
  });
}

c10::intrusive_ptr<c10d::Work> Core::allGather(std::vector<std::vector<at::Tensor>>& outputs,
                                               std::vector<at::Tensor>& inputs) {
  TORCH_CHECK(inputs.size() == 1 && outputs.size() == 1,
              "bls: all_gather takes one input tensor and one output list per process");
  TORCH_CHECK(static_cast<int>(outputs[0].size()) == size_, "bls: all_gather: the output list "
              "has ", outputs[0].size(), " tensors for a group of ", size_);
  at::Tensor in = inputs[0].contiguous();
  checkCpuDense(in, "all_gather", "input");
  for (const auto& o : outputs[0]) {
    checkCpuDense(o, "all_gather", "an output");
    TORCH_CHECK(o.scalar_type() == in.scalar_type() && o.numel() == in.numel(),
                "bls: all_gather: every output must match the input (", in.scalar_type(), ", ",
                in.numel(), " elements); one is ", o.scalar_type(), ", ", o.numel());
  }
  const int64_t bytes = nbytes(in);
  const int count = intCount(bytes, "all_gather");
  // Outputs that are consecutive views of one buffer (tensor.split) receive directly.
  const auto& outs = outputs[0];
  bool direct = true;
  for (int r = 0; r < size_ && direct; r++)
    direct = outs[static_cast<size_t>(r)].is_contiguous() &&
             static_cast<char*>(outs[static_cast<size_t>(r)].data_ptr()) ==
                 static_cast<char*>(outs[0].data_ptr()) + r * bytes;
  at::Tensor buf = direct ? at::Tensor()
                          : at::empty({static_cast<int64_t>(size_), in.numel()}, in.options());
  auto work = newWork(c10d::OpType::ALLGATHER, "all_gather");
  work->keep = {in};
  work->outputs = outs;
  MPI_Comm comm = coll_comm_;
  const int P = size_;
  return enqueue(work, [outs, in, buf, count, direct, comm, P]() mutable {
    void* dst = direct ? outs[0].data_ptr() : buf.data_ptr();
    checkMpi(MPI_Allgather(in.data_ptr(), count, MPI_BYTE, dst, count, MPI_BYTE, comm),
             "MPI_Allgather");
    if (!direct)
      for (int r = 0; r < P; r++)
        outs[static_cast<size_t>(r)].copy_(buf[r].view(outs[static_cast<size_t>(r)].sizes()));
  });
}

c10::intrusive_ptr<c10d::Work> Core::allGatherBase(at::Tensor& output, at::Tensor& input) {
  checkCpuDense(input, "all_gather_base", "input");
  checkCpuDense(output, "all_gather_base", "output");
  TORCH_CHECK(output.is_contiguous(), "bls: all_gather_base: the output must be contiguous");
  TORCH_CHECK(output.scalar_type() == input.scalar_type() &&
                  output.numel() == input.numel() * size_,
              "bls: all_gather_base: the output must hold ", size_, " x ", input.numel(), " ",
              input.scalar_type(), " elements (it holds ", output.numel(), " ",
              output.scalar_type(), ")");
  at::Tensor in = input.contiguous();
  const int count = intCount(nbytes(in), "all_gather_base");
  auto work = newWork(c10d::OpType::_ALLGATHER_BASE, "all_gather_base");
  work->keep = {in, output};
  work->outputs = {output};
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [output, in, count, comm]() mutable {
    checkMpi(MPI_Allgather(in.data_ptr(), count, MPI_BYTE, output.data_ptr(), count, MPI_BYTE,
                           comm),
             "MPI_Allgather");
  });
}

c10::intrusive_ptr<c10d::Work> Core::gather(std::vector<std::vector<at::Tensor>>& outputs,
                                            std::vector<at::Tensor>& inputs, int64_t root) {
  TORCH_CHECK(root >= 0 && root < size_, "bls: gather: root ", root, " is not a rank of ",
              size_);
  TORCH_CHECK(inputs.size() == 1, "bls: gather takes one input tensor per process");
  at::Tensor in = inputs[0].contiguous();
  checkCpuDense(in, "gather", "input");
  std::vector<at::Tensor> outs;
  if (rank_ == root) {
    TORCH_CHECK(outputs.size() == 1 && static_cast<int>(outputs[0].size()) == size_,
                "bls: gather: the root needs a list of ", size_, " output tensors");
    outs = outputs[0];
    for (const auto& o : outs)
      TORCH_CHECK(o.scalar_type() == in.scalar_type() && o.numel() == in.numel(),
                  "bls: gather: every output must match the input (", in.scalar_type(), ", ",
                  in.numel(), " elements)");
  } else {
    TORCH_CHECK(outputs.empty() || (outputs.size() == 1 && outputs[0].empty()),
                "bls: gather: only the root (rank ", root, ") passes output tensors");
  }
  const int count = intCount(nbytes(in), "gather");
  at::Tensor buf = rank_ == root ? at::empty({static_cast<int64_t>(size_), in.numel()},
                                             in.options())
                                 : at::Tensor();
  auto work = newWork(c10d::OpType::GATHER, "gather");
  work->keep = {in};
  work->outputs = outs;
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [outs, in, buf, count, root, comm]() mutable {
    checkMpi(MPI_Gather(in.data_ptr(), count, MPI_BYTE, buf.defined() ? buf.data_ptr() : nullptr,
                        count, MPI_BYTE, static_cast<int>(root), comm),
             "MPI_Gather");
    for (size_t r = 0; r < outs.size(); r++)
      outs[r].copy_(buf[static_cast<int64_t>(r)].view(outs[r].sizes()));
  });
}

c10::intrusive_ptr<c10d::Work> Core::scatter(std::vector<at::Tensor>& outputs,
                                             std::vector<std::vector<at::Tensor>>& inputs,
                                             int64_t root) {
  TORCH_CHECK(root >= 0 && root < size_, "bls: scatter: root ", root, " is not a rank of ",
              size_);
  TORCH_CHECK(outputs.size() == 1, "bls: scatter takes one output tensor per process");
  at::Tensor out = outputs[0];
  checkCpuDense(out, "scatter", "output");
  at::Tensor buf;
  if (rank_ == root) {
    TORCH_CHECK(inputs.size() == 1 && static_cast<int>(inputs[0].size()) == size_,
                "bls: scatter: the root needs a list of ", size_, " input tensors");
    buf = at::empty({static_cast<int64_t>(size_), out.numel()}, out.options());
    for (int r = 0; r < size_; r++) {
      const auto& i = inputs[0][static_cast<size_t>(r)];
      TORCH_CHECK(i.scalar_type() == out.scalar_type() && i.numel() == out.numel(),
                  "bls: scatter: every input must match the output (", out.scalar_type(), ", ",
                  out.numel(), " elements)");
      buf[r].copy_(i.reshape({-1}));
    }
  } else {
    TORCH_CHECK(inputs.empty() || (inputs.size() == 1 && inputs[0].empty()),
                "bls: scatter: only the root (rank ", root, ") passes input tensors");
  }
  const int count = intCount(nbytes(out), "scatter");
  at::Tensor recv = out.is_contiguous() ? out : at::empty_like(out, at::MemoryFormat::Contiguous);
  auto work = newWork(c10d::OpType::SCATTER, "scatter");
  work->outputs = {out};
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [out, recv, buf, count, root, comm]() mutable {
    checkMpi(MPI_Scatter(buf.defined() ? buf.data_ptr() : nullptr, count, MPI_BYTE,
                         recv.data_ptr(), count, MPI_BYTE, static_cast<int>(root), comm),
             "MPI_Scatter");
    if (!recv.is_same(out))
      out.copy_(recv);
  });
}

c10::intrusive_ptr<c10d::Work> Core::barrier() {
  // Like gloo's barrier, it also waits for this group's earlier calls: the worker runs them
  // in order, and the all_to_all_single calls in flight now are waited for first.
  std::vector<c10::intrusive_ptr<BlsWork>> before;
  {
    std::lock_guard<std::mutex> lock(a2a_mu_);
    before.assign(inflight_.begin(), inflight_.end());
  }
  auto work = newWork(c10d::OpType::BARRIER, "barrier");
  MPI_Comm comm = coll_comm_;
  return enqueue(work, [before, comm]() {
    for (const auto& w : before)
      w->wait();
    checkMpi(MPI_Barrier(comm), "MPI_Barrier");
  });
}

}  // namespace torch_bls
